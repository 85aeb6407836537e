"""TEMPORARY stand-in for ``magicid_core.inversion`` (branch ``inversion``) until it lands.

Same call signatures as the shared module; deleted when the shared one is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def _sigma_batch(x, sigma):
    return torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)


def euler_step(denoise, x, sigma, sigma_next, **cond):
    # x_next = x + (sigma_next - sigma) * (x - x0) / sigma
    x0 = denoise(x, _sigma_batch(x, sigma), **cond)
    return x + (float(sigma_next) - float(sigma)) * (x - x0) / float(sigma)


def partial_sigmas(sigmas, denoise):
    steps = len(sigmas) - 1
    keep = int(round(steps * float(denoise)))
    return sigmas[steps - keep:] if keep > 0 else sigmas[-1:]


@dataclass
class Inversion:
    latent: torch.Tensor
    trajectory: list = field(default_factory=list)
    sigmas: torch.Tensor | None = None
    model_calls: int = 0


def invert(denoise, x0, sigmas, refine_iters=3, tol=1e-4, callback=None, **cond):
    calls = 0

    def eps(x, s):
        nonlocal calls
        calls += 1
        return (x - denoise(x, _sigma_batch(x, s), **cond)) / float(s)

    x = x0
    trajectory = [x0]
    for k in reversed(range(len(sigmas) - 1)):
        hi, lo = float(sigmas[k]), float(sigmas[k + 1])
        # solve x_k = x_{k+1} + (hi - lo) * eps(x_k, hi) by fixed-point iteration
        guess = x + (hi - lo) * eps(x, hi)
        for _ in range(refine_iters):
            nxt = x + (hi - lo) * eps(guess, hi)
            done = (nxt - guess).abs().max() <= tol
            guess = nxt
            if done:
                break
        x = guess
        trajectory.insert(0, x)
        if callback is not None:
            callback(k, x)
    return Inversion(x, trajectory, sigmas, calls)
