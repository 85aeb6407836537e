"""``--device`` for every bench: where it runs, and a clock that measures the work done there.

On the CPU (the default) a bench times CPU seconds of its own process (``time.process_time``),
so other load on a shared machine skews the figures less, and prints ratios measured side by
side in one run. With ``--device cuda`` (when a GPU is present) it times wall seconds after
``torch.cuda.synchronize()``, since the work runs asynchronously on the GPU.
"""

from __future__ import annotations

import argparse
import time

import torch


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="where the bench runs: cpu (default), cuda or cuda:N when a GPU is present")


def resolve_device(name: str) -> torch.device:
    """The torch device asked for; a clear exit when it is CUDA and no GPU is there."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this torch ({torch.__version__}) sees no CUDA GPU; run with --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name}: the benches run on cpu or cuda")
    return device


def clock(device: torch.device):
    """A function returning seconds: CPU time of this process on the CPU, synchronised wall time on CUDA."""
    if device.type == "cuda":
        def wall() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return wall
    return time.process_time


def describe(device: torch.device) -> str:
    """What the figures are, for a bench's header."""
    if device.type == "cuda":
        return f"wall seconds on {torch.cuda.get_device_name(device)}"
    return "CPU seconds of this process"


def cpu_bench(parser: argparse.ArgumentParser, why: str) -> torch.device:
    """For a bench whose work has no CUDA path in the pack (``why``): takes --device like every bench,
    and says so instead of printing CPU figures as GPU ones."""
    add_device_argument(parser)
    known, _ = parser.parse_known_args()
    device = resolve_device(known.device)
    if device.type != "cpu":
        raise SystemExit(f"--device {known.device}: {why}; this bench measures the CPU only")
    return device


def clocked_model(model, spent: list, seconds=time.process_time):
    """A clone of the ComfyUI ``model`` whose every model call adds its ``seconds`` to ``spent``: the steps
    alone, without what ComfyUI does when sampling switches models (loading it, moving and casting patches)."""
    import comfy.patcher_extension

    def timed(executor, *args, **kwargs):
        start = seconds()
        out = executor(*args, **kwargs)
        spent.append(seconds() - start)
        return out
    clone = model.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench_clock", timed)
    return clone
