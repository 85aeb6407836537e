"""MGMICA on DiT tokens (TokenIdentities): each identity's residual only on the tokens its face owns,
equal there to that identity computed over the whole picture; text and unowned tokens untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicid_core.diffusion.ownership import owner_map
from magicid_core.diffusion.token_identities import TokenIdentities
from magicid_core.identity.pulid_flux import PulidCrossAttention
from tests.support.pulid_layouts import seed_module

H = W = 8          # token grid
SIZE = 64          # the FACES image, pixels


def _ca():
    return seed_module(PulidCrossAttention(dim=32, kv_dim=16, heads=2), seed=1, std=0.1).eval()


def _tokens(n, seed=2):
    return torch.randn(n, 4, 16, generator=torch.Generator().manual_seed(seed))


def _img(seed=3):
    return torch.randn(2, H * W, 32, generator=torch.Generator().manual_seed(seed))


def _box(y0, y1, x0, x1):
    m = np.zeros((SIZE, SIZE), np.float32)
    m[y0:y1, x0:x1] = 1
    return m


def _apply(identities, img):
    out = img.clone()
    with torch.no_grad():
        identities.add_residuals(_ca(), img, out, H, W)
    return out


def test_one_identity_over_the_whole_image_is_the_plain_residual():
    img = _img()
    ids = TokenIdentities(_tokens(1), np.ones((1, SIZE, SIZE), np.float32), [0.7])
    with torch.no_grad():
        expected = img + 0.7 * _ca()(_tokens(1), img)
    torch.testing.assert_close(_apply(ids, img), expected, rtol=0, atol=1e-6)


def test_disjoint_faces_each_get_their_identity_alone_and_the_rest_is_untouched():
    img, tokens = _img(), _tokens(3)
    masks = np.stack([_box(0, 24, 0, 24), _box(0, 24, 40, 64), _box(40, 64, 16, 48)])
    ours = _apply(TokenIdentities(tokens, masks, [1.0, 0.5, 1.5]), img)
    owner = torch.from_numpy(owner_map(masks, H, W).reshape(-1))
    for i, w in enumerate([1.0, 0.5, 1.5]):
        with torch.no_grad():
            alone = img + w * _ca()(tokens[i:i + 1], img)       # identity i over the whole picture
        torch.testing.assert_close(ours[:, owner == i], alone[:, owner == i], rtol=0, atol=1e-6)
    assert torch.equal(ours[:, owner < 0], img[:, owner < 0])


def test_a_face_smaller_than_a_token_keeps_one_token():
    tiny = _box(30, 31, 30, 31)        # 1 pixel of a 64 px image on an 8x8 grid
    ids = TokenIdentities(_tokens(2), np.stack([_box(0, 64, 0, 64), tiny]), [1.0, 1.0])
    owned = ids.owned_tokens(H, W)
    assert len(owned[1]) == 1 and len(owned[0]) == H * W - 1


def test_weight_zero_changes_nothing():
    img = _img()
    ids = TokenIdentities(_tokens(1), np.ones((1, SIZE, SIZE), np.float32), [0.0])
    assert torch.equal(_apply(ids, img), img)


def test_tokens_and_masks_must_pair():
    with pytest.raises(ValueError, match="2 identities' tokens for 1 face masks"):
        TokenIdentities(_tokens(2), np.ones((1, SIZE, SIZE), np.float32), [1, 1])


def test_kept_keys_and_values_follow_the_cross_attentions_weights():
    """K / V are kept per CA across calls; written weights (a state dict loaded) or a cast CA recompute them."""
    masks = np.stack([_box(0, 32, 0, 64), _box(32, 64, 0, 64)])
    ca, img = _ca(), _img()

    def residual(identities, ca, img):
        out = torch.zeros_like(img)
        with torch.no_grad():
            identities.add_residuals(ca, img, out, H, W)
        return out

    kept = TokenIdentities(_tokens(2), masks, [1.0, 0.8])
    first = residual(kept, ca, img)
    torch.testing.assert_close(residual(kept, ca, img), first, rtol=0, atol=0)
    with torch.no_grad():
        ca.to_kv.weight.mul_(1.5)
        ca.norm1.bias.add_(0.1)
    written = residual(kept, ca, img)
    assert not torch.allclose(written, first)
    torch.testing.assert_close(written, residual(TokenIdentities(_tokens(2), masks, [1.0, 0.8]), ca, img),
                               rtol=0, atol=0)
    ca.double()
    cast = residual(kept, ca, img.double())
    assert cast.dtype == torch.float64
    torch.testing.assert_close(cast, residual(TokenIdentities(_tokens(2), masks, [1.0, 0.8]), ca, img.double()),
                               rtol=0, atol=0)
