"""Static checks of a UI-format ComfyUI workflow (the JSON the app saves).

``check_workflow`` returns a list of problems in words (empty when the workflow is
sound): unknown node types, links between different types or to missing slots,
required inputs left open, widget values that the input would reject, model files
that the README does not list, and no note telling the user what to load where.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.workflow_defs import FRONTEND_ONLY, input_specs, widget_slots

MODEL_EXTENSIONS = r"\.(?:safetensors|ckpt|pt|pth|bin|onnx|gguf)"
MODEL_FILE = re.compile(r"`([^`/\s]+" + MODEL_EXTENSIONS + ")`")
README_MODEL_SECTIONS = ("## Models", "## Workflows")


def readme_model_files(readme: str) -> set[str]:
    """File names written in backticks under the README's Models and Workflows headings."""
    names = set()
    for section in re.split(r"(?m)^(?=## )", readme):
        if section.startswith(README_MODEL_SECTIONS):
            names |= set(MODEL_FILE.findall(section))
    return names


def is_model_choice(spec, value) -> bool:
    """A combo value naming a model file (ComfyUI fills these combos from models folders)."""
    return spec.type == "COMBO" and isinstance(value, str) and bool(re.search(MODEL_EXTENSIONS + "$", value))


def types_match(out_type: str, in_type: str) -> bool:
    # ComfyUI's rule (execution.validate_inputs): "*" accepts anything, otherwise one of
    # the comma-separated types must be shared.
    if "*" in (out_type, in_type):
        return True
    return bool(set(out_type.split(",")) & set(in_type.split(",")))


def check_value(spec, value) -> str | None:
    """Why ``value`` does not fit widget input ``spec``, or None when it fits."""
    opts = spec.options
    if spec.type in ("INT", "FLOAT"):
        numeric = (int,) if spec.type == "INT" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return f"{value!r} is not an {spec.type}"
        if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
            return f"{value!r} is outside [{opts.get('min')}, {opts.get('max')}]"
    elif spec.type == "BOOLEAN" and not isinstance(value, bool):
        return f"{value!r} is not a boolean"
    elif spec.type == "STRING" and not isinstance(value, str):
        return f"{value!r} is not a string"
    elif spec.type == "COMBO" and spec.choices and value not in spec.choices and not _folder_file(spec, value):
        return f"{value!r} is not one of {list(spec.choices)[:12]}"
    elif spec.type == "COMBO" and not spec.choices and not (isinstance(value, str) and value):
        return f"{value!r} is not a file name"
    return None


def _folder_file(spec, value) -> bool:
    """A model file in a combo whose snapshot lists only the folder's fixed entries (VAELoader's
    "pixel_space"): the files come from the user's folder, checked against the README instead."""
    return is_model_choice(spec, value) and not any(is_model_choice(spec, c) for c in spec.choices)


def _check_widgets(where: str, node: dict, defn: dict) -> list[str]:
    values = node.get("widgets_values") or []
    slots = widget_slots(defn)
    if len(values) != len(slots):
        names = [s.spec.name + (f"({s.extra})" if s.extra else "") for s in slots]
        return [f"{where}: {len(values)} widget values for {len(slots)} widgets {names}"]
    problems = []
    for slot, value in zip(slots, values):
        if slot.extra == "control_after_generate":
            if value not in ("fixed", "increment", "decrement", "randomize"):
                problems.append(f"{where}: {slot.spec.name} control mode {value!r}")
        elif slot.extra is None and (why := check_value(slot.spec, value)):
            problems.append(f"{where}: widget {slot.spec.name}: {why}")
    return problems


def _check_links(wf: dict, nodes: dict, defs: dict) -> list[str]:
    problems = []
    for link in wf.get("links", []):
        link_id, src, src_slot, dst, dst_slot, ltype = link[:6]
        where = f"link {link_id}"
        if src not in nodes or dst not in nodes:
            problems.append(f"{where}: joins a node that is not in the workflow")
            continue
        src_node, dst_node = nodes[src], nodes[dst]
        if src_node["type"] not in defs or dst_node["type"] not in defs:
            continue  # already reported as an unknown type
        outputs = defs[src_node["type"]]["output"]
        dst_inputs = dst_node.get("inputs", [])
        if not (0 <= src_slot < len(outputs)) or not (0 <= dst_slot < len(dst_inputs)):
            problems.append(f"{where}: slot out of range ({src_node['type']}[{src_slot}] -> "
                            f"{dst_node['type']}[{dst_slot}])")
            continue
        in_name = dst_inputs[dst_slot]["name"]
        specs = {s.name: s for s in input_specs(defs[dst_node["type"]])}
        if in_name not in specs:
            problems.append(f"{where}: {dst_node['type']} has no input {in_name!r}")
            continue
        out_type, in_type = outputs[src_slot], specs[in_name].type
        if not types_match(out_type, in_type):
            problems.append(f"{where}: {src_node['type']} output {out_type} -> "
                            f"{dst_node['type']}.{in_name} which takes {in_type}")
        if dst_inputs[dst_slot].get("link") != link_id:
            problems.append(f"{where}: {dst_node['type']}.{in_name} does not point back to it")
        out_links = src_node.get("outputs", [])[src_slot].get("links") or []
        if link_id not in out_links:
            problems.append(f"{where}: {src_node['type']} output {src_slot} does not list it")
        if ltype not in (out_type, "*"):
            problems.append(f"{where}: stored type {ltype} but the output is {out_type}")
    return problems


def _check_required_inputs(where: str, node: dict, defn: dict) -> list[str]:
    linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
    return [f"{where}: required input {s.name} ({s.type}) is not connected"
            for s in input_specs(defn) if not s.optional and not s.is_widget and s.name not in linked]


def model_files(wf: dict, defs: dict) -> set[str]:
    """Every model file name a workflow's loaders ask for (without the sub-folder some
    loaders put in front, like "ipadapter/ip-adapter-faceid_sd15.bin")."""
    names = set()
    for node in wf["nodes"]:
        defn = defs.get(node["type"])
        if defn is None:
            continue
        slots = widget_slots(defn)
        for slot, value in zip(slots, node.get("widgets_values") or []):
            if slot.extra is None and is_model_choice(slot.spec, value):
                names.add(value.replace("\\", "/").rsplit("/", 1)[-1])
    return names


def note_texts(wf: dict) -> list[str]:
    return [" ".join(map(str, n.get("widgets_values") or [])) for n in wf["nodes"]
            if n["type"] in FRONTEND_ONLY]


def check_workflow(wf: dict, defs: dict, readme_models: set[str]) -> list[str]:
    problems = []
    nodes = {n["id"]: n for n in wf.get("nodes", [])}
    if len(nodes) != len(wf.get("nodes", [])):
        problems.append("two nodes share an id")
    for node in nodes.values():
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in FRONTEND_ONLY:
            continue
        if node["type"] not in defs:
            problems.append(f"{where}: unknown node type")
            continue
        if node.get("mode", 0) != 0:
            problems.append(f"{where}: muted or bypassed (mode {node['mode']})")
        problems += _check_widgets(where, node, defs[node["type"]])
        problems += _check_required_inputs(where, node, defs[node["type"]])
    problems += _check_links(wf, nodes, defs)

    notes = note_texts(wf)
    if not notes:
        problems.append("no Note node telling the user what to load where")
    for name in sorted(model_files(wf, defs)):
        if name not in readme_models:
            problems.append(f"model file {name!r} is not in the README's model list")
        if not any(name in text for text in notes):
            problems.append(f"model file {name!r} is not named in a Note")
    return problems


def preview_path(workflow_path: Path) -> Path:
    return workflow_path.with_suffix(".png")
