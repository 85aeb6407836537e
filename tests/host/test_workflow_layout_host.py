"""Every shipped workflow, opened and run in the real front end, shows no overlapping nodes.

Chromium (playwright-core) opens each workflow from a ``--cpu`` ComfyUI whose input folder
holds the pictures the workflows name, runs it with the tiny stand-in models so every
preview shows (tests/host/web/run_workflows.mjs), and reads every node's pos and size and
the title height from the app. Then: no two nodes overlap, every node is inside its stage's
group, links read left to right, and the sizes the static test uses are the ones measured.
"""

from __future__ import annotations

import json

import pytest

from tests.host.in_app import live_boxes, missing_browser, run_in_app
from tests.support.workflow_defs import WORKFLOWS_DIR
from tests.support.workflow_geometry import app_sizes, layout_problems

WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))
pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


@pytest.fixture(scope="module")
def shown(workflow_server):
    """path -> what the app shows after running that workflow (each run once, when first asked)."""
    seen = {}

    def run(path):
        if path not in seen:
            seen[path] = run_in_app(workflow_server, {path.stem: path})["workflows"][path.stem]
        return seen[path]
    return run


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_overlaps_after_a_run(shown, path):
    live = shown(path)
    assert live["titleHeight"] > 0
    problems = layout_problems(json.loads(path.read_text()), live_boxes(live), live["groups"])
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_recorded_sizes_are_what_the_app_shows(shown, path):
    recorded = app_sizes()[path.stem]
    for node in shown(path)["nodes"]:
        size = recorded[str(node["id"])]["size"]
        assert node["size"] == pytest.approx(size, abs=1.0), (path.stem, node["id"], node["type"])
