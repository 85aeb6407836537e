"""How a workflow's nodes and groups sit on the canvas, and what is wrong with it.

Boxes are (x, y, width, height) in canvas units, title bar included. ``layout_problems``
takes the boxes either from the file (pos, and the sizes the app reported after a run,
tests/data/workflow_app_sizes.json) or measured live in the real front end, and says in
words: which nodes overlap (a note covering a node counts), which group does not contain
a node of its stage, which link runs right to left (or up a column), which group stands before an earlier stage.
"""

from __future__ import annotations

import json
from pathlib import Path

Box = tuple[float, float, float, float]
TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT
SIZES_FILE = Path(__file__).resolve().parents[1] / "data" / "workflow_app_sizes.json"


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def contains(outer: Box, inner: Box) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1]
            and inner[0] + inner[2] <= outer[0] + outer[2] and inner[1] + inner[3] <= outer[1] + outer[3])


def app_sizes() -> dict:
    """workflow name -> node id (str) -> {"type", "size"}: what the app showed after a run."""
    return json.loads(SIZES_FILE.read_text()) if SIZES_FILE.exists() else {}


def boxes_from_file(wf: dict, sizes: dict) -> tuple[dict[int, Box], list[str]]:
    """Each node's box at its stored pos, with the larger of its stored size and the size the
    app reported; plus problems when the report does not match the workflow's nodes."""
    boxes, problems = {}, []
    for node in wf["nodes"]:
        seen = sizes.get(str(node["id"]))
        if seen is None or seen["type"] != node["type"]:
            problems.append(f"node {node['id']} ({node['type']}): no size measured in the app for it; "
                            "re-run the workflow generator with a ComfyUI host (--measure)")
            width, height = node["size"]
        else:
            width, height = (max(a, b) for a, b in zip(node["size"], seen["size"]))
        boxes[node["id"]] = (node["pos"][0], node["pos"][1] - TITLE_HEIGHT, width, height + TITLE_HEIGHT)
    return boxes, problems


def label(node: dict) -> str:
    return f"{node['id']} ({node.get('title') or node['type']})"


def layout_problems(wf: dict, boxes: dict[int, Box], groups: list[dict] | None = None) -> list[str]:
    """Overlaps, nodes outside their group, links running right to left, stages out of order.
    ``groups`` defaults to the workflow's own (title, bounding); a live check passes the app's."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    groups = wf.get("groups", []) if groups is None else groups
    problems = []
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            if overlap(boxes[a], boxes[b]):
                problems.append(f"nodes {label(nodes[a])} and {label(nodes[b])} overlap")
    group_of = {}
    for node_id, box in boxes.items():
        holders = [g["title"] for g in groups if contains(tuple(g["bounding"]), box)]
        if len(holders) > 1:
            problems.append(f"node {label(nodes[node_id])} is inside groups {holders}")
        if holders:
            group_of[node_id] = holders[0]
        elif nodes[node_id]["type"] not in ("Note", "MarkdownNote"):
            problems.append(f"node {label(nodes[node_id])} is in no group")
        if nodes[node_id]["type"] in ("Note", "MarkdownNote") and holders:
            problems.append(f"note {label(nodes[node_id])} lies inside group {holders[0]}")
    for a, b in zip(groups, groups[1:]):  # stages read left to right
        if a["bounding"][0] + a["bounding"][2] > b["bounding"][0]:
            problems.append(f"group {b['title']} does not stand right of group {a['title']}")
    order = [g["title"] for g in groups]
    for link in wf.get("links", []):
        src, dst = link[1], link[3]
        a, b = boxes[src], boxes[dst]
        # left to right, or straight down a column (a chain of identities)
        if not (a[0] < b[0] or (a[0] == b[0] and a[1] + a[3] <= b[1])):
            problems.append(f"link {link[0]} runs against the reading order: {label(nodes[src])} -> "
                            f"{label(nodes[dst])}")
        if src in group_of and dst in group_of and order.index(group_of[src]) > order.index(group_of[dst]):
            problems.append(f"link {link[0]} goes back a stage: {group_of[src]} -> {group_of[dst]}")
    return problems
