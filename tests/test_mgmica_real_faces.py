"""MGMICA on faces FaceDetectMasks really finds: a group with faces from 31 px to 125 px."""

import math

import numpy as np
import pytest
import torch

from tests.support.face_scenes import sizes_scene
from magicid_core.identity.adapters import parse_adapter
from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.diffusion.placement import multi_id_patch, place_identities
from magicid_core.diffusion.ownership import owner_map, ownership_masks
from tests.support.mgmica_layouts import KEY, attention_inputs, faceid_state_dict



@pytest.fixture(scope="module")
def group():
    image, _ = sizes_scene()
    faces = analyze_image(image, AnalysisSettings(mesh=False))
    assert len(faces.faces) >= 4
    return faces


def sd15_layer_sizes(height, width):
    """Cells of SD1.5's four attention levels for an image (latent = image / 8, then halvings)."""
    h, w, out = math.ceil(height / 8), math.ceil(width / 8), []
    for _ in range(4):
        out.append((h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return out


def embeddings(n, seed=0):
    e = np.random.default_rng(seed).normal(size=(n, 512)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_every_detected_face_owns_a_cell_at_every_sd15_layer(group):
    n = len(group.faces)
    _, masks, _ = place_identities(embeddings(n), group)
    for h, w in sd15_layer_sizes(group.height, group.width):
        owned = ownership_masks(masks, h, w).reshape(n, -1)
        assert (owned.sum(axis=1) >= 1).all() and owned.sum(axis=0).max() == 1, (h, w)


def test_no_identity_leaks_onto_another_detected_face(group):
    """The full user path (adapter file layout -> identities -> faces -> patch) at the middle block."""
    n = len(group.faces)
    adapter = parse_adapter(faceid_state_dict(), "ip-adapter-faceid_sd15.bin")
    layer = 15                                            # SD1.5's middle block: 1280 wide
    h, w = sd15_layer_sizes(group.height, group.width)[-1]
    _, k, v, opts = attention_inputs(1, 1280, 8)           # 77 text tokens, cond + uncond
    q = torch.randn(2, h * w, 1280, generator=torch.Generator().manual_seed(2))
    opts["activations_shape"] = [2, 1280, h, w]
    people = embeddings(n)
    before = multi_id_patch(adapter, people, group, {KEY: layer})(q, k, v, opts)
    _, masks, _ = place_identities(people, group)
    owner = torch.from_numpy(owner_map(masks, h, w).reshape(-1))
    for j in range(n):
        other = people.copy()
        other[j] = embeddings(1, seed=100 + j)[0]
        after = multi_id_patch(adapter, other, group, {KEY: layer})(q, k, v, opts)
        assert torch.equal(after[:, owner != j], before[:, owner != j])
        assert not torch.allclose(after[:, owner == j], before[:, owner == j])
