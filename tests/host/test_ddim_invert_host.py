"""DDIMInvert inside a real ComfyUI: invert with the node, regenerate with stock KSamplerAdvanced.

Two models run through ComfyUI's real sampler: the tiny seeded SD1.5-shaped UNet, and
an analytic Gaussian-mixture denoiser plugged in with ``set_model_unet_function_wrapper``
(the wrapper gets the raw latent and sigma and returns x0), whose exact answer is known.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

from tests.support.analytic import GaussianMixtureDenoiser
from magicid_core.diffusion.inversion import relative_rmse
from magicid_core.diffusion.schedules import ddim_uniform, sd_discrete_sigmas

from tests.host.tiny_models import text_conditioning, tiny_sd15_model

STEPS = 25
SHAPE = (4, 16, 16)      # latent of a 128 x 128 image, for the analytic model
UNET_STEPS = 10          # the tiny UNet costs ~0.3 s a call on a shared CPU: fewer, smaller steps
UNET_SHAPE = (1, 4, 8, 8)
UNET_BOUND = 5e-5


@pytest.fixture(scope="module")
def nodes_(comfy_nodes):
    return comfy_nodes


def _mixture(seed=0, prediction="eps") -> GaussianMixtureDenoiser:
    gen = torch.Generator().manual_seed(seed)
    return GaussianMixtureDenoiser(torch.randn((4,) + SHAPE, generator=gen), std=0.5, prediction=prediction)


def _analytic_model(mixture):
    """The tiny model patcher whose UNet call is replaced by the mixture's posterior mean."""
    model = tiny_sd15_model().clone()
    model.set_model_unet_function_wrapper(lambda apply_model, args: mixture(args["input"], args["timestep"]))
    return model


def _latent(model, mixture, seed=1, batch=1):
    """An off-data latent (mixture mean plus noise) in LATENT space (before the model's scaling)."""
    x0 = mixture.sample_data(batch, torch.Generator().manual_seed(seed), off_data=0.5)
    return {"samples": model.get_model_object("latent_format").process_out(x0)}


def _invert(nodes_, model, latent, cfg=1.0, denoise=1.0, refinement=None, steps=STEPS):
    node = nodes_.NODE_CLASS_MAPPINGS["DDIMInvert"]()
    pos, neg = text_conditioning(1), text_conditioning(2)
    if refinement is None:  # the node's default: what a user gets without touching it
        refinement = node.INPUT_TYPES()["required"]["refinement"][1]["default"]
    return node.invert(model, pos, latent, steps, "ddim_uniform", denoise, cfg, refinement, negative=neg)


def _regenerate(nodes_, model, latent, start_at_step=0, cfg=1.0, steps=STEPS, sampler="euler"):
    pos, neg = text_conditioning(1), text_conditioning(2)
    (out,) = nodes_.KSamplerAdvanced().sample(model, "disable", 0, steps, cfg, sampler, "ddim_uniform", pos, neg,
                                              latent, start_at_step, 10000, "disable")
    return out["samples"]


def test_schedule_helpers_match_comfy(nodes_):
    import comfy.samplers

    sampling = tiny_sd15_model().get_model_object("model_sampling")
    for steps in (1, 10, 25, 50):
        ours = ddim_uniform(sd_discrete_sigmas(), steps)
        theirs = comfy.samplers.calculate_sigmas(sampling, "ddim_uniform", steps)
        assert torch.equal(ours, theirs.float().cpu()), steps


def test_analytic_model_regenerates_within_bound(nodes_):
    mixture = _mixture()
    model = _analytic_model(mixture)
    latent = _latent(model, mixture, batch=2)
    inverted, reported, start = _invert(nodes_, model, latent)
    assert start == 0
    assert inverted["samples"].shape == latent["samples"].shape
    regenerated = _regenerate(nodes_, model, inverted)
    error = relative_rmse(regenerated, latent["samples"])
    assert error <= 1e-5
    assert reported == pytest.approx(error, rel=0.5, abs=1e-6)  # the node reports what KSamplerAdvanced gives
    assert relative_rmse(_regenerate(nodes_, model, inverted, sampler="ddim"), latent["samples"]) <= 1e-5
    # the plain inversion (refinement 0) through the same pipeline is far worse
    plain, _, _ = _invert(nodes_, model, latent, refinement=0)
    assert relative_rmse(_regenerate(nodes_, model, plain), latent["samples"]) > 100 * max(error, 1e-7)


@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
def test_half_precision_model_inverts_to_its_floor_in_few_calls(nodes_, precision):
    """A model computing in fp16 / bf16 (ComfyUI's compute dtype; the analytic x0 rounded to it): DDIMInvert
    reads the dtype and stops refining at the floor its rounding sets, within 2x of the error refinement
    reaches when it is told nothing (the model taken for float32, refining until the residual stalls),
    in at most 3.5x the calls of plain DDIM."""
    package = nodes_.NODE_CLASS_MAPPINGS["DDIMInvert"].__module__.rsplit(".", 1)[0]
    model_precision = sys.modules[package + ".host.sampling"].model_precision
    mixture = _mixture()
    told_nothing = tiny_sd15_model().clone()
    told_nothing.set_model_unet_function_wrapper(
        lambda apply_model, args: mixture(args["input"], args["timestep"]).to(precision).float())
    assert model_precision(told_nothing) == torch.float32
    rounded = told_nothing.clone()
    rounded.set_model_compute_dtype(precision)
    assert model_precision(rounded) == precision
    latent = _latent(rounded, mixture)
    ours, error, _ = _invert(nodes_, rounded, latent)
    best, best_error, _ = _invert(nodes_, told_nothing, latent)
    assert ours["ddim_inversion"]["model_calls"] <= 3.5 * STEPS < best["ddim_inversion"]["model_calls"]
    assert error <= 2 * best_error
    assert error < 0.1 * _invert(nodes_, rounded, latent, refinement=0)[1]     # and far below plain DDIM


def test_flow_model_regenerates_within_bound(nodes_):
    # ComfyUI's own ModelSamplingSD3 node turns the model into a flow (CONST) model
    mixture = _mixture(prediction="flow")
    (model,) = nodes_.NODE_CLASS_MAPPINGS["ModelSamplingSD3"]().patch(_analytic_model(mixture), 3.0)
    latent = _latent(model, mixture)
    inverted, reported, _ = _invert(nodes_, model, latent)
    error = relative_rmse(_regenerate(nodes_, model, inverted), latent["samples"])
    assert error <= 1e-5
    assert reported == pytest.approx(error, rel=0.5, abs=1e-6)
    # a flow schedule that starts at sigma 1 leaves nothing a stock sampler can start from
    with pytest.raises(ValueError, match="sigma 1"):
        nodes_.NODE_CLASS_MAPPINGS["DDIMInvert"]().invert(
            model, text_conditioning(1), latent, 10, "simple", 1.0, 1.0, 2, negative=text_conditioning(2))


def test_partial_inversion_regenerates_from_start_step(nodes_):
    mixture = _mixture()
    model = _analytic_model(mixture)
    latent = _latent(model, mixture)
    inverted, _, start = _invert(nodes_, model, latent, denoise=0.5)
    assert start == STEPS - round(STEPS * 0.5)
    record = inverted["ddim_inversion"]
    assert len(record["sigmas"]) == STEPS - start + 1
    assert record["trajectory"].shape[0] == len(record["sigmas"])
    assert relative_rmse(_regenerate(nodes_, model, inverted, start_at_step=start), latent["samples"]) <= 1e-5


def _unet_latent(seed):
    return {"samples": torch.randn(UNET_SHAPE, generator=torch.Generator().manual_seed(seed))}


def test_tiny_unet_with_cfg_regenerates(nodes_):
    model = tiny_sd15_model()
    latent = _unet_latent(3)
    inverted, reported, _ = _invert(nodes_, model, latent, cfg=2.0, steps=UNET_STEPS)
    error = relative_rmse(_regenerate(nodes_, model, inverted, cfg=2.0, steps=UNET_STEPS), latent["samples"])
    assert error <= UNET_BOUND
    assert reported == pytest.approx(error, rel=0.5, abs=1e-6)  # the node reports what KSamplerAdvanced gives


def test_attn2_patched_model_inverts_and_patch_fires(nodes_):
    base = tiny_sd15_model()
    calls = {"n": 0}

    def sharpen(q, k, v, extra_options):
        # a stand-in for an identity patch: attention with doubled logits, counted
        import comfy.ldm.modules.attention as attention

        calls["n"] += 1
        return attention.optimized_attention(q * 2.0, k, v, extra_options["n_heads"])

    patched = base.clone()
    patched.set_model_attn2_replace(sharpen, "input", 1)
    patched.set_model_attn2_replace(sharpen, "middle", 0)
    latent = _unet_latent(4)
    inverted, _, _ = _invert(nodes_, patched, latent, steps=UNET_STEPS)
    assert calls["n"] > 0, "the attn2 patch did not fire during inversion"
    error_patched = relative_rmse(_regenerate(nodes_, patched, inverted, steps=UNET_STEPS), latent["samples"])
    error_unpatched = relative_rmse(_regenerate(nodes_, base, inverted, steps=UNET_STEPS), latent["samples"])
    assert error_patched <= UNET_BOUND
    assert error_unpatched > 10 * error_patched  # the patch mattered, and inversion honoured it


def test_noise_mask_is_kept_and_no_step_is_a_no_op(nodes_):
    mixture = _mixture()
    model = _analytic_model(mixture)
    latent = _latent(model, mixture)
    latent["noise_mask"] = torch.ones((1, 1, 128, 128))
    inverted, _, _ = _invert(nodes_, model, latent, steps=10)
    assert inverted["noise_mask"] is latent["noise_mask"]
    unchanged, reported, start = _invert(nodes_, model, latent, steps=10, denoise=0.04)  # round(0.4) = 0 steps
    assert torch.equal(unchanged["samples"], latent["samples"]) and reported == 0.0 and start == 10
    assert torch.equal(_regenerate(nodes_, model, unchanged, start_at_step=start, steps=10), latent["samples"])


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps"),
    ({"denoise": 0.0}, "denoise"),
    ({"denoise": 1.5}, "denoise"),
])
def test_bad_settings_give_clear_errors(nodes_, kwargs, message):
    mixture = _mixture()
    model = _analytic_model(mixture)
    with pytest.raises(ValueError, match=message):
        _invert(nodes_, model, _latent(model, mixture), **kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_latent_is_rejected(nodes_, bad):
    mixture = _mixture()
    model = _analytic_model(mixture)
    latent = _latent(model, mixture)
    latent["samples"][0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="latent_image: 1 of its 1024 latent values are NaN or infinite"):
        _invert(nodes_, model, latent)


def test_empty_latent_is_rejected(nodes_):
    mixture = _mixture()
    model = _analytic_model(mixture)
    with pytest.raises(ValueError, match="all zeros"):
        _invert(nodes_, model, {"samples": torch.zeros((1,) + SHAPE)})
