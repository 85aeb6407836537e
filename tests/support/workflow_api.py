"""UI-format workflow -> API prompt, the conversion the app does when you press Queue.

The API prompt maps each node id to ``{"class_type", "inputs"}``; an input is either a
widget value or ``[source node id, output slot]``. Notes stay in the front end.
"""

from __future__ import annotations

from tests.support.workflow_defs import FRONTEND_ONLY, widget_values_by_name


def to_api_prompt(wf: dict, defs: dict) -> dict:
    links = {link[0]: (str(link[1]), link[2]) for link in wf.get("links", [])}
    prompt = {}
    for node in wf["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node.get("mode", 0) != 0:
            raise ValueError(f"node {node['id']} ({node['type']}) is muted or bypassed: "
                             "the shipped workflows have none, so this converter does not handle it")
        inputs = widget_values_by_name(node, defs[node["type"]])
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:  # a link wins over a widget converted to an input
                src, src_slot = links[slot["link"]]
                inputs[slot["name"]] = [src, src_slot]
        prompt[str(node["id"])] = {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": node.get("title") or node["type"]},
        }
    return prompt
