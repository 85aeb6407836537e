"""Near-exact DDIM inversion against a denoiser ``denoise(x, sigma, **cond) -> x0``.

Regeneration is the stock deterministic sampler (ComfyUI's ``euler`` / ``ddim`` with no
added noise). Each step of it, from sigma to sigma_next, is

    d = (x - D(x, sigma)) / sigma            # dx/dsigma of the probability-flow ODE
    x_next = x + d * (sigma_next - sigma)

The same line holds for eps- and v-prediction models (x = x0 + sigma * eps) and for
flow models (CONST: x = (1 - sigma) x0 + sigma * eps, where (x - x0) / sigma = eps - x0
is the velocity), so nothing below depends on the parameterisation: D returns x0.

Inversion walks the schedule backwards and solves every step exactly: find x_k with
euler_step(x_k, sigma_k, sigma_{k+1}) == x_{k+1}. Its fixed-point form

    x = G(x) = x_{k+1} + (sigma_k - sigma_{k+1}) * (x - D(x, sigma_k)) / sigma_k

starts from G(x_{k+1}), the plain DDIM inverse (noise estimated at the known latent);
Anderson mixing (magicid_core.diffusion.anderson) then drives the residual to float precision in
a few model calls and stops early once the step maps back within ``tol``, or once the residual
reaches the floor the model's own rounding sets (``precision``: a model computing in fp16 or bf16
returns x0 rounded to that precision, and no x maps back closer than that). ``refinement``
is the most of those calls a step may spend (0 = plain DDIM inversion); the trajectory kept
is what DIIR pins the background to (glossary: docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .anderson import AndersonMixer
from ..progress import Progress
from .schedules import partial_sigmas  # noqa: F401  (part of this module's API)

Denoiser = Callable[..., torch.Tensor]  # denoise(x, sigma (B,), **cond) -> x0

DEFAULT_REFINEMENT = 30  # most model calls a step may spend after the plain inverse
DEFAULT_TOL = 1e-6         # per-step residual, relative to the latent's RMS (float32 rounding is ~1e-7)
DEFAULT_ANDERSON_DEPTH = 4
ROUNDING_FLOOR = 20        # a step residual below 20 machine epsilons is rounding, not error
MODEL_FLOOR = 1.5          # stop within this factor of the residual the model's output rounding leaves
                           # (2.0 left flow bf16 at 50 steps 2.06x off the best error; 1.5 costs <= 0.1x calls more)
STALL_CALLS = 4            # a step whose residual has not halved in this many calls has
STALL_NEAR = 100.0         # stalled (twice as many when it is still STALL_NEAR x above target)


@dataclass
class Inversion:
    """What an inversion gives back, enough for regeneration and for pinning regions."""

    latent: torch.Tensor             # x at sigmas[0], where regeneration starts
    trajectory: list[torch.Tensor]   # trajectory[k] = latent at sigmas[k]; [-1] is the clean input
    sigmas: torch.Tensor             # the descending schedule regeneration must use
    model_calls: int
    step_residuals: list[float]      # per step k: RMS(euler_step(x_k) - x_{k+1}) / RMS(input), worst batch item
    step_gains: list[float] = field(default_factory=list)  # how much of step k's residual reaches the output

    def reconstruction_error(self) -> float:
        """Estimated relative RMSE of regenerating the input from ``latent``.

        First-order error propagation: step k leaves the regenerating sampler off by its
        residual, and the remaining steps carry that error to the output with the gain a
        Gaussian of the input's variance s^2 gives, sqrt((s^2 + sigma_end^2) / (s^2 + sigma_{k+1}^2))
        (the denoising flow shrinks errors made at high noise), and the contributions add
        up as if aligned. Free (no model call) but a model estimate: on sharp data, where the
        stock flow amplifies errors, it comes out low; :func:`measured_error` is exact at
        one call per step. NaN when the residuals were not measured (``measure=False``).
        """
        return float(sum(r * g for r, g in zip(self.step_residuals, self.step_gains)))


def euler_step(denoise: Denoiser, x: torch.Tensor, sigma, sigma_next, **cond) -> torch.Tensor:
    """One stock deterministic DDIM/Euler step, the same arithmetic as ComfyUI's sample_euler."""
    return _euler_step(denoise, x, sigma, sigma_next, cond)[0]


def _euler_step(denoise: Denoiser, x: torch.Tensor, sigma, sigma_next, cond: dict):
    """euler_step, and the model's x0 it stepped with."""
    sigma = torch.as_tensor(sigma, device=x.device)
    sigma_next = torch.as_tensor(sigma_next, device=x.device)
    denoised = denoise(x, sigma * x.new_ones([x.shape[0]]), **cond)
    d = (x - denoised) / sigma                  # d = (x - x0) / sigma
    return x + d * (sigma_next - sigma), denoised   # x_next = x + d * (sigma_next - sigma)


@torch.no_grad()
def regenerate(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
               progress: Optional[Progress] = None, after_step=None, **cond) -> torch.Tensor:
    """Stock sampling over a descending schedule sigmas[0] > ... > sigmas[-1].

    ``after_step(i, x) -> x`` may constrain the latent after step i (0-based): restoration
    pins everything outside the face to the inversion there. ``progress(steps done, steps)``
    after each step (one model call).
    """
    steps = len(sigmas) - 1
    for i in range(steps):
        x = euler_step(denoise, x, sigmas[i], sigmas[i + 1], **cond)
        if after_step is not None:
            x = after_step(i, x)
        if progress is not None:
            progress(i + 1, steps)
    return x


@torch.no_grad()
def invert(denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor,
           refinement: int = DEFAULT_REFINEMENT, tol: float = DEFAULT_TOL,
           anderson_depth: int = DEFAULT_ANDERSON_DEPTH, measure: bool = True,
           progress: Optional[Progress] = None, precision: Optional[torch.dtype] = None, **cond) -> Inversion:
    """Invert ``x0`` (the clean latent, at sigmas[-1]) up to sigmas[0].

    ``refinement`` is the most model calls a step spends after its plain inverse
    (0 = plain DDIM inversion, one call per step); a step stops as soon as it maps back
    within ``tol``, or within MODEL_FLOOR x the residual that rounding the model's output to
    ``precision`` leaves (the dtype the model computes in, e.g. torch.float16 on a GPU;
    None: the latent's dtype). With ``refinement=0`` each step's residual is still measured
    with one extra call unless ``measure`` is False.

    ``progress(steps done, steps)`` is called after every model call, refinement calls
    included (with the count unchanged), so a caller that raises from it stops the
    inversion within one call.
    """
    check_latent(x0)
    check_schedule(sigmas)
    if refinement < 0:
        raise ValueError(f"refinement iterations must be >= 0, got {refinement}")
    steps = len(sigmas) - 1
    trajectory, residuals = [x0], []
    counted = _CountingDenoiser(denoise, None if progress is None else lambda: progress(len(trajectory) - 1, steps))
    for done, k in enumerate(reversed(range(steps)), start=1):
        x, res = invert_step(counted, trajectory[0], sigmas[k], sigmas[k + 1], refinement, tol,
                             anderson_depth, measure, cond, precision)
        if not torch.isfinite(x).all():
            raise ValueError(f"the model returned NaN or Inf while inverting at sigma {float(sigmas[k]):.4g}")
        trajectory.insert(0, x)
        residuals.insert(0, float((res / _rms(x0).clamp_min(1e-12)).max()))
        if progress is not None:
            progress(done, steps)
    return Inversion(latent=trajectory[0], trajectory=trajectory, sigmas=sigmas,
                     model_calls=counted.calls, step_residuals=residuals,
                     step_gains=_gaussian_gains(x0, sigmas))


def invert_step(denoise: Denoiser, x_next: torch.Tensor, sigma, sigma_next, refinement: int,
                tol: float, anderson_depth: int, measure: bool, cond: dict,
                precision: Optional[torch.dtype] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve euler_step(x, sigma, sigma_next) == x_next for x.

    Residual r(x) = euler_step(x) - x_next, fixed-point map G(x) = x - r(x). The start is
    the plain inverse G(x_next) = x_next + (sigma - sigma_next) d(x_next, sigma); Anderson
    mixing on G follows, its history seeded with (x_next, -r(x_next)) so that the first
    refinement is already a secant step. Returns the best measured iterate and its residual
    RMS per batch item (NaN if unmeasured); the step has converged when that is within
    ``tol`` of RMS(x_next), or at the model's floor (see _model_floor).
    """
    def residual(x):
        stepped, denoised = _euler_step(denoise, x, sigma, sigma_next, cond)
        return stepped - x_next, denoised

    r_next, denoised = residual(x_next)
    # converged within tol of RMS(x_next), never asked below the latent dtype's rounding floor
    # nor below what the model's own rounding leaves
    target = torch.maximum(_rms(x_next).clamp_min(1e-12) * max(tol, ROUNDING_FLOOR * torch.finfo(x_next.dtype).eps),
                           MODEL_FLOOR * _model_floor(denoised, sigma, sigma_next, precision or x_next.dtype))
    mixer = AndersonMixer(anderson_depth)
    x = mixer.next(x_next, -r_next)                    # plain DDIM inverse: x_next - r(x_next)
    calls = refinement if refinement > 0 else int(measure)
    best_x, best_res = x, torch.full_like(target, math.inf if calls else math.nan)
    history = []  # worst-item best residual after each call, to notice a stalled solve
    for i in range(calls):
        r, _ = residual(x)
        res = _rms(r)
        best_x = torch.where(_expand(res < best_res, x), x, best_x)
        best_res = torch.minimum(res, best_res)
        history.append(float((best_res / target).max()))
        if history[-1] <= 1.0 or i == calls - 1 or _stalled(history):
            break
        x = mixer.next(x, -r)
    return best_x, best_res


def _model_floor(denoised: torch.Tensor, sigma, sigma_next, precision: torch.dtype) -> torch.Tensor:
    """(B,) RMS of the step residual that rounding the model's x0 to ``precision`` alone leaves.

    The step moves x0 into x_next with the factor (sigma - sigma_next) / sigma; rounding to nearest
    errs by up to half an ulp, uniformly: RMS u |x0| / sqrt(3) with u = eps / 2.
    """
    share = abs(float(sigma) - float(sigma_next)) / float(sigma)
    return _rms(denoised) * share * (torch.finfo(precision).eps / 2) / math.sqrt(3)


def _stalled(history: list[float]) -> bool:
    """The residual has not halved over the last few calls: the model's own noise floor.

    Near the target (within STALL_NEAR x) a floor shows within STALL_CALLS calls; far from
    it a plateau may be the nonlinear phase of a hard step, which Anderson mixing gets
    through given more calls, so it gets twice as many before the step is given up.
    """
    window = STALL_CALLS if history[-1] < STALL_NEAR else 2 * STALL_CALLS
    return len(history) > window and history[-1] > 0.5 * history[-1 - window]


@torch.no_grad()
def measured_error(denoise: Denoiser, inversion: Inversion, progress: Optional[Progress] = None, **cond) -> float:
    """The reconstruction error itself: regenerate with the stock sampler and compare.

    Costs one model call per step; exact where :meth:`Inversion.reconstruction_error`
    is a first-order estimate.
    """
    regenerated = regenerate(denoise, inversion.latent, inversion.sigmas, progress=progress, **cond)
    return relative_rmse(regenerated, inversion.trajectory[-1])


def relative_rmse(x: torch.Tensor, reference: torch.Tensor) -> float:
    """RMS(x - reference) / RMS(reference), worst batch item."""
    return float((_rms(x - reference) / _rms(reference).clamp_min(1e-12)).max())


def check_latent(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim < 2 or x.numel() == 0:
        raise ValueError("the latent to invert must be a non-empty batched tensor")
    if not torch.isfinite(x).all():
        raise ValueError("the latent to invert contains NaN or Inf values; re-encode the image")


def check_schedule(sigmas: torch.Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 1:
        raise ValueError("the sigma schedule must be a 1-D tensor with at least one entry")
    if not torch.isfinite(sigmas).all() or bool((sigmas < 0).any()) or bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise ValueError("the sigma schedule must be finite, non-negative and strictly descending")


class _CountingDenoiser:
    """Wraps a denoiser and counts its calls (the cost measure of inversion); ``after_call()``
    runs after each one (progress, and the host's cancel)."""

    def __init__(self, denoise: Denoiser, after_call: Optional[Callable[[], None]] = None):
        self.denoise, self.calls, self.after_call = denoise, 0, after_call

    def __call__(self, x, sigma, **cond):
        self.calls += 1
        out = self.denoise(x, sigma, **cond)
        if self.after_call is not None:
            self.after_call()
        return out


def _rms(x: torch.Tensor) -> torch.Tensor:
    """Per batch item root mean square, in float64, shape (B,)."""
    return x.double().reshape(x.shape[0], -1).pow(2).mean(dim=1).sqrt()


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape((-1,) + (1,) * (like.ndim - 1))


def _gaussian_gains(x0: torch.Tensor, sigmas: torch.Tensor) -> list[float]:
    """Gain from a step's landing level sigma_{k+1} to the output, for a Gaussian of x0's variance."""
    var = float(x0.double().var()) if x0.numel() > 1 else 1.0
    end = float(sigmas[-1]) ** 2
    return [math.sqrt((var + end) / (var + float(s) ** 2)) for s in sigmas[1:]]
