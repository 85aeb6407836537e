"""Sigma schedules, in ComfyUI's sigma convention, for use without ComfyUI.

Inside ComfyUI the node takes its schedule from ``comfy.samplers.calculate_sigmas``;
these helpers give the same numbers to the tests and benchmarks that run without it
(the host tests check that they agree). The denoise rule (:func:`partial_sigmas`) is
the one every caller shares, so a stock node regenerates an inversion identically.
"""

from __future__ import annotations

import math

import torch


def sd_discrete_sigmas(linear_start: float = 0.00085, linear_end: float = 0.012,
                       timesteps: int = 1000) -> torch.Tensor:
    """The 1000 training sigmas of SD1.x/SDXL (ComfyUI's ModelSamplingDiscrete), ascending.

    betas = linspace(sqrt(start), sqrt(end))^2 ("scaled linear"), alpha_bar = prod(1 - beta),
    sigma = sqrt((1 - alpha_bar) / alpha_bar).
    """
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()


def ddim_uniform(model_sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    """ComfyUI's ``ddim_uniform`` scheduler: every (T // steps)-th training sigma, then 0."""
    check_steps(steps)
    sigs = [] if math.isclose(float(model_sigmas[1]), 0, abs_tol=1e-5) else [0.0]
    stride = max(len(model_sigmas) // (steps + (1 if not sigs else 0)), 1)
    sigs += [float(s) for s in model_sigmas[1::stride]]
    return torch.tensor(sigs[::-1], dtype=torch.float32)


def flow_sigmas(steps: int, shift: float = 3.0) -> torch.Tensor:
    """A flow-matching (CONST, SD3/Flux-style) schedule from 1 to 0 with a time shift.

    sigma(t) = shift * t / (1 + (shift - 1) * t) for t uniform in [1, 0].
    """
    check_steps(steps)
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * t / (1 + (shift - 1) * t)).float()


def check_steps(steps: int) -> None:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps}")


def check_denoise(denoise: float) -> None:
    if not (0.0 < float(denoise) <= 1.0):  # also rejects NaN
        raise ValueError(f"denoise must be in (0, 1] (the fraction of the schedule to invert), got {denoise}")


def partial_sigmas(sigmas: torch.Tensor, denoise: float) -> torch.Tensor:
    """The tail of a full schedule that a denoise fraction selects.

    ComfyUI's rule (``SplitSigmasDenoise``): of the schedule's N steps the last
    round(N * denoise) are kept, so KSamplerAdvanced with the same steps and
    ``start_at_step = N - round(N * denoise)`` runs exactly these sigmas. A fraction
    that selects no step gives a one-entry schedule: nothing to invert.
    """
    check_denoise(denoise)
    steps = max(len(sigmas) - 1, 0)
    kept = round(steps * float(denoise))
    return sigmas[-(kept + 1):]


def start_step(total_steps: int, denoise: float) -> int:
    """KSamplerAdvanced's ``start_at_step`` that runs the tail :func:`partial_sigmas` keeps."""
    check_denoise(denoise)
    return total_steps - round(total_steps * float(denoise))
