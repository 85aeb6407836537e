"""FaceDetectMasks inside a real ComfyUI: through the loader's NODE_CLASS_MAPPINGS in process,
and in a LoadImage -> FaceDetectMasks -> SaveImage prompt on a ``--cpu`` server."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "group6.jpg"


def _image_tensor() -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(SAMPLE).convert("RGB"), np.float32) / 255.0)[None]


def _run(node_cls, image, **overrides):
    inputs = {name: spec[1].get("default") for name, spec in node_cls.INPUT_TYPES()["required"].items()
              if name != "image"}
    inputs.update(overrides)
    out = getattr(node_cls(), node_cls.FUNCTION)(image=image, **inputs)
    return out["result"]  # out["ui"] is what the app shows on the node (previews, face boxes)


def test_face_detect_masks_runs_through_comfy_node_mappings(comfy_nodes):
    node_cls = comfy_nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"]
    image = _image_tensor()
    batch = torch.cat([image, image.flip(2)])  # the second image mirrored
    faces, face_masks, union, preview = _run(node_cls, batch)
    assert [len(im.faces) for im in faces.images] == [6, 6]
    assert face_masks.shape == (12, 600, 1200) and union.shape == (2, 600, 1200) and preview.shape == (2, 600, 1200, 3)
    assert ((face_masks[:6] > 0).sum(0) <= 1).all() and torch.equal(union[0], face_masks[:6].amax(0))
    # The batch's mask order: image 0's faces left to right, then image 1's.
    centres = [f.center[0] for im in faces.images for f in im.faces]
    assert centres[:6] == sorted(centres[:6]) and centres[6:] == sorted(centres[6:])
    assert not torch.equal(preview[0], batch[0])  # something was drawn


def test_no_face_is_empty_or_an_error_on_request(comfy_nodes):
    node_cls = comfy_nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"]
    blank = torch.full((1, 128, 160, 3), 0.5)
    faces, face_masks, union, _ = _run(node_cls, blank)
    assert faces.face_count == 0 and face_masks.shape == (1, 128, 160) and not face_masks.any() and not union.any()
    with pytest.raises(ValueError, match="no face found"):
        _run(node_cls, blank, error_if_no_face=True)


def test_prompt_with_face_detect_masks_runs_on_the_server(comfy_server):
    shutil.copy(SAMPLE, comfy_server.base_dir / "input" / "group6.jpg")
    info = comfy_server.get("/object_info/FaceDetectMasks")["FaceDetectMasks"]
    assert info["output"] == ["FACES", "MASK", "MASK", "IMAGE"]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "group6.jpg"}},
        "2": {"class_type": "FaceDetectMasks", "inputs": {
            "image": ["1", 0], "backend": "auto", "min_face_px": 32, "mask_mode": "face", "dilation_px": 4,
            "feather_px": 8, "max_faces": 0, "order": "left_to_right", "error_if_no_face": True}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 3], "filename_prefix": "magicid_preview"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "magicid_masks"}},
    }
    entry = comfy_server.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    previews = entry["outputs"]["3"]["images"]
    assert len(previews) == 1
    saved = comfy_server.base_dir / "output" / previews[0]["subfolder"] / previews[0]["filename"]
    assert Image.open(saved).size == (1200, 600)
    assert len(entry["outputs"]["5"]["images"]) == 6  # one saved mask per face
