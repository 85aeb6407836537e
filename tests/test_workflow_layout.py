"""The shipped workflows leave room for what the app shows once they have run.

Without a host: each node's box is its stored pos with the size the real front end gave
it after a run (recorded by the generator's --measure in tests/data/workflow_app_sizes.json).
No two boxes overlap (notes included), every node but the notes lies in exactly one group,
groups stand left to right in stage order, and every link runs left to right (or down a
column). tests/host/test_workflow_layout_host.py checks the same in the live app.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.workflow_defs import WORKFLOWS_DIR
from tests.support.workflow_geometry import app_sizes, boxes_from_file, layout_problems

WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))
STAGES = ("Model", "Faces", "Identities", "Control", "Sampling", "Output")


@pytest.fixture(scope="module")
def sizes():
    return app_sizes()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_layout_leaves_room_for_the_apps_sizes(path, sizes):
    """Each box at the larger of the stored size and the size the app reported (where measured)."""
    wf = json.loads(path.read_text())
    boxes, _ = boxes_from_file(wf, sizes.get(path.stem, {}))
    problems = layout_problems(wf, boxes)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_node_was_measured_in_the_app(path, sizes):
    if path.stem not in sizes:
        pytest.skip(f"{path.stem} has not been measured in the app yet: run tools/build_workflows.py --measure "
                    "with a ComfyUI host")
    _, unmeasured = boxes_from_file(json.loads(path.read_text()), sizes[path.stem])
    assert unmeasured == [], "\n".join(unmeasured)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_groups_are_stages_in_order(path):
    titles = [g["title"] for g in json.loads(path.read_text())["groups"]]
    assert titles and set(titles) <= set(STAGES)
    assert titles == sorted(titles, key=STAGES.index)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_stored_sizes_are_the_apps(path, sizes):
    """The file's sizes are the measured ones, so the app opens the workflow as it will look."""
    if path.stem not in sizes:
        pytest.skip(f"{path.stem} has not been measured in the app yet")
    wf = json.loads(path.read_text())
    measured = sizes[path.stem]
    for node in wf["nodes"]:
        assert node["size"] == measured[str(node["id"])]["size"], (node["id"], node["type"])


# --- the checker itself ------------------------------------------------------------------

def _shipped(sizes):
    path = WORKFLOWS_DIR / "magicid_faces_and_masks.json"
    wf = json.loads(path.read_text())
    stored = {str(n["id"]): {"type": n["type"], "size": list(n["size"])} for n in wf["nodes"]}
    return wf, sizes.get(path.stem, stored)


@pytest.mark.parametrize("fault, expected", [
    ("note_on_loader", "overlap"),
    ("grown_preview", "overlap"),
    ("node_outside_group", "is in no group"),
    ("backwards_link", "runs against the reading order"),
    ("groups_swapped", "does not stand right of group"),
    ("unmeasured", "no size measured in the app"),
])
def test_checker_finds_the_fault(fault, expected, sizes):
    wf, measured = _shipped(sizes)
    wf, measured = copy.deepcopy(wf), copy.deepcopy(measured)
    by_type = {n["type"]: n for n in wf["nodes"]}
    loader, note, detect = by_type["LoadImage"], by_type["Note"], by_type["FaceDetectMasks"]
    if fault == "note_on_loader":  # the case: the note covers the loader's preview
        note["pos"] = [loader["pos"][0] + 20, loader["pos"][1] + 100]
    elif fault == "grown_preview":  # the app grew the loader over its neighbour
        measured[str(loader["id"])]["size"][0] += detect["pos"][0] - loader["pos"][0]
    elif fault == "node_outside_group":
        wf["groups"][0]["bounding"][2] = 10
    elif fault == "backwards_link":
        loader["pos"], detect["pos"] = detect["pos"], loader["pos"]
    elif fault == "groups_swapped":
        wf["groups"].reverse()
    elif fault == "unmeasured":
        del measured[str(detect["id"])]
    boxes, unmeasured = boxes_from_file(wf, measured)
    found = unmeasured + layout_problems(wf, boxes)
    assert any(expected in p for p in found), found
