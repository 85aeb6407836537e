"""PuLID-Flux's IDFormer and block cross-attentions against the reference's own classes.

At real dims, on a seeded file with the real key layout (``pulid_encoder.*``, ``pulid_ca.{0..19}.*``,
16-bit as the released files) written by the reference's classes (tests/support/pulid_layouts.py):
our loader reads it, and for the same ArcFace vector and EVA-CLIP features the identity tokens and
every CA residual equal the reference's to float32 rounding (1e-5 of the largest value).
The reference (lldacing/ComfyUI_PuLID_Flux_ll's encoders_flux.py) imports without ComfyUI.
"""

from __future__ import annotations

import gc

import pytest
import torch
from safetensors.torch import save_file

from magicid_core.identity.pulid_flux import hooked_blocks, load_pulid_flux, parse_pulid_flux
from tests.support.pulid_layouts import (ca_state_dict, missing_reference, pulid_flux_state_dict,
                                         reference_encoders, seed_module)

TOLERANCE = 1e-5
needs_reference = pytest.mark.skipif(bool(missing_reference()), reason=missing_reference() or "present")


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _inputs(seed: int = 3):
    """An insightface-like raw ArcFace vector (norm ~ 25), an EVA-CLIP embedding and 5 hidden states."""
    gen = torch.Generator().manual_seed(seed)
    arcface = torch.randn(1, 512, generator=gen) * 1.1
    eva = torch.randn(1, 768, generator=gen)
    hidden = [torch.randn(1, 577, 1024, generator=gen) for _ in range(5)]
    return arcface, eva, hidden


@pytest.fixture(scope="module")
def real_file(tmp_path_factory):
    encoders = reference_encoders()
    path = tmp_path_factory.mktemp("pulid") / "pulid_flux_v0.9.1.safetensors"
    state = pulid_flux_state_dict(encoders)
    save_file(state, str(path))
    del state
    gc.collect()
    return encoders, path


@needs_reference
def test_hooked_blocks_are_the_references():
    # PulidFluxModel: a CA at every 2nd of 19 double blocks and every 4th of 38 single blocks: 20
    blocks = hooked_blocks(19, 38)
    assert len(blocks) == 20
    assert blocks[:10] == [("double_block", i) for i in range(0, 19, 2)]
    assert blocks[10:] == [("single_block", i) for i in range(0, 38, 4)]


@needs_reference
def test_identity_tokens_and_every_ca_equal_the_reference(real_file):
    encoders, path = real_file
    ours = load_pulid_flux(str(path))
    assert len(ours.cross_attentions) == 20 and ours.width == 3072
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        encoder_sd = {k[len("pulid_encoder."):]: f.get_tensor(k).float() for k in f.keys()
                      if k.startswith("pulid_encoder.")}
    theirs = encoders.IDFormer()
    theirs.load_state_dict(encoder_sd, strict=True)
    del encoder_sd
    arcface, eva, hidden = _inputs()
    with torch.no_grad():
        their_tokens = theirs(torch.cat([arcface, eva / torch.norm(eva, 2, 1, True)], dim=-1), hidden)
    del theirs
    gc.collect()
    our_tokens = ours.identity_tokens(arcface, eva, hidden)
    assert our_tokens.shape == (1, 32, 2048)
    assert _relative(our_tokens, their_tokens) < TOLERANCE

    img = torch.randn(2, 96, 3072, generator=torch.Generator().manual_seed(5))  # a cond / uncond pair
    with safe_open(str(path), "pt") as f:
        for i in range(20):
            prefix = f"pulid_ca.{i}."
            ca = encoders.PerceiverAttentionCA()
            ca.load_state_dict({k[len(prefix):]: f.get_tensor(k).float() for k in f.keys() if k.startswith(prefix)})
            with torch.no_grad():
                their_residual = ca(their_tokens, img)
                our_residual = ours.cross_attentions[i](their_tokens, img)
            assert _relative(our_residual, their_residual) < TOLERANCE, f"pulid_ca.{i}"


@needs_reference
def test_a_file_of_another_layout_is_refused_by_name():
    encoders = reference_encoders()
    state = ca_state_dict(encoders, 0, dim=64, dim_head=128, heads=2, kv_dim=32)
    with pytest.raises(ValueError, match="not a PuLID-Flux file"):
        parse_pulid_flux(state, "ip-adapter.bin")
    tiny = pulid_flux_state_dict(encoders, count=2, encoder_dims=dict(dim=64, depth=5, heads=1, output_dim=32),
                                 ca_dims=dict(dim=64, dim_head=128, heads=2, kv_dim=32))
    del tiny["pulid_ca.1.to_kv.weight"]
    with pytest.raises(ValueError, match=r"pulid_ca\.1\.to_kv.*layout"):
        parse_pulid_flux(tiny, "pulid_flux_v0.9.1.safetensors")


def test_a_pickled_file_is_not_read(tmp_path):
    path = tmp_path / "pulid_flux_v0.9.1.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="safetensors"):
        load_pulid_flux(str(path))
