"""The peers' inversion, kept only to compare ours against (tests and bench/bench_inversion.py)."""

from __future__ import annotations

import math

import torch

from magicid_core.diffusion.inversion import (Denoiser, Inversion, _CountingDenoiser, _gaussian_gains, check_latent,
                                              check_schedule, euler_step)


@torch.no_grad()
def flip_schedule_inversion(denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor,
                            sigma_floor: float = 1e-4, **cond) -> Inversion:
    """The peers' baseline (ComfyUI_Noise's Unsampler): run Euler up the flipped schedule.

    Step k -> k-1 uses the noise estimated at the known latent and its own (lower) sigma,
    floored at ``sigma_floor`` where it is 0. Kept for comparison only: it does not solve
    the regenerating step, so regeneration drifts away from the input.
    """
    check_latent(x0)
    check_schedule(sigmas)
    counted = _CountingDenoiser(denoise)
    trajectory = [x0]
    for k in reversed(range(len(sigmas) - 1)):
        low = torch.clamp(torch.as_tensor(sigmas[k + 1]), min=sigma_floor)
        trajectory.insert(0, euler_step(counted, trajectory[0], low, sigmas[k], **cond))
    steps = len(sigmas) - 1
    return Inversion(latent=trajectory[0], trajectory=trajectory, sigmas=sigmas, model_calls=counted.calls,
                     step_residuals=[math.nan] * steps, step_gains=_gaussian_gains(x0, sigmas))
