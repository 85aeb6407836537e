"""Write UI-format workflows (the JSON the ComfyUI app saves) from a short Python graph.

    g = Graph(defs)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors")
    enc = g.add("CLIPTextEncode", text="a photo", clip=ckpt["CLIP"])
    g.note("Load ... into models/checkpoints")
    g.to_ui()  # -> dict, ready for json.dump

Keyword arguments are widget values (unset widgets take the input's default) or, when
given an output reference ``node["TYPE"]`` / ``node[index]``, links. Nodes are laid out
in columns by their distance from the loaders, as a person would arrange them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.workflow_defs import input_specs, widget_slots

COLUMN_WIDTH, NODE_WIDTH, ROW_GAP = 380, 330, 40


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

    def add(self, node_type: str, title: str | None = None, **values) -> Node:
        if node_type not in self.defs:
            raise KeyError(f"unknown node type {node_type}")
        defn = self.defs[node_type]
        node = Node(len(self.nodes) + 1, node_type, defn, title)
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

    def _columns(self) -> dict[int, int]:
        column = {}

        def depth(node: Node) -> int:
            if node.id not in column:
                column[node.id] = 1 + max((depth(o.node) for o in node.links.values()), default=-1)
            return column[node.id]

        for node in self.nodes:
            depth(node)
        return column

    def to_ui(self) -> dict:
        columns = self._columns()
        next_y: dict[int, float] = {}
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
        for order, node in enumerate(self.nodes):
            col = columns[node.id]
            rows = len(inputs_of[node.id]) + len(node.widgets) + (len(node.defn["output"]) if node.defn else 0)
            height = node.height or 46 + 24 * rows
            y = next_y.get(col, 40.0)
            next_y[col] = y + height + ROW_GAP
            ui = {
                "id": node.id, "type": node.type, "pos": [40 + col * COLUMN_WIDTH, y],
                "size": [NODE_WIDTH, height], "flags": {}, "order": order, "mode": 0,
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
            "nodes": ui_nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
        }
