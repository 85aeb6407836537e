"""DDIMInvert: turn a latent back into the noise that the stock sampler regenerates it from.

The inversion runs inside ComfyUI's own sampling pipeline (``sample_custom`` with a
``KSAMPLER``), so the model call it solves against is exactly the one a stock sampler
makes: conditioning, cfg, model patches and wrappers, latent scaling all included.
"""

from __future__ import annotations

import torch

from ..magicid_core.inversion import DEFAULT_REFINE_ITERS, check_latent, invert, measured_error
from ..magicid_core.schedules import check_denoise, check_steps, partial_sigmas, start_step

from .common import CATEGORY

INVERSION_KEY = "ddim_inversion"  # extra LATENT key: schedule, trajectory, estimate


class DDIMInvert:
    DESCRIPTION = ("Inverts a latent to the noise that the stock euler/ddim sampler (no added noise) "
                   "regenerates it from. Regenerate with KSamplerAdvanced: add_noise disable, the same "
                   "steps and scheduler, start_at_step from this node.")

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {"required": {
            "model": ("MODEL", {"tooltip": "The model that will regenerate the latent (patches included)."}),
            "positive": ("CONDITIONING", {"tooltip": "Conditioning the inversion follows (cfg > 1 only)."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative conditioning (cfg > 1 only)."}),
            "latent_image": ("LATENT", {"tooltip": "The encoded image to invert; a noise_mask is kept."}),
            "steps": ("INT", {"default": 25, "min": 1, "max": 10000,
                              "tooltip": "Steps of the full schedule; regenerate with the same number."}),
            "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "ddim_uniform",
                          "tooltip": "Schedule; regenerate with the same scheduler."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "Fraction of the schedule to invert (1 = to pure noise). "
                                             "Partial inversion ends at the sigma this fraction selects."}),
            "cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Guidance of the inversion. Regeneration gives the image back "
                                         "exactly when it uses this same cfg."}),
            "refinement": ("INT", {"default": DEFAULT_REFINE_ITERS, "min": 0, "max": 100,
                                   "tooltip": "Most extra model calls per step to make the step exact "
                                              "(stops early when it is). 0 = plain DDIM inversion."}),
        }}

    RETURN_TYPES = ("LATENT", "FLOAT", "INT")
    RETURN_NAMES = ("latent", "reconstruction_error", "start_at_step")
    OUTPUT_TOOLTIPS = ("The inverted latent (noise_mask kept; schedule and trajectory under 'ddim_inversion').",
                       "Relative RMSE of regenerating the input from the inverted latent (measured by one "
                       "stock regeneration at this cfg).",
                       "KSamplerAdvanced's start_at_step that regenerates this inversion.")
    FUNCTION = "invert"
    CATEGORY = f"{CATEGORY}/sampling"

    def invert(self, model, positive, negative, latent_image, steps, scheduler, denoise, cfg, refinement):
        import comfy.sample
        import comfy.samplers

        check_steps(steps)
        check_denoise(denoise)
        samples = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        check_latent(samples)
        if not bool(samples.any()):
            raise ValueError("DDIMInvert needs an encoded image (VAE Encode); this latent is all zeros")
        sampling = model.get_model_object("model_sampling")
        sigmas = partial_sigmas(comfy.samplers.calculate_sigmas(sampling, scheduler, steps).cpu(), denoise)
        out = dict(latent_image)
        if len(sigmas) < 2:  # the fraction selects no step: nothing to invert
            return (out, 0.0, steps)

        run = _InversionSampler(sampling, refinement, steps=len(sigmas) - 1)
        out["samples"] = comfy.sample.sample_custom(
            model, torch.zeros_like(samples), cfg, comfy.samplers.KSAMPLER(run), sigmas, positive, negative,
            samples, noise_mask=None, disable_pbar=True, seed=0)  # the mask must not pin the inversion
        inversion = run.inversion
        out[INVERSION_KEY] = {
            "sigmas": inversion.sigmas.cpu(),
            "trajectory": torch.stack([x.cpu() for x in inversion.trajectory]),  # (K+1, B, C, H, W), sampler space
            "reconstruction_error": run.error,
            "estimated_error": inversion.reconstruction_error(),
            "step_residuals": inversion.step_residuals,
            "model_calls": inversion.model_calls,
            "cfg": cfg,
        }
        return (out, run.error, start_step(steps, denoise))


class _InversionSampler:
    """A KSAMPLER sampler function that inverts instead of sampling.

    ComfyUI hands it the latent after ``noise_scaling`` with zero noise: unchanged for
    eps/v models, times (1 - sigma_0) for flow models, whose stock regeneration will
    multiply its input by the same factor; both are undone here so that the returned
    latent regenerates through KSamplerAdvanced (add_noise disabled).
    """

    def __init__(self, sampling, refinement: int, steps: int):
        import comfy.model_sampling
        import comfy.utils

        self.flow = isinstance(sampling, comfy.model_sampling.CONST)
        self.refinement = refinement
        self.progress = comfy.utils.ProgressBar(steps)
        self.inversion, self.error = None, None

    @torch.no_grad()
    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}
        keep = 1.0 - float(sigmas[0]) if self.flow else 1.0
        if keep <= 0.0:
            raise ValueError("a flow model inverted to sigma 1 (pure noise) cannot be regenerated by a stock "
                             "sampler without added noise; use denoise < 1 or a schedule that starts below 1")

        def denoise(x, sigma, **_):
            return model(x, sigma, **extra_args)

        self.inversion = invert(denoise, x / keep, sigmas, refine_iters=self.refinement,
                                callback=lambda done, total, _: self.progress.update_absolute(done, total))
        self.error = measured_error(denoise, self.inversion)  # one stock regeneration: the error, not a guess
        return self.inversion.latent / keep
