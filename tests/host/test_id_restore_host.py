"""IDRestore inside a real ComfyUI: faces found by FaceDetectMasks on real portraits, a tiny
real UNet and VAE, and MultiIDApply's identity patch. The background keeps its bits."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.faces.records import FaceSet, Identity, ImageFaces
from magicid_core.diffusion.restore_plan import RestoreSettings, plan_faces
from tests.host.tiny_models import text_conditioning, tiny_sd15_model, tiny_vae

from tests.support.face_scenes import sizes_scene
from tests.support.mgmica_layouts import faceid_state_dict

SETTINGS = dict(zoom_size=256, context=0.4, feather=3)


@pytest.fixture(scope="module")
def scene(comfy_nodes):
    """Three real faces of 24, 48 and 96 px on a 1200 x 640 backdrop, cut to 1003 x 421
    (not multiples of 8), and the FACES that FaceDetectMasks finds in it."""
    image, _ = sizes_scene((24, 48, 96))
    image = np.ascontiguousarray(image[20:441, :1003]).astype(np.float32) / 255
    detect = comfy_nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"]()
    faces = detect.detect(torch.from_numpy(image)[None], "auto", 16, "face", 4, 8, 0, "left_to_right", True)["result"][0]
    assert faces[0].faces, "FaceDetectMasks found no face in the scene"
    return image, faces


def run_node(comfy_nodes, image, faces, strength=0.5, model=None, face_indices="all", **optional):
    node = comfy_nodes.NODE_CLASS_MAPPINGS["IDRestore"]()
    kwargs = dict(image=torch.from_numpy(image)[None], faces=faces, model=model or tiny_sd15_model(),
                  vae=tiny_vae(), positive=text_conditioning(1), negative=text_conditioning(2), steps=6,
                  strength=strength, cfg=3.0, scheduler="karras", inversion_refine=1,
                  face_indices=face_indices, **SETTINGS, **optional)
    out, preview, report = getattr(node, node.FUNCTION)(**kwargs)
    return out[0].numpy(), preview, report


def paste_masks(image, faces, indices=None):
    jobs, _ = plan_faces([image], faces, RestoreSettings(**SETTINGS), indices)
    return np.max([job.mask for job in jobs], axis=0)


def test_background_is_bit_identical_through_the_node(comfy_nodes, scene):
    image, faces = scene
    out, preview, report = run_node(comfy_nodes, image, faces)
    assert out.shape == image.shape and np.isfinite(out).all()
    outside = paste_masks(image, faces) == 0
    assert np.array_equal(out[outside], image[outside])
    assert np.abs(out[~outside] - image[~outside]).mean() > 1e-3        # the faces were redrawn
    n = len(faces[0].faces)
    assert preview.shape == (n, 256, 512, 3)
    assert report.count("restored") == n and report.count("(zoomed)") == n   # 24 to 96 px: all zoomed


def test_landmark_controlnet_acts_inside_the_faces_only(comfy_nodes, scene):
    from tests.host.tiny_controlnet import tiny_controlnet

    image, faces = scene
    assert all(f.landmarks is not None for f in faces[0].faces)
    biggest = max(faces[0].faces, key=lambda f: f.width)
    one = FaceSet([ImageFaces(*image.shape[:2], [biggest])])
    plain, _, _ = run_node(comfy_nodes, image, one)
    controlled, _, report = run_node(comfy_nodes, image, one, control_net=tiny_controlnet(), control_strength=1.0)
    assert "restored" in report
    outside = paste_masks(image, one) == 0
    assert np.array_equal(controlled[outside], image[outside])
    assert not np.array_equal(controlled[~outside], plain[~outside])     # the landmark map steered the face


def test_strength_zero_and_no_faces_pass_through(comfy_nodes, scene):
    image, faces = scene
    out, _, _ = run_node(comfy_nodes, image, faces, strength=0.0)
    assert np.array_equal(out, image)
    out, _, report = run_node(comfy_nodes, image, FaceSet([ImageFaces(*image.shape[:2], [])]))
    assert np.array_equal(out, image)
    assert "no face" in report


@pytest.fixture(scope="module")
def identity_model(comfy_nodes, scene, tmp_path_factory):
    """The tiny model patched by MultiIDApply with one identity, on the scene's first face."""
    import folder_paths

    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    pack = sys.modules[classes["MultiIDApply"].__module__]
    model = tiny_sd15_model()
    folder = tmp_path_factory.mktemp("ipadapter")
    widths = [w for _, w, _ in pack.cross_attention_layers(model)]
    torch.save(faceid_state_dict(widths=widths, context_dim=768, seed=5), folder / "tiny-faceid.bin")
    pack.register_adapter_folders()
    folder_paths.add_model_folder_path("ipadapter", str(folder))
    (adapter,) = classes["MagicIDAdapterLoader"]().load("ipadapter/tiny-faceid.bin")
    e = np.random.default_rng(3).normal(size=512).astype(np.float32)
    person = Identity(name="p0", embedding=e / np.linalg.norm(e), embedding_model="arcface:test")
    patched = classes["MultiIDApply"]().apply(model, adapter, [person], scene[1], 1.0, 0.0, 1.0,
                                              face_indices="0")[0]
    return model, patched


def test_only_faces_with_an_identity_are_restored_unless_named(comfy_nodes, scene, identity_model):
    image, faces = scene
    _, patched = identity_model
    out, _, report = run_node(comfy_nodes, image, faces, model=patched)
    assert "face 0: restored" in report and "face 1: no identity" in report
    outside = paste_masks(image, faces, [0]) == 0                       # only face 0 may change
    assert np.array_equal(out[outside], image[outside])
    assert not np.array_equal(out, image)
    out, _, report = run_node(comfy_nodes, image, faces, model=patched, face_indices="1")   # named: restored
    assert "face 1: restored" in report
    outside = paste_masks(image, faces, [1]) == 0
    assert np.array_equal(out[outside], image[outside]) and not np.array_equal(out, image)


def test_inversion_runs_on_the_model_without_the_identity(comfy_nodes, identity_model):
    """without_multi_id_patches takes MultiIDApply's patch out: it samples exactly like the unpatched model."""
    from tests.host.tiny_models import text_conditioning as cond

    model, patched = identity_model
    helpers = sys.modules[comfy_nodes.NODE_CLASS_MAPPINGS["IDRestore"].__module__.rsplit(".", 1)[0] + ".comfy_pipeline"]
    nodes = comfy_nodes

    def sample(m):
        (latent,) = nodes.EmptyLatentImage().generate(64, 64, 1)
        return nodes.KSampler().sample(m, 3, 3, 3.0, "euler", "normal", cond(1), cond(2), latent)[0]["samples"]

    multi_id = sys.modules[comfy_nodes.NODE_CLASS_MAPPINGS["MultiIDApply"].__module__]
    plain = multi_id.without_multi_id_patches(patched)
    assert not helpers.has_identity_patch(plain) and helpers.has_identity_patch(patched)
    assert torch.equal(sample(plain), sample(model))
