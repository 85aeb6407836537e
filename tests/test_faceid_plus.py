"""IP-Adapter FaceID Plus / Plus v2: loading, the token maths against IPAdapter_plus's ProjModelFaceIdPlus,
the face crop against insightface's norm_crop, and the errors of identities without CLIP features."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from magicid_core.faces.records import FaceCLIPEmbedding, Identity
from magicid_core.identity.adapters import load_adapter_file, parse_adapter
from magicid_core.identity.face_clip import clip_inputs, face_crops, ipadapter_pixels
from tests.support.faceid_plus_reference import faceid_plus_state_dict, reference_missing
from tests.support.mgmica_layouts import SD15_WIDTHS, flatten

CLIP_DIM = 64           # a small CLIP vision width: the adapter reads it from its proj_in
needs_reference = pytest.mark.skipif(bool(reference_missing()), reason=reference_missing() or "present")


@pytest.fixture(scope="module")
def plus_file():
    if reference_missing():
        pytest.skip(reference_missing())
    return faceid_plus_state_dict(SD15_WIDTHS, context_dim=768, clip_dim=CLIP_DIM, seed=5)


@pytest.fixture(scope="module")
def adapters(plus_file):
    """{"plus": ..., "plusv2": ...}: one file, two names, as IPAdapter_plus tells them apart."""
    state, _ = plus_file
    return {kind: parse_adapter(state, f"ip-adapter-faceid-{kind}_sd15.bin") for kind in ("plus", "plusv2")}


def unit_rows(n, seed=0):
    e = np.random.default_rng(seed).normal(size=(n, 512)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def clip_rows(n, seed=1, tokens=17):   # ViT-H gives 257 tokens; the maths is the same for any count
    return np.random.default_rng(seed).normal(size=(n, tokens, CLIP_DIM)).astype(np.float32)


@needs_reference
@pytest.mark.parametrize("name,kind", [("ip-adapter-faceid-plus_sd15.bin", "faceid_plus"),
                                       ("IP-Adapter-FaceID-PlusV2_sd15.safetensors", "faceid_plusv2")])
def test_plus_files_load_and_say_which_kind(tmp_path, plus_file, name, kind):
    state, _ = plus_file
    path = tmp_path / name
    save_file(flatten(state), str(path)) if name.endswith(".safetensors") else torch.save(state, path)
    adapter = load_adapter_file(str(path))
    assert (adapter.kind, adapter.family, adapter.tokens, adapter.clip_width, len(adapter.to_k)) == \
        (kind, "SD1.5", 4, CLIP_DIM, 16)
    label = "FaceID Plus v2" if kind.endswith("v2") else "FaceID Plus,"
    assert label in adapter.describe() and f"{CLIP_DIM}-wide CLIP" in adapter.describe()


@needs_reference
@pytest.mark.parametrize("v2,scale", [(False, 1.0), (True, 1.0), (True, 2.5), (True, -0.5)])
def test_tokens_equal_ipadapter_plus_projmodelfaceidplus(plus_file, adapters, v2, scale):
    """Our tokens and IPAdapter_plus's ProjModelFaceIdPlus(face, clip, scale, shortcut), one identity at a
    time as get_image_embeds_faceid_plus is called per application; "no identity" is zeros with the
    black image's features."""
    _, reference = plus_file
    adapter = adapters["plusv2" if v2 else "plus"]
    e, clip, negative = unit_rows(2), clip_rows(2), clip_rows(2, seed=2)
    cond, uncond = adapter.tokens_for(e, clip=(clip, negative), faceidv2_weight=scale)
    with torch.inference_mode():
        for i in range(2):
            theirs = reference(torch.from_numpy(e[i:i + 1]), torch.from_numpy(clip[i:i + 1]), scale=scale, shortcut=v2)
            theirs_uncond = reference(torch.zeros(1, 512), torch.from_numpy(negative[i:i + 1]), scale=scale, shortcut=v2)
            torch.testing.assert_close(cond[i:i + 1], theirs, rtol=0, atol=1e-6)
            torch.testing.assert_close(uncond[i:i + 1], theirs_uncond, rtol=0, atol=1e-6)


@needs_reference
def test_plus_v2_adds_the_scaled_perceiver_output_to_the_faceid_mlp_tokens(adapters):
    plus, v2 = adapters["plus"], adapters["plusv2"]
    e, clip = unit_rows(1), clip_rows(1)
    mlp = plus.projection.proj(torch.from_numpy(e)).reshape(1, 4, 768)
    mlp = plus.projection.norm(mlp)
    out = plus.tokens_for(e, clip=(clip, clip))[0]
    for scale in (0.0, 1.0, 3.0):
        torch.testing.assert_close(v2.tokens_for(e, clip=(clip, clip), faceidv2_weight=scale)[0],
                                   mlp + scale * out, rtol=1e-6, atol=1e-6)


def test_plus_without_clip_features_is_a_clear_error(adapters):
    adapter = adapters["plusv2"]
    bare = Identity(name="ann", embedding=unit_rows(1)[0], embedding_model="arcface:antelopev2")
    with pytest.raises(ValueError, match=r"(?s)FaceID Plus v2.*\['ann'\].*CLIPVisionLoader.*clip_vision input"):
        clip_inputs(adapter, [bare])
    with pytest.raises(ValueError, match="hand-made embeddings"):
        clip_inputs(adapter, unit_rows(1))
    wide = FaceCLIPEmbedding(by_crop={224: np.zeros((257, 1024), np.float32), 256: np.zeros((257, 1024), np.float32)},
                             negative=np.zeros((257, 1024), np.float32), model="a ViT-L")
    bare.face_clip = wide
    with pytest.raises(ValueError, match=f"reads {CLIP_DIM}-wide CLIP.*1024-wide ones from a ViT-L"):
        clip_inputs(adapter, [bare])
    with pytest.raises(ValueError, match="needs the faces' CLIP vision features"):
        adapter.tokens_for(unit_rows(1))


def test_multi_id_patch_refuses_identities_without_clip_for_plus(adapters):
    from magicid_core.diffusion.placement import multi_id_patch
    from magicid_core.faces.records import Face, ImageFaces

    adapter = adapters["plus"]
    face = Face(index=0, box=np.array([0, 0, 8, 8], np.float32), score=1.0, keypoints=np.zeros((5, 2), np.float32),
                head_box=np.array([0, 0, 8, 8], np.float32), mask=np.ones((8, 8), np.float32))
    bare = Identity(name="bo", embedding=unit_rows(1)[0], embedding_model="arcface:antelopev2")
    with pytest.raises(ValueError, match="IdentityFromImages' clip_vision"):
        multi_id_patch(adapter, [bare], ImageFaces(8, 8, [face]), {})


def test_face_crop_pixels_are_ipadapter_plus_tensor_to_image():
    """x * 255 clamped and truncated, as torch's ``mul(255).clamp(0, 255).byte()`` (not rounded)."""
    image = np.random.default_rng(3).uniform(-0.1, 1.1, (16, 16, 3)).astype(np.float32)
    theirs = torch.from_numpy(image).mul(255).clamp(0, 255).byte().numpy()
    np.testing.assert_array_equal(ipadapter_pixels(image), theirs)


def test_face_crops_equal_insightface_norm_crop_at_224_and_256():
    face_align = pytest.importorskip("insightface.utils.face_align")
    from magicid_core.faces.geometry import ARCFACE_TEMPLATE

    rng = np.random.default_rng(4)
    image = rng.uniform(0, 1, (300, 300, 3)).astype(np.float32)
    pixels = ipadapter_pixels(image)
    for _ in range(20):
        kps = (ARCFACE_TEMPLATE * rng.uniform(0.6, 2.0) + rng.normal(0, 2, (5, 2)) + rng.uniform(0, 80, 2))
        kps = kps.astype(np.float32)
        crops = face_crops(image, kps)
        for size in (224, 256):
            # IPAdapter_plus crops the BGR picture; the warp is the same per channel
            theirs = face_align.norm_crop(pixels[..., ::-1], landmark=kps, image_size=size)[..., ::-1]
            np.testing.assert_array_equal(crops[size], theirs)
