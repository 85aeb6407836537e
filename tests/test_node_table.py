"""docs/nodes.md's node table lists every node of the pack with its current inputs and outputs."""

from tools.node_table import NODES_PAGE, node_table, page_table


def test_node_table_is_current():
    table = page_table(NODES_PAGE.read_text())
    assert table is not None, "docs/nodes.md lost its node table markers"
    assert table == node_table(), "docs/nodes.md's node table is out of date: run python tools/node_table.py"
