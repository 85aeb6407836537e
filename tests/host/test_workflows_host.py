"""Every shipped workflow runs on a real ``--cpu`` ComfyUI server, queued as the app queues it.

Each ``workflows/*.json`` is converted from the UI format to an API prompt
(tests/workflow_api.py) against the live server's /object_info and posted to /prompt, on
the ``workflow_server`` of conftest.py: tiny stand-ins for the model loaders and the
identity model, turned-down step counts, the example pictures (what is substituted and
why: tests/host/workflow_server.py).
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.support.workflow_api import to_api_prompt
from tests.support.workflow_check import check_workflow, readme_model_files
from tests.support.workflow_defs import PACK_DIR, WORKFLOWS_DIR

from tests.host.comfy_server import PACK_NAME
from tests.host.workflow_server import FAST, FAST_PER_NODE, SUBSTITUTES

WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))
OUTPUT_NODES = ("SaveImage", "PreviewImage")


@pytest.fixture(scope="module")
def live_defs(workflow_server):
    return workflow_server.get("/object_info")


def test_stand_ins_have_the_real_loaders_outputs(live_defs):
    for real, stand_in in SUBSTITUTES.items():
        if real in live_defs:  # a pack node that has not landed yet has nothing to stand in for
            assert live_defs[stand_in]["output"] == live_defs[real]["output"], real


def test_template_browser_lists_the_workflows(workflow_server):
    """ComfyUI lists a pack's workflows/ (one of the folder names it reads) and serves each
    workflow and the <name>.jpg thumbnail its template browser shows."""
    assert WORKFLOWS
    pack = PACK_NAME
    listed = workflow_server.get("/workflow_templates")
    assert sorted(listed.get(pack, [])) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:
        served = workflow_server.get(f"/api/workflow_templates/{pack}/{path.name}")
        assert served == json.loads(path.read_text())
        with urllib.request.urlopen(f"{workflow_server.url}/api/workflow_templates/{pack}/{path.stem}.jpg") as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read() == path.with_suffix(".jpg").read_bytes()


def runnable_prompt(wf: dict, defs: dict) -> dict:
    prompt = to_api_prompt(wf, defs)
    for node in prompt.values():
        node["class_type"] = SUBSTITUTES.get(node["class_type"], node["class_type"])
        for name, value in {**FAST, **FAST_PER_NODE.get(node["class_type"], {})}.items():
            if name in node["inputs"] and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs(workflow_server, live_defs, path):
    wf = json.loads(path.read_text())
    # the live server's definitions agree with the committed snapshot the static test uses
    readme_models = readme_model_files((PACK_DIR / "README.md").read_text())
    assert check_workflow(wf, live_defs, readme_models) == []

    prompt = runnable_prompt(wf, live_defs)
    history = workflow_server.run_prompt(prompt, timeout=900)
    status = history["status"]
    errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
    assert status["status_str"] == "success" and not errors, json.dumps(errors, indent=1)[:4000]

    outputs = [nid for nid, node in prompt.items() if node["class_type"] in OUTPUT_NODES]
    assert outputs, "a shipped workflow should show or save a result"
    for nid in outputs:
        images = history["outputs"][nid]["images"]
        assert images, f"node {nid} produced no image"
        for ref in images:
            folder = workflow_server.base_dir / ref["type"] / ref["subfolder"]
            pixels = np.asarray(Image.open(folder / ref["filename"]))
            assert pixels.ndim == 3 and pixels.shape[2] in (3, 4) and pixels.std() > 0
