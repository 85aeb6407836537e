"""The multi-identity attention patch on real attention tensors of SD1.5 and SDXL layers."""

import math

import numpy as np
import pytest
import torch

from magicid_core.diffusion.attention import IdentityTokens, MultiIDAttention, batch_is_uncond, sdpa_attention
from magicid_core.diffusion.placement import assign_faces
from magicid_core.diffusion.ownership import owner_map
from tests.support.mgmica_layouts import KEY, attention_inputs

# (cells a side, width, heads) of every cross-attention layer size: SD1.5 at 512 px, SDXL at 1024 px.
SD15_LAYERS = [(64, 320, 8), (32, 640, 8), (16, 1280, 8), (8, 1280, 8)]
SDXL_LAYERS = [(64, 640, 10), (32, 1280, 20)]


def faces_masks(size, n=3):
    """n face discs side by side in a size x size image, the last one tiny."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    centres = [(0.25, 0.4, 0.18), (0.55, 0.45, 0.15), (0.8, 0.7, 0.03)][:n]
    return np.stack([((yy - cy * size) ** 2 + (xx - cx * size) ** 2 <= (r * size) ** 2).astype(np.float32)
                     for cx, cy, r in centres])


def make_tokens(n, width, context=768, t=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return IdentityTokens(cond=torch.randn(n, t, context, generator=g),
                          uncond=torch.randn(n, t, context, generator=g),
                          to_k=[torch.randn(width, context, generator=g) * context ** -0.5],
                          to_v=[torch.randn(width, context, generator=g) * context ** -0.5])


def manual_attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v per head, written out (independent of the patch's SDPA call)."""
    b, n, width = q.shape
    d = width // heads
    qh, kh, vh = (t.reshape(t.shape[0], t.shape[1], heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    p = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (p @ vh).permute(0, 2, 1, 3).reshape(b, n, width)


@pytest.mark.parametrize("cells,width,heads", SD15_LAYERS + SDXL_LAYERS)
def test_identity_acts_only_on_cells_it_owns(cells, width, heads):
    masks = faces_masks(256)
    tokens = make_tokens(3, width)
    q, k, v, opts = attention_inputs(cells, width, heads)
    patch = MultiIDAttention(tokens, masks, [1.0, 0.8, 1.2], {KEY: 0})
    base = patch(q, k, v, opts)
    owner = torch.from_numpy(owner_map(masks, cells, cells).reshape(-1))
    for j in range(3):
        other = make_tokens(3, width, seed=10 + j)
        changed = IdentityTokens(tokens.cond.clone(), tokens.uncond.clone(), tokens.to_k, tokens.to_v)
        changed.cond[j], changed.uncond[j] = other.cond[j], other.uncond[j]
        out = MultiIDAttention(changed, masks, [1.0, 0.8, 1.2], {KEY: 0})(q, k, v, opts)
        elsewhere = owner != j
        assert torch.equal(out[:, elsewhere], base[:, elsewhere]), "identity j leaked outside its cells"
        assert not torch.allclose(out[:, owner == j], base[:, owner == j])


@pytest.mark.parametrize("cells,width,heads", [SD15_LAYERS[1], SDXL_LAYERS[1]])
def test_each_owned_cell_gets_its_owners_ip_adapter_residual(cells, width, heads):
    masks, weights = faces_masks(256), [1.0, 0.5, 2.0]
    tokens = make_tokens(3, width)
    q, k, v, opts = attention_inputs(cells, width, heads)
    out = MultiIDAttention(tokens, masks, weights, {KEY: 0})(q, k, v, opts)
    text = manual_attention(q, k, v, heads)
    owner = torch.from_numpy(owner_map(masks, cells, cells).reshape(-1))
    assert torch.allclose(out[:, owner < 0], text[:, owner < 0], atol=1e-5)
    uncond = batch_is_uncond(2, opts)
    for j in range(3):
        for b in range(2):
            t = tokens.uncond[j] if uncond[b] else tokens.cond[j]
            ip = manual_attention(q[b:b + 1], (t @ tokens.to_k[0].T)[None], (t @ tokens.to_v[0].T)[None], heads)
            cells_j = owner == j
            assert torch.allclose(out[b, cells_j], text[b, cells_j] + weights[j] * ip[0, cells_j], atol=1e-5)


def test_one_identity_with_a_full_mask_is_a_plain_ip_adapter():
    cells, width, heads = SD15_LAYERS[0]
    tokens = make_tokens(1, width)
    q, k, v, opts = attention_inputs(cells, width, heads)
    out = MultiIDAttention(tokens, np.ones((1, 512, 512), np.float32), [0.7], {KEY: 0})(q, k, v, opts)
    # IP-Adapter: Attn(q, K_text, V_text) + w Attn(q, K_ip, V_ip); uncond rows read the uncond tokens.
    plain = []
    for b, is_uncond in enumerate(batch_is_uncond(2, opts)):
        t = tokens.uncond[0] if is_uncond else tokens.cond[0]
        plain.append(manual_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], heads)
                     + 0.7 * manual_attention(q[b:b + 1], (t @ tokens.to_k[0].T)[None], (t @ tokens.to_v[0].T)[None], heads))
    assert (out - torch.cat(plain)).abs().max() < 1e-6


def test_weight_zero_is_unpatched_attention_exactly():
    cells, width, heads = SD15_LAYERS[1]
    q, k, v, opts = attention_inputs(cells, width, heads)
    unpatched = sdpa_attention(q, k, v, heads)
    masks = faces_masks(256)
    assert torch.equal(MultiIDAttention(make_tokens(3, width), masks, [0, 0, 0], {KEY: 0})(q, k, v, opts), unpatched)
    # One identity at weight 0 among others: its cells are exactly unpatched.
    out = MultiIDAttention(make_tokens(3, width), masks, [1, 0, 1], {KEY: 0})(q, k, v, opts)
    mine = torch.from_numpy(owner_map(masks, cells, cells).reshape(-1)) == 1
    assert torch.equal(out[:, mine], unpatched[:, mine])


def test_schedule_and_unknown_layers_leave_attention_unchanged():
    cells, width, heads = SD15_LAYERS[2]
    q, k, v, opts = attention_inputs(cells, width, heads)
    unpatched = sdpa_attention(q, k, v, heads)
    patch = MultiIDAttention(make_tokens(3, width), faces_masks(256), [1, 1, 1], {KEY: 0}, sigma_range=(4.0, 1.0))
    assert torch.equal(patch(q, k, v, opts), unpatched)                     # sigma 5 > start 4
    assert not torch.equal(patch(q, k, v, {**opts, "sigmas": torch.tensor([2.0, 2.0])}), unpatched)
    assert torch.equal(patch(q, k, v, {**opts, "block": ("output", 7)}), unpatched)


def test_cond_and_uncond_rows_follow_cond_or_uncond():
    cells, width, heads = SD15_LAYERS[2]
    q, k, v, opts = attention_inputs(cells, width, heads)
    q = torch.cat([q[:1], q[:1]])                                           # same queries in both rows
    patch = MultiIDAttention(make_tokens(2, width), faces_masks(256, 2), [1, 1], {KEY: 0})
    a = patch(q, k[:1].expand(2, -1, -1), v[:1].expand(2, -1, -1), {**opts, "cond_or_uncond": [0, 1]})
    b = patch(q, k[:1].expand(2, -1, -1), v[:1].expand(2, -1, -1), {**opts, "cond_or_uncond": [1, 0]})
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0]) and not torch.allclose(a[0], a[1])


def test_stacks_on_another_attn2_patch():
    cells, width, heads = SD15_LAYERS[2]
    q, k, v, opts = attention_inputs(cells, width, heads)
    other = lambda q, k, v, o: sdpa_attention(q, k, v, o["n_heads"]) * 0.5
    patch = MultiIDAttention(make_tokens(2, width), faces_masks(256, 2), [1, 1], {KEY: 0})
    stacked = patch.stacked_on({KEY[:2]: other})
    assert torch.allclose(stacked(q, k, v, opts), other(q, k, v, opts) + patch.residual(q, opts), atol=1e-6)


def test_cropped_copy_for_a_zoomed_face():
    cells, width, heads = 32, 640, 8
    masks = faces_masks(256)
    patch = MultiIDAttention(make_tokens(3, width), masks, [1, 1, 1], {KEY: 0})
    zoom = patch.cropped((40, 70, 100, 130), (256, 256))                # around face 0 only
    assert zoom.masks.shape == (1, 256, 256) and len(zoom.tokens.cond) == 1
    assert torch.equal(zoom.tokens.cond[0], patch.tokens.cond[0])
    q, k, v, opts = attention_inputs(cells, width, heads)
    assert torch.isfinite(zoom(q, k, v, opts)).all()
    nobody = patch.cropped((200, 0, 256, 20), (64, 64))                  # no face in the box
    assert torch.equal(nobody(q, k, v, opts), sdpa_attention(q, k, v, heads))


def test_bad_inputs_give_clear_errors():
    cells, width, heads = SD15_LAYERS[2]
    masks = faces_masks(256)
    with pytest.raises(ValueError, match="empty"):
        MultiIDAttention(make_tokens(2, width), np.stack([masks[0], np.zeros_like(masks[0])]), [1, 1], {KEY: 0})
    with pytest.raises(ValueError, match="as many masks"):
        MultiIDAttention(make_tokens(2, width), masks, [1, 1], {KEY: 0})
    q, k, v, opts = attention_inputs(cells, width, heads)
    wide = np.ones((3, 256, 512), np.float32)                              # a 2:1 image, a square latent
    with pytest.raises(ValueError, match="aspect ratio"):
        MultiIDAttention(make_tokens(3, width), wide, [1, 1, 1], {KEY: 0})(q, k, v, opts)


class _Rec:
    """Stands in for an Identity or a Face: an L2-normalised embedding and its model."""

    def __init__(self, embedding, model="arcface:antelopev2"):
        self.embedding, self.embedding_model = embedding / np.linalg.norm(embedding), model


def test_face_assignment():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(3, 512)).astype(np.float32)
    faces = [_Rec(e[2] + 0.1 * rng.normal(size=512)), _Rec(e[0]), _Rec(e[1] + 0.1 * rng.normal(size=512))]
    people = [_Rec(x) for x in e]
    assert assign_faces(people, faces, None) == [1, 2, 0]                   # matched by identity
    assert assign_faces(people, faces, [2, -1, 0]) == [2, -1, 0]            # explicit wins
    assert assign_faces([_Rec(x, "dlib") for x in e], faces, None) == [0, 1, 2]   # not comparable: order
    stranger = [faces[0], faces[1], _Rec(rng.normal(size=512))]
    assert assign_faces(people, stranger, None) == [1, -1, 0]             # person 1 absent: unplaced
    with pytest.raises(ValueError, match="only 2 faces"):
        assign_faces(people, faces[:2], None)
    with pytest.raises(ValueError, match="no faces"):
        assign_faces(people, [], None)
    with pytest.raises(ValueError, match="same face"):
        assign_faces(people, faces, [0, 0, 1])
    with pytest.raises(ValueError, match="do not exist"):
        assign_faces(people, faces, [0, 5, 1])
