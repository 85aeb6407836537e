"""The README's table of every node with its inputs and outputs, made from the pack itself.

    python tools/node_table.py          # rewrite the table in README.md
    tests/test_readme_nodes.py                # fails when the README's table is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.workflow_defs import PACK_DIR, input_specs, pack_definitions  # noqa: E402

README = PACK_DIR / "README.md"
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


def readme_table(readme: str) -> str | None:
    match = TABLE.search(readme)
    return match.group(1) if match else None


def main() -> None:
    readme = README.read_text()
    if readme_table(readme) is None:
        sys.exit(f"README.md has no {START} ... {END} block under '## Nodes'")
    README.write_text(TABLE.sub(lambda _: f"{START}\n{node_table()}{END}", readme))
    print("README.md node table updated")


if __name__ == "__main__":
    main()
