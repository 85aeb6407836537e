"""The README's node table lists every node of the pack with its current inputs and outputs."""

from tools.node_table import README, node_table, readme_table


def test_readme_node_table_is_current():
    table = readme_table(README.read_text())
    assert table is not None, "README.md lost its node table markers"
    assert table == node_table(), "README's node table is out of date: run python tools/node_table.py"
