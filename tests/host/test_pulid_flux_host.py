"""MultiIDApply's PuLID-Flux injection against lldacing/ComfyUI_PuLID_Flux_ll's ApplyPulidFlux, in ComfyUI.

A tiny Flux (ComfyUI's own Flux class, Flux.1's 19 + 38 blocks, 64 wide) and a seeded PuLID-Flux file
of the real key layout written by the reference's own classes at the tiny width (the reference's
hard-coded IDFormer / CA dims are set to the tiny model's; its code is otherwise run as shipped,
forward_orig swap included). Both sides get the same ArcFace vector and EVA-CLIP features:
- one identity over the whole image gives ApplyPulidFlux's denoised latents;
- four identities in disjoint quadrants, in one pass, give four chained ApplyPulidFlux nodes, each
  with its quadrant as attn_mask (every token then gets what its identity alone gives it);
at the first, a middle and the last step, to 1e-5 of the largest latent.

The reference's inputs (insightface's FaceAnalysis, the EVA-CLIP model, and facexlib / timm / ftfy where
they are not installed) are stand-ins: tests/host/pulid_reference.py says which and why.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicid_core.diffusion.token_identities import TokenIdentities
from tests.support.mask_faces import faces_from_masks
from magicid_core.faces.records import Identity, PulidInputs
from magicid_core.identity.adapters import parse_adapter
from magicid_core.identity.pulid_flux import hooked_blocks, load_pulid_flux
from tests.host.pulid_reference import FILE, identity_inputs, load_reference
from tests.host.pulid_reference import apply_pulid_flux as reference_apply
from tests.host.tiny_models import flux_conditioning, tiny_flux_model, tiny_sd15_model
from tests.support.mgmica_layouts import faceid_state_dict
from tests.support.pulid_layouts import missing_reference

pytestmark = pytest.mark.skipif(bool(missing_reference()), reason=missing_reference() or "present")

TOLERANCE = 1e-5                     # of the largest latent
STEPS = 3
LATENT = 16                          # 16 x 16 latent: an 8 x 8 token grid, a 128 px image
SIZE = LATENT * 8


@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    import sys
    from types import SimpleNamespace

    path, added = load_reference(comfy_nodes, tmp_path_factory.mktemp("pulid_reference"))
    yield SimpleNamespace(classes=comfy_nodes.NODE_CLASS_MAPPINGS, path=path, base=tiny_flux_model(seed=1))
    for name in added:
        sys.modules.pop(name, None)


def apply_pulid_flux(host, model, seed, weight, start=0.0, end=1.0, mask=None):
    return reference_apply(host.classes, model, seed, weight, start, end, mask, size=SIZE)


# -- the two sides ----------------------------------------------------------------------------------

def pack_module(host, name: str):
    """A module of this pack as ComfyUI loaded it (its nodes package is not importable by name)."""
    import importlib

    return importlib.import_module(host.classes["MultiIDApply"].__module__.rsplit(".", 1)[0] + "." + name)


def ours(host, seeds, masks, weights, start=0.0, end=1.0):
    add_pulid_identities = pack_module(host, "host.dit").add_pulid_identities
    sigma_window = pack_module(host, "host.sampling").sigma_window
    pulid = load_pulid_flux(host.path)
    tokens = torch.cat([pulid.identity_tokens(torch.from_numpy(raw)[None], eva, hidden)
                        for raw, eva, hidden in (identity_inputs(s) for s in seeds)])
    identities = TokenIdentities(tokens, np.stack(masks), weights, sigma_window(host.base, start, end))
    return add_pulid_identities(host.base, identities, pulid, hooked_blocks(19, 38))


def denoised_steps(model, cfg=2.0, seed=3) -> torch.Tensor:
    """Denoised latents of the first, a middle and the last of STEPS euler steps (cond + uncond batched)."""
    import comfy.sample

    latent = torch.zeros(1, 16, LATENT, LATENT)
    seen = []
    comfy.sample.sample(model, comfy.sample.prepare_noise(latent, seed), STEPS, cfg, "euler", "simple",
                        flux_conditioning(1), flux_conditioning(2), latent,
                        callback=lambda i, x0, x, n: seen.append(x0.clone()), disable_pbar=True, seed=seed)
    assert len(seen) == STEPS
    return torch.stack([seen[0], seen[STEPS // 2], seen[-1]])


def check_close(label, a, b):
    scale = float(b.abs().max())
    diff = float((a - b).abs().max())
    print(f"{label}: max |ours - reference| = {diff:.3g} (largest latent {scale:.3g})")
    assert diff <= TOLERANCE * scale, f"{label}: {diff:.3g} > {TOLERANCE:g} x {scale:.3g}"


def quadrant(i: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    half = SIZE // 2
    m[(i // 2) * half:(i // 2 + 1) * half, (i % 2) * half:(i % 2 + 1) * half] = 1
    return m


# -- the tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [(0.0, 1.0), (0.0, 0.5)])
def test_one_identity_over_the_whole_image_equals_apply_pulid_flux(host, window):
    theirs = denoised_steps(apply_pulid_flux(host, host.base, 0, 0.9, *window))
    mine = denoised_steps(ours(host, [0], [np.ones((SIZE, SIZE), np.float32)], [0.9], *window))
    check_close(f"one identity, window {window}", mine, theirs)
    assert float((mine - denoised_steps(host.base)).abs().max()) > 1e-3, "the identity must change the picture"


WEIGHTS = [1.0, 0.6, 1.2, 0.8]


@pytest.fixture(scope="module")
def four_chained(host):
    """Four ApplyPulidFlux nodes in a chain, identity i masked to quadrant i: what users run today."""
    chained = host.base
    for i, w in enumerate(WEIGHTS):
        chained = apply_pulid_flux(host, chained, i, w, mask=quadrant(i))
    return denoised_steps(chained)


def test_four_identities_in_quadrants_equal_four_masked_apply_pulid_flux(host, four_chained):
    mine = denoised_steps(ours(host, [0, 1, 2, 3], [quadrant(i) for i in range(4)], WEIGHTS))
    check_close("four identities", mine, four_chained)


# -- through the nodes ------------------------------------------------------------------------------

def identity(seed: int, with_pulid: bool = True) -> Identity:
    """What IdentityFromImages makes of a face for PuLID: the ArcFace vector and the EVA-CLIP features."""
    raw, eva, hidden = identity_inputs(seed)
    norm = float(np.linalg.norm(raw))
    pulid = PulidInputs(raw[None].astype(np.float32), eva.numpy(), np.stack([h.numpy() for h in hidden]))
    return Identity(name=f"person {seed}", embedding=(raw / norm).astype(np.float32), embedding_model="arcface:test",
                    embedding_norm=norm, pulid=pulid if with_pulid else None)


def multi_id_apply(host, model, seeds, masks, weights=None, adapter=None, **kw):
    if adapter is None:
        (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"pulid/{FILE}")
    multipliers = ", ".join(str(w) for w in weights) if weights else ""
    return host.classes["MultiIDApply"]().apply(model, adapter, [identity(s) for s in seeds], faces_from_masks(masks),
                                                1.0, 0.0, 1.0, identity_weights=multipliers,
                                                face_indices=", ".join(str(i) for i in range(len(seeds))), **kw)


def test_multi_id_apply_node_on_flux_equals_four_masked_apply_pulid_flux(host, four_chained):
    model, ownership = multi_id_apply(host, host.base, [0, 1, 2, 3], [quadrant(i) for i in range(4)], WEIGHTS)
    check_close("MultiIDApply node, four identities", denoised_steps(model), four_chained)
    assert ownership.shape == (1, SIZE, SIZE, 3)


@pytest.mark.parametrize("order", ["ApplyPulidFlux first", "MultiIDApply first"])
def test_stacks_with_apply_pulid_flux_in_either_order(host, order):
    """Stacked on ApplyPulidFlux's block replacements (or it on ours), every residual still comes from the
    block's own output: the result is the two chained ApplyPulidFlux nodes'."""
    if order == "ApplyPulidFlux first":
        stacked = multi_id_apply(host, apply_pulid_flux(host, host.base, 0, 0.7), [1], [quadrant(3)])[0]
        reference = apply_pulid_flux(host, apply_pulid_flux(host, host.base, 0, 0.7), 1, 1.0, mask=quadrant(3))
    else:
        stacked = apply_pulid_flux(host, multi_id_apply(host, host.base, [1], [quadrant(3)])[0], 0, 0.7)
        reference = apply_pulid_flux(host, apply_pulid_flux(host, host.base, 1, 1.0, mask=quadrant(3)), 0, 0.7)
    check_close(f"stacked, {order}", denoised_steps(stacked), denoised_steps(reference))


# -- bad input --------------------------------------------------------------------------------------

def test_a_pulid_file_given_to_an_sd_model_is_refused(host):
    with pytest.raises(ValueError, match="PuLID-Flux, made for Flux.1, but this model is an SD UNet"):
        multi_id_apply(host, tiny_sd15_model(), [0], [quadrant(0)])


def test_an_sd_adapter_given_to_flux_is_refused(host):
    faceid = parse_adapter(faceid_state_dict(), "ip-adapter-faceid_sd15.bin")
    with pytest.raises(ValueError, match="is an SD adapter.*this model is Flux.1: load pulid_flux"):
        multi_id_apply(host, host.base, [0], [quadrant(0)], adapter=faceid)


def test_an_identity_without_pulid_inputs_is_refused_by_name(host):
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"pulid/{FILE}")
    with pytest.raises(ValueError, match=r"\['person 5'\] carry no PuLID inputs"):
        host.classes["MultiIDApply"]().apply(host.base, adapter, [identity(5, with_pulid=False)],
                                             faces_from_masks([quadrant(0)]), 1.0, 0.0, 1.0)


def test_more_faces_than_tokens_is_refused(host):
    """A 128 px picture has 8 x 8 Flux tokens: 65 faces cannot each keep one."""
    masks = []
    for i in range(65):
        m = np.zeros((SIZE, SIZE), np.float32)
        m[(i // 16) * 8:(i // 16) * 8 + 2, (i % 16) * 8:(i % 16) * 8 + 2] = 1
        masks.append(m)
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"pulid/{FILE}")
    with pytest.raises(ValueError, match="65 faces cannot each own a cell of a 8x8"):
        host.classes["MultiIDApply"]().apply(host.base, adapter, [identity(i % 4) for i in range(65)],
                                             faces_from_masks(masks), 1.0, 0.0, 1.0,
                                             face_indices=", ".join(str(i) for i in range(65)))
