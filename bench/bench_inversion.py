"""Plain vs refined DDIM inversion: reconstruction error and model calls, side by side.

Run: python bench/bench_inversion.py [--device cpu|cuda]

The model is the exact posterior mean of a Gaussian mixture (tests/support/analytic.py), the
input an off-data latent (mixture mean plus noise), the regeneration the stock Euler
sampler over SD1.5's ddim_uniform schedule (eps and v) or a shifted flow schedule.
Columns: the peers' flip-the-schedule inversion, plain DDIM inversion, plain
fixed-point refinement (Anderson depth 0), and the default refined inversion. Then the model's
output rounded to fp16 and to bf16 (what a GPU computes): plain DDIM, the refinement told nothing
(it refines until the residual stalls), the default told the model's precision (it stops at the
floor that rounding sets), and the best error any refinement budget reaches there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from magicid_core.diffusion.inversion import DEFAULT_TOL, invert, regenerate, relative_rmse  # noqa: E402
from magicid_core.diffusion.schedules import ddim_uniform, flow_sigmas, sd_discrete_sigmas  # noqa: E402
from tests.support.analytic import GaussianMixtureDenoiser  # noqa: E402  (bench uses the tests' models)
from tests.support.baselines import flip_schedule_inversion  # noqa: E402
from bench.device import add_device_argument, resolve_device  # noqa: E402

SHAPE = (4, 16, 16)
STEPS = (10, 25, 50)


DEVICE = torch.device("cpu")


def _case(prediction: str, components: int = 4, scale: float = 1.0, std: float = 0.5, off: float = 0.5,
          seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    means = scale * torch.randn((components,) + SHAPE, generator=gen)
    model = GaussianMixtureDenoiser(means.to(DEVICE, dtype), std=std, prediction=prediction)
    x0 = model.sample_data(2, gen, off_data=off).to(DEVICE, dtype)
    return model, x0


def _schedule(prediction: str, steps: int) -> torch.Tensor:
    return (flow_sigmas(steps) if prediction == "flow" else ddim_uniform(sd_discrete_sigmas(), steps)).to(DEVICE)


def _row(model, x0, sigmas, name, inversion):
    error = relative_rmse(regenerate(model, inversion.latent, sigmas), x0)
    return name, error, inversion.model_calls


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    DEVICE = resolve_device(parser.parse_args().device)
    print(f"{'model':5} {'steps':>5} | {'method':22} {'rel. RMSE':>10} {'calls':>6} | "
          f"{'calls vs plain':>14} {'error vs plain':>14}")
    for prediction in ("eps", "v", "flow"):
        model, x0 = _case(prediction)
        for steps in STEPS:
            sigmas = _schedule(prediction, steps)
            rows = [
                _row(model, x0, sigmas, "flip schedule (peers)", flip_schedule_inversion(model, x0, sigmas)),
                _row(model, x0, sigmas, "plain DDIM", invert(model, x0, sigmas, refinement=0, measure=False)),
                _row(model, x0, sigmas, "fixed point, 12 iters",
                     invert(model, x0, sigmas, refinement=12, anderson_depth=0)),
                _row(model, x0, sigmas, "refined (default)", invert(model, x0, sigmas)),
            ]
            plain_error, plain_calls = rows[1][1], rows[1][2]
            for name, error, calls in rows:
                print(f"{prediction:5} {steps:5d} | {name:22} {error:10.2e} {calls:6d} | "
                      f"{calls / plain_calls:13.2f}x {error / plain_error:13.1e}x")
            print()
    sharp()
    half_precision()


def sharp() -> None:
    """A sharper, denser mixture: the stock flow amplifies step residuals (float32 rounding
    included); in float64 with a tight tolerance the same solver is exact."""
    print("sharp mixture (8 components, std 0.3, off-data 0.3), eps, 25 steps, default refinement:")
    sigmas = _schedule("eps", 25)
    for seed in (1, 2, 3):
        for dtype, tol in ((torch.float32, DEFAULT_TOL), (torch.float64, 1e-10)):
            model, x0 = _case("eps", components=8, scale=0.5, std=0.3, off=0.3, seed=seed, dtype=dtype)
            inv = invert(model, x0, sigmas.to(dtype), tol=tol)
            error = relative_rmse(regenerate(model, inv.latent, sigmas.to(dtype)), x0)
            print(f"  seed {seed} {str(dtype):14} tol {tol:.0e} rel. RMSE {error:9.2e}  calls {inv.model_calls:4d} "
                  f"({inv.model_calls / 25:.2f}x plain)  estimate {inv.reconstruction_error():9.2e}")



def half_precision() -> None:
    """A model whose output has fp16 / bf16 precision (as on a GPU): told the precision, refinement stops at its floor."""
    print("\nmodel output rounded to fp16 / bf16 (an fp16 UNet's, a bf16 Flux's precision), 25 steps; "
          "'error vs best': against the best error of refinement budgets 2, 3, 4, 6 and 30, not told")
    print(f"{'model':5} {'precision':9} | {'method':28} {'rel. RMSE':>10} {'calls':>6} | {'calls vs plain':>14} {'error vs best':>13}")
    for prediction in ("eps", "v", "flow"):
        model, x0 = _case(prediction)
        sigmas = _schedule(prediction, 25)
        for precision in (torch.float16, torch.bfloat16):
            rough = lambda x, sigma, p=precision: model(x, sigma).to(p).to(x.dtype)  # noqa: E731

            def row(name, inversion):
                return name, relative_rmse(regenerate(rough, inversion.latent, sigmas), x0), inversion.model_calls
            best = min(row("", invert(rough, x0, sigmas, refinement=r))[1] for r in (2, 3, 4, 6, 30))
            rows = [row("plain DDIM", invert(rough, x0, sigmas, refinement=0, measure=False)),
                    row("refined, not told (before)", invert(rough, x0, sigmas)),
                    row("refined, told (default)", invert(rough, x0, sigmas, precision=precision))]
            plain_calls = rows[0][2]
            for name, error, calls in rows:
                print(f"{prediction:5} {str(precision).replace('torch.', ''):9} | {name:28} {error:10.2e} {calls:6d} | "
                      f"{calls / plain_calls:13.2f}x {error / best:12.2f}x")


if __name__ == "__main__":
    main()
