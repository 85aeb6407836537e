"""DDIM inversion against a denoiser whose exact answer is known (a Gaussian mixture).

Inversion followed by the stock Euler regeneration must give back an off-data latent
(a mixture mean plus noise): relative RMSE <= 1e-5 at 25 steps with at most 4x the
model calls of plain inversion, for eps, v and flow parameterisations. The peers'
flip-the-schedule inversion is measured beside it.
"""

from __future__ import annotations

import math

import pytest
import torch

from magicid_core.diffusion.inversion import (
    euler_step,
    invert,
    measured_error,
    partial_sigmas,
    regenerate,
    relative_rmse,
)
from magicid_core.diffusion.schedules import ddim_uniform, flow_sigmas, sd_discrete_sigmas, start_step
from tests.support.analytic import GaussianMixtureDenoiser
from tests.support.baselines import flip_schedule_inversion

SHAPE = (4, 16, 16)


def _mixture(prediction: str, std: float = 0.5, components: int = 4, seed: int = 0) -> GaussianMixtureDenoiser:
    means = torch.randn((components,) + SHAPE, generator=torch.Generator().manual_seed(seed))
    return GaussianMixtureDenoiser(means, std=std, prediction=prediction)


def _off_data(model: GaussianMixtureDenoiser, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return model.sample_data(batch, torch.Generator().manual_seed(seed), off_data=0.5)


def _schedule(prediction: str, steps: int) -> torch.Tensor:
    return flow_sigmas(steps) if prediction == "flow" else ddim_uniform(sd_discrete_sigmas(), steps)


@pytest.mark.parametrize("prediction", ["eps", "v", "flow"])
def test_inversion_regenerates_off_data_latent(prediction):
    model = _mixture(prediction)
    x0 = _off_data(model)
    sigmas = _schedule(prediction, 25)

    refined = invert(model, x0, sigmas)
    plain = invert(model, x0, sigmas, refinement=0, measure=False)
    flipped = flip_schedule_inversion(model, x0, sigmas)

    error = relative_rmse(regenerate(model, refined.latent, sigmas), x0)
    plain_error = relative_rmse(regenerate(model, plain.latent, sigmas), x0)
    flip_error = relative_rmse(regenerate(model, flipped.latent, sigmas), x0)
    assert error <= 1e-5
    assert plain.model_calls == flipped.model_calls == 25
    assert refined.model_calls <= 4 * plain.model_calls
    assert flip_error > 1e3 * error and plain_error > 1e3 * error
    # the estimate is of the right size: it does not hide the error it reports
    assert error <= 10 * refined.reconstruction_error() <= 1e3 * max(error, 1e-7)


@pytest.mark.parametrize("steps", [25, 50])
@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("prediction", ["eps", "v", "flow"])
def test_half_precision_model_is_inverted_to_its_floor_in_few_calls(prediction, precision, steps):
    """A model whose x0 is rounded to fp16 / bf16 (what a GPU computes): told the precision, refinement
    stops at the floor that rounding sets, within 2x of the best error refinement reaches at all (any
    call budget, not told, refining until the residual stalls), in at most 3.5x the calls of plain DDIM."""
    model = _mixture(prediction)
    rounded = lambda x, sigma: model(x, sigma).to(precision).to(x.dtype)  # noqa: E731
    x0, sigmas = _off_data(model), _schedule(prediction, steps)

    def error(inversion):
        return relative_rmse(regenerate(rounded, inversion.latent, sigmas), x0)
    best = min(error(invert(rounded, x0, sigmas, refinement=r)) for r in (2, 3, 30))
    plain = invert(rounded, x0, sigmas, refinement=0, measure=False)
    told = invert(rounded, x0, sigmas, precision=precision)
    assert error(told) <= 2 * best
    assert told.model_calls <= 3.5 * plain.model_calls
    assert error(plain) > 3 * error(told)   # 4.7x at flow bf16 50 steps, where plain DDIM is at its best


def test_trajectory_is_the_regeneration_path():
    model = _mixture("eps")
    x0 = _off_data(model)
    sigmas = _schedule("eps", 10)
    inv = invert(model, x0, sigmas)
    assert len(inv.trajectory) == len(sigmas) and inv.latent is inv.trajectory[0]
    assert torch.equal(inv.trajectory[-1], x0)
    for k in range(len(sigmas) - 1):  # every stock step lands on the next kept latent
        assert relative_rmse(euler_step(model, inv.trajectory[k], sigmas[k], sigmas[k + 1]),
                             inv.trajectory[k + 1]) <= 1e-5
    assert all(math.isfinite(r) for r in inv.step_residuals)


def test_partial_inversion_follows_comfy_denoise_rule():
    model = _mixture("eps")
    x0 = _off_data(model)
    full = _schedule("eps", 25)
    tail = partial_sigmas(full, 0.5)
    assert len(tail) == round(25 * 0.5) + 1 and torch.equal(tail, full[start_step(25, 0.5):])
    inv = invert(model, x0, tail)
    assert float(inv.sigmas[0]) < float(full[0])  # stops at the selected sigma, not at pure noise
    assert measured_error(model, inv) <= 1e-5


def test_denoise_selecting_no_step_gives_input_back():
    model = _mixture("eps")
    x0 = _off_data(model)
    tail = partial_sigmas(_schedule("eps", 10), 0.04)  # round(0.4) = 0 steps
    inv = invert(model, x0, tail)
    assert len(tail) == 1 and inv.model_calls == 0 and torch.equal(inv.latent, x0)
    assert torch.equal(regenerate(model, inv.latent, tail), x0)


def test_anderson_beats_fixed_point_on_a_stiff_step():
    # sharp data (std 0.02) at the last step sigma 0.04 -> 0: the fixed-point map
    # contracts only by sigma^2 / (s^2 + sigma^2) ~ 0.8 per call
    model = _mixture("eps", std=0.02, components=1)
    x0 = model.sample_data(1, torch.Generator().manual_seed(2))
    sigmas = _schedule("eps", 25)[-2:]
    fixed_point = invert(model, x0, sigmas, refinement=200, anderson_depth=0)
    anderson = invert(model, x0, sigmas, refinement=200)
    assert anderson.step_residuals[0] <= 5e-6 and fixed_point.step_residuals[0] <= 5e-6  # both converged
    assert fixed_point.model_calls > 5 * anderson.model_calls


def test_refinement_zero_is_plain_inversion():
    model = _mixture("eps")
    x0 = _off_data(model)
    sigmas = _schedule("eps", 10)
    plain = invert(model, x0, sigmas, refinement=0)
    # plain DDIM: x_k = x_{k+1} + (sigma_k - sigma_{k+1}) * (x_{k+1} - D(x_{k+1}, sigma_k)) / sigma_k
    x = x0
    for k in reversed(range(10)):
        s = sigmas[k]
        x = x + (s - sigmas[k + 1]) * (x - model(x, s.expand(2))) / s
    assert relative_rmse(plain.latent, x) <= 1e-6
    assert plain.model_calls == 20  # one call per step, one more to measure its residual


@pytest.mark.parametrize("denoise", [0.0, -0.5, 1.5, math.nan])
def test_bad_denoise_is_a_clear_error(denoise):
    with pytest.raises(ValueError, match="denoise"):
        partial_sigmas(_schedule("eps", 10), denoise)


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_steps_is_a_clear_error(steps):
    with pytest.raises(ValueError, match="steps"):
        ddim_uniform(sd_discrete_sigmas(), steps)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_latent_is_a_clear_error(bad):
    model = _mixture("eps")
    x0 = _off_data(model)
    x0[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        invert(model, x0, _schedule("eps", 10))


def test_ascending_schedule_is_a_clear_error():
    model = _mixture("eps")
    with pytest.raises(ValueError, match="descending"):
        invert(model, _off_data(model), _schedule("eps", 10).flip(0))


class Stop(Exception):
    """What a host's cancel raises from the progress callback."""


def test_progress_sees_every_model_call_and_raising_stops_within_one_call():
    model = _mixture("eps")
    x0, sigmas = _off_data(model), _schedule("eps", 10)
    calls, seen = [], []

    def counted(x, sigma, **cond):
        calls.append(float(sigma[0]))
        return model(x, sigma, **cond)

    inv = invert(counted, x0, sigmas, refinement=8, progress=lambda done, total: seen.append((done, total)))
    assert inv.model_calls == len(calls) > 2 * 10              # refinement calls, not just one per step
    assert len(seen) >= len(calls)                            # a chance to stop after every call
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)

    for cancel_after in (1, 5, 17):                           # mid-step, inside refinement
        calls.clear()

        def cancel(done, total):
            if len(calls) >= cancel_after:
                raise Stop

        with pytest.raises(Stop):
            invert(counted, x0, sigmas, refinement=8, progress=cancel)
        assert len(calls) == cancel_after

    seen.clear()
    regenerate(model, inv.latent, sigmas, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 10) for k in range(1, 11)]
