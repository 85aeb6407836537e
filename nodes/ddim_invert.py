"""DDIMInvert: turn a latent back into the noise that the stock sampler regenerates it from.

The inversion runs inside ComfyUI's own sampling (host/sampling.py), so the model call it
solves against is exactly the one a stock sampler makes: conditioning, cfg, model patches
and wrappers, latent scaling all included. Words: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

import torch

from ..magicid_core.diffusion.inversion import DEFAULT_REFINEMENT, check_latent
from ..magicid_core.diffusion.schedules import check_denoise, check_steps, partial_sigmas, start_step

from ..magicid_core import validate
from .common import CATEGORY
from .host.family import check_family
from .host.progress import comfy_progress
from .host.sampling import invert_in_sampler, is_flow, model_latent, schedule_sigmas

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
            "refinement": ("INT", {"default": DEFAULT_REFINEMENT, "min": 0, "max": 100,
                                   "tooltip": "Most extra model calls per step to make the step exact "
                                              "(stops early when it is, or at the floor the model's precision "
                                              "sets: fp16/bf16 models stop after about 2). 0 = plain DDIM inversion."}),
        }, "optional": {
            "negative": ("CONDITIONING", {"tooltip": "Negative conditioning, needed when cfg is not 1 "
                                                     "(Flux at cfg 1 takes none)."}),
        }}

    RETURN_TYPES = ("LATENT", "FLOAT", "INT")
    RETURN_NAMES = ("latent", "reconstruction_error", "start_at_step")
    OUTPUT_TOOLTIPS = ("The inverted latent (noise_mask kept; schedule and trajectory under 'ddim_inversion').",
                       "Relative RMSE of regenerating the input from the inverted latent (measured by one "
                       "stock regeneration at this cfg).",
                       "KSamplerAdvanced's start_at_step that regenerates this inversion.")
    FUNCTION = "invert"
    CATEGORY = f"{CATEGORY}/diffusion"

    def invert(self, model, positive, latent_image, steps, scheduler, denoise, cfg, refinement, negative=None):
        check_family(model, "DDIMInvert")
        check_steps(steps)
        check_denoise(validate.number("denoise", denoise, 0.0, 1.0))
        cfg = validate.number("cfg", cfg, 0.0, 100.0)
        if negative is None and cfg != 1.0:
            raise validate.BadInput(f"negative is not connected but cfg is {cfg:g}: connect the negative prompt "
                                    "the regeneration will use, or set cfg to 1")
        validate.latent("latent_image", latent_image)
        samples = model_latent(model, latent_image["samples"])
        channels = model.get_model_object("latent_format").latent_channels
        if samples.shape[1] != channels:
            raise validate.BadInput(f"latent_image has {samples.shape[1]} channels but this model's latents have "
                                    f"{channels}: encode the picture with this model's VAE")
        check_latent(samples)
        if not bool(samples.any()):
            raise validate.BadInput("latent_image is all zeros: DDIMInvert needs an encoded image (VAE Encode)")
        sigmas = partial_sigmas(schedule_sigmas(model, scheduler, steps), denoise)
        out = dict(latent_image)
        if len(sigmas) < 2:  # the fraction selects no step: nothing to invert
            return (out, 0.0, steps)
        if is_flow(model) and float(sigmas[0]) >= 1.0:
            raise ValueError("a flow model inverted to sigma 1 (pure noise) cannot be regenerated by a stock "
                             "sampler without added noise; use denoise < 1 or a schedule that starts below 1 "
                             "(ddim_uniform)")
        # the latent's noise_mask must not pin the inversion: it is kept in the output only
        out["samples"], inversion, error = invert_in_sampler(model, positive, negative, cfg, samples, sigmas,
                                                             refinement, progress=comfy_progress(len(sigmas) - 1))
        out[INVERSION_KEY] = {
            "sigmas": inversion.sigmas.cpu(),
            "trajectory": torch.stack([x.cpu() for x in inversion.trajectory]),  # (K+1, B, C, H, W), sampler space
            "reconstruction_error": error,
            "estimated_error": inversion.reconstruction_error(),
            "step_residuals": inversion.step_residuals,
            "model_calls": inversion.model_calls,
            "cfg": cfg,
        }
        return (out, error, start_step(steps, denoise))
