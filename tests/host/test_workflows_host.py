"""Every shipped workflow runs on a real ``--cpu`` ComfyUI server, queued as the app queues it.

Each ``workflows/*.json`` is converted from the UI format to an API prompt
(tests/workflow_api.py) against the live server's /object_info and posted to /prompt, on
the ``workflow_server`` of conftest.py: tiny stand-ins for the model loaders and the
identity model, turned-down step counts, the example pictures (what is substituted and
why: tests/host/workflow_server.py).
"""

from __future__ import annotations

import json
import math
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.support.workflow_api import to_api_prompt
from tests.support.workflow_check import check_workflow, readme_model_files
from tests.support.workflow_defs import PACK_DIR, WORKFLOWS_DIR

from tests.host.comfy_server import PACK_NAME
from tests.host.example_inputs import SAMPLE
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


PHONE_PHOTO = (4032, 3024)  # a 12 MP phone photo, 4:3
BUDGET = {"sd15": 512 * 512, "sdxl": 1024 * 1024}  # the pixels each family was trained at


def phone_photo(path) -> None:
    """The sample group photo on a 4032 x 3024 canvas, as a phone would take it."""
    group = Image.open(SAMPLE).convert("RGB")
    width, height = PHONE_PHOTO
    scaled = group.resize((width, width * group.height // group.width))
    canvas = Image.new("RGB", PHONE_PHOTO, (128, 128, 128))
    canvas.paste(scaled, (0, (height - scaled.height) // 2))
    canvas.save(path, quality=92)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_phone_photo_is_sampled_at_the_models_size(workflow_server, live_defs, family):
    """A 12 MP layout photo through a group workflow at the workflow's own pixel budget: the
    latent the KSampler samples holds the family's pixels (not 4032 x 3024), with the photo's
    aspect. SD1.5 runs the whole workflow (MultiIDApply refuses FACES of another aspect than the
    latent); SDXL's 1 MP would take the tiny UNet minutes a step, so there the latent is checked
    where it enters the KSampler."""
    wf = json.loads((WORKFLOWS_DIR / f"magicid_group_2_ids_{family}.json").read_text())
    phone_photo(workflow_server.base_dir / "input" / "phone_photo.jpg")
    prompt = runnable_prompt(wf, live_defs)
    scale = next(nid for nid, n in prompt.items() if n["class_type"] == "ImageScaleToTotalPixels")
    prompt[scale]["inputs"]["megapixels"] = next(n for n in wf["nodes"] if n["id"] == int(scale))["widgets_values"][1]
    prompt[prompt[scale]["inputs"]["image"][0]]["inputs"]["image"] = "phone_photo.jpg"
    sampler = next(nid for nid, n in prompt.items() if n["class_type"] == "KSampler")
    if family == "sdxl":
        prompt = {nid: n for nid, n in prompt.items() if n["class_type"] not in OUTPUT_NODES}
    prompt["latent_check"] = {"class_type": "SaveLatent", "inputs": {
        "samples": prompt[sampler]["inputs"]["latent_image"], "filename_prefix": f"latents/phone_{family}"}}
    history = workflow_server.run_prompt(prompt, timeout=900)
    assert history["status"]["status_str"] == "success", json.dumps(history["status"]["messages"])[:4000]
    if family == "sd15":
        assert all(history["outputs"][nid]["images"] for nid, n in prompt.items() if n["class_type"] in OUTPUT_NODES)

    ref = history["outputs"]["latent_check"]["latents"][0]
    from safetensors.torch import load_file
    latent = load_file(workflow_server.base_dir / "output" / ref["subfolder"] / ref["filename"])["latent_tensor"]
    height, width = (8 * s for s in latent.shape[-2:])
    assert width * height == pytest.approx(BUDGET[family], rel=0.03), (family, latent.shape)
    assert width / height == pytest.approx(PHONE_PHOTO[0] / PHONE_PHOTO[1], rel=0.01)
    # ImageScaleToTotalPixels rounds each side; VAEEncode then keeps the largest multiple of 8
    side = math.sqrt(BUDGET[family] / (PHONE_PHOTO[0] * PHONE_PHOTO[1]))
    assert (width, height) == tuple(round(s * side) // 8 * 8 for s in PHONE_PHOTO)
    assert "lora key not loaded" not in workflow_server.log(), "the FaceID LoRA does not fit the model"
