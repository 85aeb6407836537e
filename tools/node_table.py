"""The table of every node with its inputs and outputs (docs/nodes.md), made from the pack itself.

    python tools/node_table.py          # rewrite the table in docs/nodes.md
    tests/test_readme_nodes.py          # fails when the table is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.workflow_defs import PACK_DIR, input_specs, pack_definitions  # noqa: E402

NODES_PAGE = PACK_DIR / "docs" / "nodes.md"
START = "<!-- node table: made by tools/node_table.py -->"
END = "<!-- end of node table -->"
TABLE = re.compile(re.escape(START) + r"\n(.*?)" + re.escape(END), re.S)


def _input(spec) -> str:
    kind = spec.type
    if spec.choices:  # a combo: say what it offers
        shown = ", ".join(map(str, spec.choices[:4])) + (", ..." if len(spec.choices) > 4 else "")
        kind = f"one of {shown}"
    text = f"`{spec.name}` {kind}"
    return f"{text} (optional)" if spec.optional else text


def node_table() -> str:
    from tests.support.workflow_defs import _load_pack

    titles = _load_pack().NODE_DISPLAY_NAME_MAPPINGS
    rows = ["| Node | Inputs | Outputs |", "| --- | --- | --- |"]
    for name, defn in sorted(pack_definitions().items()):
        inputs = "<br>".join(_input(s) for s in input_specs(defn))
        outputs = "<br>".join(f"`{n}` {t}" for n, t in zip(defn["output_name"], defn["output"]))
        rows.append(f"| **{name}**<br>{titles.get(name, name)} | {inputs} | {outputs} |")
    return "\n".join(rows) + "\n"


def page_table(page: str) -> str | None:
    match = TABLE.search(page)
    return match.group(1) if match else None


def main() -> None:
    page = NODES_PAGE.read_text()
    if page_table(page) is None:
        sys.exit(f"{NODES_PAGE} has no {START} ... {END} block")
    NODES_PAGE.write_text(TABLE.sub(lambda _: f"{START}\n{node_table()}{END}", page))
    print("docs/nodes.md node table updated")


if __name__ == "__main__":
    main()
