"""Regenerate tests/data/comfy_core_object_info.json from a running ComfyUI.

Start a ComfyUI with no custom nodes, then point this script at it:

    python main.py --cpu --listen 127.0.0.1 --port 8199 --base-directory /tmp/empty_base
    python tools/snapshot_object_info.py http://127.0.0.1:8199

Only the core nodes are kept (``nodes`` and ``comfy_extras``; the paid API nodes are
left out), and of each node only what workflow validation reads: input types, combo
options, numeric ranges, defaults, widget flags and output types. File-name combos
(checkpoints, images) are empty lists in an empty base directory; the workflow check
takes model names from the README instead.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[1] / "tests" / "data" / "comfy_core_object_info.json"
CORE_MODULES = ("nodes", "comfy_extras")
# Input options that decide which widgets a node has and which values they accept.
KEPT_OPTIONS = ("default", "min", "max", "step", "round", "options", "multiline",
                "control_after_generate", "image_upload", "forceInput", "widgetType")


def slim_input(spec: list) -> list:
    """["TYPE" or [options], {opts}] -> the same with only the validation options."""
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    kept = {k: v for k, v in opts.items() if k in KEPT_OPTIONS}
    return [kind, kept] if kept else [kind]


def slim_node(info: dict) -> dict:
    inputs = {
        section: {name: slim_input(spec) for name, spec in info["input"].get(section, {}).items()}
        for section in ("required", "optional")
        if info["input"].get(section)
    }
    return {
        "input": inputs,
        "input_order": info.get("input_order", {}),
        "output": info["output"],
        "output_name": info["output_name"],
        "output_is_list": info["output_is_list"],
        "python_module": info["python_module"],
    }


def core_snapshot(object_info: dict) -> dict:
    return {
        name: slim_node(info)
        for name, info in sorted(object_info.items())
        if info.get("python_module", "").split(".")[0] in CORE_MODULES
    }


def to_json_lines(snapshot: dict) -> str:
    """Valid JSON with one node per line: small, and a regenerated file diffs by node."""
    compact = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"))
    nodes = ",\n".join(f"{compact(name)}:{compact(node)}" for name, node in snapshot["nodes"].items())
    return f'{{"comfyui_version":{compact(snapshot["comfyui_version"])},\n"nodes":{{\n{nodes}\n}}}}\n'


def main(url: str) -> None:
    with urllib.request.urlopen(url.rstrip("/") + "/object_info", timeout=60) as r:
        object_info = json.loads(r.read())
    with urllib.request.urlopen(url.rstrip("/") + "/system_stats", timeout=60) as r:
        version = json.loads(r.read())["system"].get("comfyui_version", "unknown")
    snapshot = {"comfyui_version": version, "nodes": core_snapshot(object_info)}
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(to_json_lines(snapshot))
    print(f"{len(snapshot['nodes'])} core nodes of ComfyUI {version} -> {SNAPSHOT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
