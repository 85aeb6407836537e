"""Where each node of a generated workflow goes: stages left to right, columns inside each.

A workflow reads by stage (``STAGES``): each stage is a group, groups stand side by side,
and inside a group nodes stand in columns by how many in-group steps lead to them. A node
that only feeds others (a loader, a photo) stands just left of its first consumer; a chain
of nodes of one type (identity after identity) stacks down one column instead of stepping right. Inside a
column, nodes are ordered by where their inputs are, so wires run as straight as they can.

Sizes are what the app shows after a run (a node grows for its image preview): the
generator passes the sizes it measured in the real front end (tests/data/workflow_app_sizes.json)
and falls back to an estimate for a node never measured. A node's box includes its title bar,
which the app draws above ``pos``.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("Model", "Faces", "Identities", "Control", "Sampling", "Output")
STAGE_COLORS = {"Model": "#3f3f5f", "Faces": "#3f789e", "Identities": "#8a3f8a", "Control": "#3f8a6a",
                "Sampling": "#8a6a3f", "Output": "#5f5f5f"}
TITLE_HEIGHT = 30           # LiteGraph.NODE_TITLE_HEIGHT: the title bar above a node's pos
GROUP_TITLE = 50            # room for a group's title above its first node's title bar
PAD, COLUMN_GAP, ROW_GAP, GROUP_GAP = 20, 50, 40, 60
NOTE_WIDTH = 360


@dataclass
class Placed:
    """A node to place: its id, stage, body size and the ids of the nodes it reads from."""
    id: int
    type: str
    stage: str | None       # None: a note, placed in its own column left of the stages
    size: tuple[float, float]
    sources: tuple[int, ...]
    pos: tuple[float, float] = (0.0, 0.0)


def box(pos, size) -> tuple[float, float, float, float]:
    """x, y, width, height of a node as the app draws it, title bar included."""
    return pos[0], pos[1] - TITLE_HEIGHT, size[0], size[1] + TITLE_HEIGHT


def _columns(members: list[Placed]) -> dict[int, int]:
    """Column of each node in its group: in-group steps before it; sources move up to their consumer."""
    ids = {m.id for m in members}
    column: dict[int, int] = {}

    def depth(m: Placed) -> int:
        if m.id not in column:
            inside = [by_id[s] for s in m.sources if s in ids]
            column[m.id] = max((depth(s) + (s.type != m.type) for s in inside), default=0)
        return column[m.id]

    by_id = {m.id: m for m in members}
    for m in members:
        depth(m)
    # A node fed by no other kind of node in its group (a loader, a photo, a chain of words
    # read from the checkpoint) stands just left of its first consumer; a chain moves as one,
    # its tail first, each link in the column of the next.
    for m in reversed(members):
        if any(s in ids and by_id[s].type != m.type for s in m.sources):
            continue
        consumers = [column[c.id] - (c.type != m.type) for c in members if m.id in c.sources]
        if consumers:
            column[m.id] = min(consumers)
    return column


def _place_group(members: list[Placed], left: float, top: float, y_of: dict[int, float]) -> float:
    """Place one group's nodes from (left, top); returns the right edge of its widest column."""
    column = _columns(members)
    x = left
    for c in sorted(set(column.values())):
        in_column = [m for m in members if column[m.id] == c]
        ids_in_column = {m.id: m for m in in_column}
        # nodes whose inputs sit higher go higher (inputs from anywhere already placed; a chain's
        # previous link, above in the same column, does not count: identity i levels with photo i)
        def wanted_y(m: Placed) -> float:
            placed = [y_of[s] for s in m.sources if s in y_of and column.get(s) != c]
            return sum(placed) / len(placed) if placed else float("inf")
        def head(m: Placed) -> Placed:  # the first link of the chain ``m`` is in (or ``m``)
            above = [ids_in_column[s] for s in m.sources if s in ids_in_column]
            return head(above[0]) if above else m
        # a chain stays in one piece, where its first link wants to be
        in_column.sort(key=lambda m: (wanted_y(head(m)), members.index(head(m)), members.index(m)))
        y = top
        for m in in_column:  # level with its inputs where the column has room
            wanted = wanted_y(m)
            m.pos = (x, max(y + TITLE_HEIGHT, wanted if wanted != float("inf") else 0.0))
            y_of[m.id] = m.pos[1]
            y = m.pos[1] + m.size[1] + ROW_GAP
        x += max(m.size[0] for m in in_column) + COLUMN_GAP
    return x - COLUMN_GAP


def lay_out(nodes: list[Placed]) -> list[dict]:
    """Set every node's pos; return one group per stage (ComfyUI's serialised form), left to
    right. Nodes of stage "" are placed first, like a stage, and their group is named ""."""
    unknown = {n.stage for n in nodes} - set(STAGES) - {None, ""}
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}: use one of {STAGES}")
    y_of: dict[int, float] = {}
    left, top = 0.0, GROUP_TITLE
    notes = [n for n in nodes if n.stage is None]
    for note in notes:  # notes first, in a column of their own: they cover nothing
        note.pos = (left, top + TITLE_HEIGHT)
        top = note.pos[1] + note.size[1] + ROW_GAP
    if notes:
        left += max(n.size[0] for n in notes) + GROUP_GAP
    groups = []
    for stage in ("",) + STAGES:
        members = [n for n in nodes if n.stage == stage]
        if not members:
            continue
        right = _place_group(members, left + PAD, GROUP_TITLE, y_of)
        bottom = max(m.pos[1] + m.size[1] for m in members) + PAD
        groups.append({"id": len(groups) + 1, "title": stage,
                       "bounding": [left, 0.0, right + PAD - left, bottom],
                       "color": STAGE_COLORS.get(stage, "#444"), "font_size": 24, "flags": {}})
        left = right + PAD + GROUP_GAP
    return groups
