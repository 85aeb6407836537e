"""Our own programs inside ComfyUI's sampler: one KSAMPLER shim shared by DDIMInvert and IDRestore.

A program (an inversion, a restore stage) is handed to ComfyUI as the sampler function of a
``KSAMPLER`` under a ``CFGGuider``, so the model call it solves against is exactly the one a stock
sampler makes: conditioning, cfg, ControlNets, model patches and wrappers, latent scaling. The
program only sees ``denoise(x, sigma) -> x0``, the clean latent as the model sees it, and the sigmas.
"""

from __future__ import annotations

import torch

from ...magicid_core.diffusion.inversion import invert, measured_error
from .cancel import cancellable


def schedule_sigmas(model, scheduler: str, steps: int) -> torch.Tensor:
    """The full schedule (steps + 1 sigmas, on the CPU) a stock sampler walks for this model."""
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


def sigma_window(model, start_percent: float, end_percent: float) -> tuple[float, float]:
    """(sigma_start, sigma_end) of a start..end fraction of sampling, as ComfyUI's nodes convert it."""
    sampling = model.get_model_object("model_sampling")
    return float(sampling.percent_to_sigma(start_percent)), float(sampling.percent_to_sigma(end_percent))


def is_flow(model) -> bool:
    """Rectified-flow models (SD3, Flux...): x_sigma = (1 - sigma) x0 + sigma noise."""
    import comfy.model_sampling

    return isinstance(model.get_model_object("model_sampling"), comfy.model_sampling.CONST)


def model_precision(model) -> torch.dtype | None:
    """The dtype the model computes in: its compute (manual cast) dtype when ComfyUI casts the weights
    (fp8 or fp16 weights computed in bf16...), else its weights' dtype; None when unknown. Inversion
    stops at the floor its rounding sets."""
    dtype = model.get_model_object("manual_cast_dtype") or model.model_dtype()
    return dtype if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else None


def model_latent(model, samples: torch.Tensor) -> torch.Tensor:
    """A LATENT's samples with the channels this model expects (ComfyUI's empty-latent fix)."""
    import comfy.sample

    return comfy.sample.fix_empty_latent_channels(model, samples)


def cfg_guider(model, positive, negative, cfg: float):
    """ComfyUI's CFGGuider on ``model``, whose model calls stop within a second of Cancel (cancel.py);
    without a negative (guidance-distilled Flux at cfg 1) only the positive is set, as the stock
    BasicGuider sets it."""
    import comfy.samplers

    guider = comfy.samplers.CFGGuider(cancellable(model))
    if negative is None:
        guider.inner_set_conds({"positive": positive})
    else:
        guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


def run_in_sampler(guider, latent: torch.Tensor, sigmas: torch.Tensor, program) -> torch.Tensor:
    """``program(denoise, clean_latent, sigmas)`` run as ``guider``'s sampler, without added noise.

    ``denoise(x, sigma)`` is ComfyUI's CFG-guided x0 prediction; ``clean_latent`` is ``latent``
    after the model's ``process_latent_in``. The program's result leaves through the model's
    ``inverse_noise_scaling`` and ``process_latent_out`` like any sampler's.
    """
    import comfy.model_management
    import comfy.samplers

    def sampler(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}

        def denoise(x, sigma, **_):
            return model(x, sigma, **extra_args)
        return program(denoise, model.latent_image, sigmas)

    out = guider.sample(torch.zeros_like(latent), latent, comfy.samplers.KSAMPLER(sampler), sigmas,
                        disable_pbar=True, seed=0)
    return out.to(comfy.model_management.intermediate_device())


def invert_in_sampler(model, positive, negative, cfg: float, latent: torch.Tensor, sigmas: torch.Tensor,
                      refinement: int, progress=None):
    """DDIM-invert ``latent`` along ``sigmas`` with the model call of a stock sampler.

    Returns (inverted latent, magicid_core Inversion, measured reconstruction error). The error is
    measured by one stock regeneration, not estimated. The inverted latent is what
    KSamplerAdvanced (add_noise disabled) takes: for flow models, whose stock sampler scales its
    input by (1 - sigma_0) (``noise_scaling`` without noise), it is divided by that factor.
    ``progress(done, total)`` (magicid_core/progress.py) counts the inversion's steps, then the
    measuring regeneration's, and is called between all model calls.
    """
    found = {}

    def stage(before: int):
        """One bar over both passes: the inversion's steps, then the measuring regeneration's."""
        return None if progress is None else (lambda done, steps: progress(before * steps + done, 2 * steps))

    keep = 1.0 - float(sigmas[0]) if is_flow(model) else 1.0

    @torch.no_grad()
    def program(denoise, clean_latent, sampler_sigmas):
        inversion = invert(denoise, clean_latent, sampler_sigmas, refinement=refinement, progress=stage(0),
                           precision=model_precision(model))
        found.update(inversion=inversion, error=measured_error(denoise, inversion, progress=stage(1)))
        return inversion.latent / keep

    inverted = run_in_sampler(cfg_guider(model, positive, negative, cfg), latent, sigmas, program)
    return inverted, found["inversion"], found["error"]
