"""Every shipped workflow runs on a real ``--cpu`` ComfyUI server, queued as the app queues it.

Each ``workflows/*.json`` is converted from the UI format to an API prompt
(tests/workflow_api.py) against the live server's /object_info and posted to /prompt.

What is substituted, and why:
- Model loaders: CheckpointLoaderSimple and ControlNetLoader become the test-only nodes
  of tests/host/tiny_loader_nodes.py (same outputs, asserted below), which return tiny
  real ComfyUI models: ComfyUI recognises a checkpoint by its tensor shapes, so a tiny
  file with the real key layout would be refused, and the real files are gigabytes.
  SDXL workflows get the same tiny SD1.5-shaped model (the graph is what is tested).
- Identity model: IdentityFromImages becomes TinyIdentityFromImages (the pack's code with
  a dlib-based stand-in for insightface's ArcFace files; see tiny_loader_nodes.py).
- Adapter files: MagicIDAdapterLoader runs unchanged on tiny files written under the real
  names into models/ipadapter, in the real FaceID key layout, sized for the tiny UNet.
- Work size: step counts and the working size of IDRestore are turned down (FAST) so a
  workflow finishes in seconds on a shared CPU; every node still runs its full code path.
- Input pictures: the workflows name example files (group_photo.jpg, ...); the test puts
  the pack's public-domain sample photo under those names into the server's input folder.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.workflow_api import to_api_prompt
from tests.support.workflow_check import check_workflow, readme_model_files
from tests.support.workflow_defs import PACK_DIR, WORKFLOWS_DIR

HERE = Path(__file__).resolve().parent
from tests.host.example_inputs import write_input_pictures
from tests.host.tiny_loader_nodes import SUBSTITUTES

from tests.support.mgmica_layouts import faceid_state_dict

# the tiny UNet's cross-attention widths in diffusers order: down, up, mid
TINY_UNET_WIDTHS = [32, 64] + [64, 64, 32, 32] + [64]
ADAPTER_FILES = ("ip-adapter-faceid_sd15.bin", "ip-adapter-faceid_sdxl.bin")

WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))
FAST = {"steps": 2, "zoom_size": 256}
FAST_PER_NODE = {"IDRestore": {"refinement": 0}}  # DDIMInvert keeps its refinement
OUTPUT_NODES = ("SaveImage", "PreviewImage")


def _host_conftest():
    """The already loaded tests/host/conftest.py (for its ComfyServer class)."""
    path = str(HERE / "conftest.py")
    return next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == path)


@pytest.fixture(scope="module")
def workflow_server(tmp_path_factory):
    conftest = _host_conftest()
    base = tmp_path_factory.mktemp("workflow_server")
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    (base / "custom_nodes" / conftest.PACK_NAME).symlink_to(PACK_DIR, target_is_directory=True)
    (base / "custom_nodes" / "magicid_tiny_loaders.py").symlink_to(HERE / "tiny_loader_nodes.py")
    write_input_pictures(base / "input")
    (base / "models" / "ipadapter").mkdir()
    for i, name in enumerate(ADAPTER_FILES):
        torch.save(faceid_state_dict(widths=TINY_UNET_WIDTHS, context_dim=768, seed=i),
                   base / "models" / "ipadapter" / name)
    server = conftest.ComfyServer(base)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


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
    pack = _host_conftest().PACK_NAME
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
