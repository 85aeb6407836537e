"""Write UI-format workflows (the JSON the ComfyUI app saves) from a short Python graph.

    g = Graph(defs)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors")
    enc = g.add("CLIPTextEncode", text="a photo", clip=ckpt["CLIP"])
    g.note("Load ... into models/checkpoints")
    g.to_ui()  # -> dict, ready for json.dump

Keyword arguments are widget values (unset widgets take the input's default) or, when
given an output reference ``node["TYPE"]`` / ``node[index]``, links. Nodes added inside
``with g.stage("Faces"):`` belong to that stage's group; tests/support/workflow_layout.py puts
the stages left to right and the nodes in columns inside them, at the sizes the app shows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from tests.support.workflow_defs import input_specs, widget_slots
from tests.support.workflow_layout import Placed, lay_out

NODE_WIDTH = 330
# Nodes that show a picture once the graph has run: the front end's image preview widget asks
# for 220 px (ImagePreviewWidget.computeLayoutSize, minHeight 220, comfyui-frontend-package 1.27).
PREVIEW_ROOM = 220
SHOWS_PICTURE = {"LoadImage", "PreviewImage", "SaveImage", "FaceDetectMasks"}
UNGROUPED = ""  # the stage of nodes added outside any ``with g.stage(...)``: laid out, no group box


@dataclass
class Output:
    node: "Node"
    slot: int


@dataclass
class Node:
    id: int
    type: str
    defn: dict | None
    title: str | None = None
    widgets: list = field(default_factory=list)
    links: dict = field(default_factory=dict)  # input name -> Output
    color: str | None = None
    height: float | None = None  # notes: sized to their text
    stage: str | None = None  # the group it belongs to; None for notes

    def __getitem__(self, key) -> Output:
        outputs = self.defn["output"]
        if isinstance(key, int):
            return Output(self, key)
        names = self.defn.get("output_name") or outputs
        for i, (name, kind) in enumerate(zip(names, outputs)):
            if key in (name, kind):
                return Output(self, i)
        raise KeyError(f"{self.type} has no output {key!r}; it has {list(names)}")


def default_value(slot) -> object:
    if slot.extra == "control_after_generate":
        return "fixed"
    if slot.extra == "upload":
        return "image"
    spec = slot.spec
    if "default" in spec.options:
        return spec.options["default"]
    if spec.choices:
        return spec.choices[0]
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False}.get(spec.type, "")


class Graph:
    def __init__(self, defs: dict):
        self.defs = defs
        self.nodes: list[Node] = []
        self._stage = UNGROUPED
        self.models: list[dict] = []  # the workflow's "models" metadata: {name, url, directory} per file

    @contextlib.contextmanager
    def stage(self, name: str):
        """Nodes added inside belong to stage ``name`` (one of workflow_layout.STAGES)."""
        outer, self._stage = self._stage, name
        try:
            yield
        finally:
            self._stage = outer

    def add(self, node_type: str, title: str | None = None, **values) -> Node:
        if node_type not in self.defs:
            raise KeyError(f"unknown node type {node_type}")
        defn = self.defs[node_type]
        node = Node(len(self.nodes) + 1, node_type, defn, title, stage=self._stage)
        specs = {s.name for s in input_specs(defn)}
        unknown = set(values) - specs
        if unknown:
            raise KeyError(f"{node_type} has no inputs {sorted(unknown)}")
        node.links = {k: v for k, v in values.items() if isinstance(v, Output)}
        for slot in widget_slots(defn):
            given = values.get(slot.spec.name)
            use_given = slot.extra is None and slot.spec.name in values and not isinstance(given, Output)
            node.widgets.append(given if use_given else default_value(slot))
        self.nodes.append(node)
        return node

    def note(self, text: str, title: str = "Read me") -> Node:
        lines = sum(1 + len(line) // 40 for line in text.splitlines())  # ~40 characters a line
        node = Node(len(self.nodes) + 1, "Note", None, title, widgets=[text], color="#432",
                    height=60 + 18 * lines)
        self.nodes.append(node)
        return node

    def estimated_size(self, node: Node, inputs: list[dict]) -> tuple[float, float]:
        """The size of a node never measured in the app: its rows, plus the room the front end
        gives a picture once the graph has run. The app keeps a larger stored size, so this
        errs large; --measure replaces it with what the app shows."""
        rows = len(inputs) + len(node.widgets) + (len(node.defn["output"]) if node.defn else 0)
        room = PREVIEW_ROOM if node.type in SHOWS_PICTURE else 0
        return NODE_WIDTH, node.height or 46 + 24 * rows + room

    def to_ui(self, sizes: dict[int, tuple[float, float]] | None = None) -> dict:
        """The workflow as the app saves it. ``sizes``: node id -> (width, height) the app showed
        after a run (measured by the generator); other nodes get an estimate."""
        sizes = sizes or {}
        links, ui_nodes = [], []
        outputs_links: dict[tuple[int, int], list[int]] = {}
        inputs_of: dict[int, list[dict]] = {}
        for node in self.nodes:  # links first, so outputs can list theirs
            slots = []
            for spec in input_specs(node.defn) if node.defn else []:
                src = node.links.get(spec.name)
                if spec.is_widget and src is None:
                    continue
                slot = {"name": spec.name, "type": spec.type, "link": None}
                if spec.is_widget:
                    slot["widget"] = {"name": spec.name}
                if src is not None:
                    link_id = len(links) + 1
                    links.append([link_id, src.node.id, src.slot, node.id, len(slots),
                                  src.node.defn["output"][src.slot]])
                    outputs_links.setdefault((src.node.id, src.slot), []).append(link_id)
                    slot["link"] = link_id
                slots.append(slot)
            inputs_of[node.id] = slots
        placed = [Placed(n.id, n.type, n.stage, tuple(sizes.get(n.id) or self.estimated_size(n, inputs_of[n.id])),
                         tuple(o.node.id for o in n.links.values())) for n in self.nodes]
        groups = [g for g in lay_out(placed) if g["title"] != UNGROUPED]
        for order, (node, place) in enumerate(zip(self.nodes, placed)):
            ui = {
                "id": node.id, "type": node.type, "pos": [round(v, 1) for v in place.pos],
                "size": [round(v, 1) for v in place.size], "flags": {}, "order": order, "mode": 0,
                "inputs": inputs_of[node.id], "outputs": [],
                "properties": {"Node name for S&R": node.type}, "widgets_values": node.widgets,
            }
            if node.defn:
                names = node.defn.get("output_name") or node.defn["output"]
                ui["outputs"] = [{"name": n, "type": t, "links": outputs_links.get((node.id, i), []),
                                  "slot_index": i} for i, (n, t) in enumerate(zip(names, node.defn["output"]))]
            if node.title:
                ui["title"] = node.title
            if node.color:
                ui["color"], ui["bgcolor"] = node.color, "#653"
            ui_nodes.append(ui)
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(links),
            "nodes": ui_nodes, "links": links, "groups": groups, "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
            **({"models": self.models} if self.models else {}),
        }
