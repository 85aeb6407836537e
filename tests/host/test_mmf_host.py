"""MMF control, kin blend (and identity score) inside a real ComfyUI, with a tiny real
ControlNet (tiny_controlnet.py) and the tiny UNet of tiny_models.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces

from tests.host.tiny_controlnet import tiny_controlnet
from tests.host.tiny_models import text_conditioning, tiny_sd15_model

SIZE = 64                      # image pixels; the latent is 8 x 8


def _run(comfy_nodes, node, **inputs):
    cls = comfy_nodes.NODE_CLASS_MAPPINGS[node]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out   # a node with a UI part returns both


def _faces() -> FaceSet:
    """One person on the left half of a 64 x 64 image: face mask on the top-left quarter."""
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[0:32, 0:32] = 1.0
    box = np.array([8, 6, 24, 26], np.float32)
    kps = np.array([[12, 12], [20, 12], [16, 16], [13, 21], [19, 21]], np.float32)
    skeleton = np.zeros((18, 3), np.float32)
    skeleton[[0, 1, 2, 5, 8, 11]] = [[16, 16, 1], [16, 30, 1], [8, 30, 1], [24, 30, 1], [10, 56, 1], [22, 56, 1]]
    face = Face(index=0, box=box, score=0.9, keypoints=kps, head_box=box.copy(), mask=mask, skeleton=skeleton)
    return FaceSet([ImageFaces(SIZE, SIZE, [face])])


def _controls_at(control, model, sigma: float, batch: int = 2):
    """The residuals a control chain gives for one noisy latent at one sigma."""
    ms = model.model.model_sampling
    control.pre_run(model.model, lambda p: ms.percent_to_sigma(p))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, SIZE // 8, SIZE // 8, generator=gen)
    cond = {"c_crossattn": torch.cat([text_conditioning(0)[0][0]] * batch)}
    try:
        return control.get_control(x, torch.full((batch,), sigma), cond, batch, {})
    finally:
        control.cleanup()


def _maps(comfy_nodes):
    skel, lms, kps, fused, person, face = _run(comfy_nodes, "MMFControlMaps", faces=_faces(),
                                               min_confidence=0.0, stick_scale=1)
    return {"skeleton": skel, "landmarks": lms, "kps": kps, "fused": fused, "person": person, "face": face}


def _apply(comfy_nodes, **overrides):
    maps = _maps(comfy_nodes)
    inputs = dict(positive=text_conditioning(0), negative=text_conditioning(1), skeleton_strength=1.0,
                  face_strength=1.0, start_percent=0.0, end_percent=1.0, schedule="together", switch_percent=0.5,
                  face_control_net=tiny_controlnet(3), face_map=maps["kps"], face_mask=maps["face"])
    inputs.update(overrides)
    return _run(comfy_nodes, "MMFControlApply", **inputs)


def test_maps_node_gives_images_and_masks_at_image_size(comfy_nodes):
    maps = _maps(comfy_nodes)
    for name in ("skeleton", "landmarks", "kps", "fused"):
        assert maps[name].shape == (1, SIZE, SIZE, 3) and maps[name].dtype == torch.float32
    assert maps["person"].shape == maps["face"].shape == (1, SIZE, SIZE)
    assert maps["skeleton"].max() == 1.0 and maps["kps"][0, 21, 19].tolist() == [1.0, 0.0, 1.0]   # mouth_right magenta
    assert maps["landmarks"].max() == 0          # no face mesh on this face: nothing drawn
    assert maps["face"][0, :32, :32].min() == 1 and maps["face"][0, 40:, 40:].max() == 0


def test_face_control_residuals_are_the_stock_residuals_inside_the_mask_and_zero_outside(comfy_nodes):
    model = tiny_sd15_model()
    maps = _maps(comfy_nodes)
    cnet = tiny_controlnet(3)
    positive, _ = _apply(comfy_nodes, face_control_net=cnet)
    masked = positive[0][1]["control"]
    assert type(masked).__name__ == "MaskedControlNet" and masked.previous_controlnet is None
    stock_pos, _ = comfy_nodes.ControlNetApplyAdvanced().apply_controlnet(
        text_conditioning(0), text_conditioning(1), cnet, maps["kps"], 1.0, 0.0, 1.0)
    got = _controls_at(masked, model, sigma=5.0)
    want = _controls_at(stock_pos[0][1]["control"], model, sigma=5.0)
    n_checked = 0
    for key in want:
        for r_masked, r_stock in zip(got[key], want[key]):
            h, w = r_stock.shape[-2:]
            inside = (slice(None), slice(None), slice(0, h // 2), slice(0, w // 2))   # the top-left quarter
            assert torch.allclose(r_masked[inside], r_stock[inside], atol=1e-6)
            outside = torch.ones(h, w, dtype=torch.bool)
            outside[: h // 2, : w // 2] = False
            assert r_masked[..., outside].abs().max() == 0
            assert r_stock[..., outside].abs().max() > 0       # the stock control does act there
            n_checked += 1
    assert n_checked >= 3


def test_skeleton_then_face_schedule_chains_two_controls(comfy_nodes):
    model = tiny_sd15_model()
    maps = _maps(comfy_nodes)
    positive, negative = _apply(comfy_nodes, schedule="skeleton_then_face", switch_percent=0.4,
                                skeleton_control_net=tiny_controlnet(4), skeleton_map=maps["skeleton"],
                                person_mask=maps["person"])
    face_ctrl = positive[0][1]["control"]
    skel_ctrl = face_ctrl.previous_controlnet
    assert negative[0][1]["control"] is face_ctrl                 # one chain, shared like Apply ControlNet
    assert skel_ctrl.inner.timestep_percent_range == (0.0, 0.4)
    assert face_ctrl.inner.timestep_percent_range == (0.4, 1.0)
    ms = model.model.model_sampling
    early, late = float(ms.percent_to_sigma(0.1)), float(ms.percent_to_sigma(0.9))
    # early on only the skeleton acts, late only the face
    both_early = _controls_at(face_ctrl, model, early)
    skel_early = _controls_at(skel_ctrl, model, early)
    assert all(torch.equal(a, b) for a, b in zip(both_early["output"], skel_early["output"]))
    assert _controls_at(skel_ctrl, model, late) is None
    assert _controls_at(face_ctrl, model, late) is not None


def test_sampling_with_the_masked_controls(comfy_nodes):
    model = tiny_sd15_model()
    latent = {"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 8)}

    def sample(positive, negative):
        out = comfy_nodes.common_ksampler(model, 7, 2, 4.0, "euler", "normal", positive, negative, latent)
        return out[0]["samples"]

    plain = sample(text_conditioning(0), text_conditioning(1))
    controlled = sample(*_apply(comfy_nodes))
    assert torch.isfinite(controlled).all()
    assert (controlled - plain).abs().max() > 1e-3
    # An empty face mask leaves the conditioning as it was (documented no-op).
    empty = _apply(comfy_nodes, face_mask=torch.zeros(1, SIZE, SIZE))
    assert "control" not in empty[0][0][1]
    assert torch.equal(sample(*empty), plain)


def test_apply_refuses_a_control_net_without_its_map_and_per_face_masks(comfy_nodes):
    with pytest.raises(ValueError, match="face_map"):
        _apply(comfy_nodes, face_map=None)
    with pytest.raises(ValueError, match="one mask per image"):
        _apply(comfy_nodes, face_mask=torch.ones(3, SIZE, SIZE))   # e.g. one mask per face of one image


def test_kin_blend_node_gives_parents_and_child(comfy_nodes):
    rng = np.random.default_rng(0)
    a, b = (v / np.linalg.norm(v) for v in rng.standard_normal((2, 512)).astype(np.float32))
    ann, bob = Identity("Ann", a, "dlib_resnet_v1"), Identity("Bob", b, "dlib_resnet_v1")
    people, hint = _run(comfy_nodes, "KinIDBlend", parent_a=[ann], parent_b=[bob], resemblance=0.5, seed=1,
                        age="teenager", gender="female", include_parents=True)
    assert [p.name for p in people[:2]] == ["Ann", "Bob"] and hint == "a teenage girl"
    assert people[2].hint == hint and np.linalg.norm(people[2].embedding) == pytest.approx(1.0, abs=1e-5)


# --- with the real analysis (FaceDetectMasks) and identities (IdentityFromImages) -------------

def _astronaut_image() -> torch.Tensor:
    import skimage.data

    return torch.from_numpy(skimage.data.astronaut().astype(np.float32) / 255.0)[None]


def _detect(comfy_nodes, image):
    return _run(comfy_nodes, "FaceDetectMasks", image=image, backend="mediapipe", min_face_px=40, mask_mode="face",
                dilation_px=4, feather_px=8, max_faces=0, order="left_to_right", error_if_no_face=True)


def test_maps_of_a_real_photo_line_up_with_its_faces(comfy_nodes):
    faces = _detect(comfy_nodes, _astronaut_image())[0]
    skel, lms, kps, fused, person, face = _run(comfy_nodes, "MMFControlMaps", faces=faces, min_confidence=0.3,
                                               stick_scale=1)
    assert lms.shape == (1, 512, 512, 3) and face.shape == (1, 512, 512)
    drawn = lms[0].amax(dim=-1) > 0
    assert drawn.sum() > 500 and (face[0][drawn] > 0).float().mean() > 0.98
    assert (kps[0].amax(dim=-1) > 0).sum() > 0


def test_id_similarity_node_before_and_after(comfy_nodes):
    import cv2

    image = _astronaut_image()
    reference = torch.from_numpy(cv2.resize(image[0, 30:330, 90:390].numpy(), (200, 200)))[None]
    identities = _run(comfy_nodes, "IdentityFromImages", images=reference, name="Eileen", backend="dlib")[0]
    before = image.clone()
    before[0, 60:180, 170:280] = torch.from_numpy(cv2.GaussianBlur(image[0, 60:180, 170:280].numpy(), (0, 0), 9))
    after_scores, before_scores, report, table = _run(comfy_nodes, "IDSimilarity", image=image,
                                                      identities=identities, assignment="match",
                                                      image_before=before)
    assert len(after_scores) == len(before_scores) == 1
    assert after_scores[0] > 0.912 and after_scores[0] > before_scores[0] + 0.05
    assert "Eileen" in report and "->" in report
    assert table.shape[0] == 1 and table.shape[-1] == 3 and table.shape[2] == 500


def test_prompt_with_mmf_maps_and_id_similarity_runs_on_the_server(comfy_server):
    import shutil
    from pathlib import Path

    from PIL import Image

    sample = Path(__file__).resolve().parents[2] / "assets" / "group6.jpg"
    shutil.copy(sample, comfy_server.base_dir / "input" / "group6.jpg")
    info = comfy_server.get("/object_info/MMFControlMaps")["MMFControlMaps"]
    assert info["output"] == ["IMAGE", "IMAGE", "IMAGE", "IMAGE", "MASK", "MASK"]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "group6.jpg"}},
        "2": {"class_type": "FaceDetectMasks", "inputs": {
            "image": ["1", 0], "backend": "auto", "min_face_px": 32, "mask_mode": "face", "dilation_px": 4,
            "feather_px": 8, "max_faces": 0, "order": "left_to_right", "error_if_no_face": True,
            "identity_backend": "dlib", "skeletons": True}},
        "3": {"class_type": "MMFControlMaps", "inputs": {"faces": ["2", 0], "min_confidence": 0.3, "stick_scale": 1}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 3], "filename_prefix": "mmf_fused"}},
        "6": {"class_type": "IdentityFromImages", "inputs": {"images": ["1", 0], "name": "someone", "backend": "dlib"}},
        "7": {"class_type": "IDSimilarity", "inputs": {"image": ["1", 0], "identities": ["6", 0],
                                                       "assignment": "match", "faces": ["2", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 3], "filename_prefix": "id_table"}},
    }
    entry = comfy_server.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    fused = entry["outputs"]["4"]["images"][0]
    fused_img = Image.open(comfy_server.base_dir / "output" / fused["subfolder"] / fused["filename"])
    assert fused_img.size == (1200, 600) and max(fused_img.getextrema()[0]) > 0
    table = entry["outputs"]["8"]["images"][0]
    assert Image.open(comfy_server.base_dir / "output" / table["subfolder"] / table["filename"]).size[0] == 500
