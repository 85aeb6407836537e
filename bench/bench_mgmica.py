"""MGMICA measurements, side by side in one run: `python bench/bench_mgmica.py [--device cpu|cuda]`.

1. Ownership: small faces in a 1024 px picture, at every cross-attention layer size of SD1.5
   and SDXL, under bilinear mask shrinking (what peer packs do) and under our ownership rule.
2. Cost (bench/device.py: CPU time of this process on the CPU, so other load skews it less): one
   MultiIDAttention patch serving 1, 2, 4, 6, 8 identities against a chain of as
   many single-identity patches (one per identity, each wrapping the previous), on real-size
   SD1.5 / SDXL attention tensors (cond + uncond batch of 2, 77 text tokens).
3. Operations per layer call, what a GPU pays for in launches beyond the arithmetic: the torch
   operations one call of the patch runs with 6 identities and 6 person prompts on an SDXL 32x32
   layer (views, which launch nothing, counted apart), and those that make the host wait on a GPU
   (nonzero, a tensor copied to another device or dtype).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from magicid_core.diffusion.attention import IdentityTokens, MultiIDAttention, PersonText  # noqa: E402
from magicid_core.diffusion.ownership import bilinear_masks, ownership_masks  # noqa: E402
from bench.device import add_device_argument, clock, describe, resolve_device  # noqa: E402

SIZES = {"SD1.5": [128, 64, 32, 16], "SDXL": [64, 32]}   # cells a side at 1024 px
KEY = ("input", 1, 0)


def discs(centres, diameter, size=1024):
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return np.stack([((yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2).astype(np.float32)
                     for cx, cy in centres])


LAYOUTS = {
    "six 40px faces in a row, 48 px apart": discs([(300 + 48 * i, 500) for i in range(6)], 40),
    "six 40px faces on a 2x3 grid, 150 px apart": discs([(300 + 150 * (i % 3), 400 + 150 * (i // 3)) for i in range(6)], 40),
    "six 40px faces in a group (random, seed 0)": discs(np.random.default_rng(0).uniform(200, 824, (6, 2)), 40),
    "six 56px heads shoulder to shoulder (60 px)": discs([(330 + 60 * i, 500) for i in range(6)], 56),
}


def ownership_report():
    print("== Ownership: faces that act (weight >= 0.5 somewhere), lost faces (weight 0 everywhere), "
          "cells shared by two faces")
    print(f"{'layout':46s} {'model':6s} {'cells':>6s} | {'bilinear: act / lost / shared / max w':>38s} | "
          f"{'ours: act / lost / shared':>26s}")
    for name, masks in LAYOUTS.items():
        for model, sizes in SIZES.items():
            for s in sizes:
                b = bilinear_masks(masks, s, s).reshape(len(masks), -1)
                o = ownership_masks(masks, s, s).reshape(len(masks), -1)
                bil = (f"{(b.max(1) >= 0.5).sum()} / {(b.max(1) == 0).sum()} / "
                       f"{((b > 0).sum(0) > 1).sum()} / {b.max(1).min():.2f}-{b.max(1).max():.2f}")
                ours = f"{(o.max(1) >= 0.5).sum()} / {(o.max(1) == 0).sum()} / {((o > 0).sum(0) > 1).sum()}"
                print(f"{name:46s} {model:6s} {s:>3d}x{s:<3d}| {bil:>38s} | {ours:>26s}")
    print()


def tokens(n, width, context, t, seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    cond, uncond = torch.randn(n, t, context, generator=g).to(device), torch.randn(n, t, context, generator=g).to(device)
    return IdentityTokens(cond, uncond, [(torch.randn(width, context, generator=g) * context ** -0.5).to(device)],
                          [(torch.randn(width, context, generator=g) * context ** -0.5).to(device)])


def group_masks(n, diameter=110):
    """n faces of a group photo in a 1024 px picture, two rows."""
    return discs([(120 + 190 * (i % 5), 380 + 260 * (i // 5)) for i in range(n)], diameter)


def time_calls(fns, device=torch.device("cpu"), repeats=15):
    """Fastest of `repeats` runs of each function, runs interleaved so load spikes hit all alike."""
    now = clock(device)
    for fn in fns:
        fn()  # warm: ownership maps and token projections are cached per layer size
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = now()
            fn()
            out.append(now() - t0)
    return [min(t) for t in times]


def cost_report(device=torch.device("cpu")):
    if device.type == "cpu":
        torch.set_num_threads(1)
    print(f"== Cost per attention call ({describe(device)}, fastest of 15 interleaved rounds, ms"
          f"{'; one thread' if device.type == 'cpu' else ''}). ratio = vs 1 identity of the same method")
    cases = [("SD1.5 128x128, width 320, FaceID 4 tokens", 128, 320, 8, 768, 4),
             ("SDXL 64x64, width 640, InstantID 16 tokens", 64, 640, 10, 2048, 16)]
    for label, cells, width, heads, context, t in cases:
        g = torch.Generator().manual_seed(0)
        q = torch.randn(2, cells * cells, width, generator=g).to(device)
        k, v = torch.randn(2, 77, width, generator=g).to(device), torch.randn(2, 77, width, generator=g).to(device)
        opts = {"block": KEY[:2], "block_index": 0, "n_heads": heads, "cond_or_uncond": [1, 0],
                "activations_shape": [2, width, cells, cells]}
        print(f"-- {label}")
        print(f"{'ids':>4s} {'one patch':>10s} {'ratio':>6s} {'chained':>10s} {'ratio':>6s} {'chained/one':>12s}")
        calls = {}
        for n in (1, 2, 4, 6, 8):
            masks, toks = group_masks(n), tokens(n, width, context, t, seed=n, device=device)
            one = MultiIDAttention(toks, masks, [1.0] * n, {KEY: 0})
            chain = None
            for j in range(n):  # identity j's own patch, stacked on the previous ones
                single = MultiIDAttention(toks.subset([j]), masks[[j]], [1.0], {KEY: 0})
                chain = single if chain is None else single.stacked_on({KEY: chain})
            calls[n] = (lambda p=one: p(q, k, v, opts), lambda p=chain: p(q, k, v, opts))
        fastest = time_calls([fn for pair in calls.values() for fn in pair], device)
        (one_1, chain_1), rows = fastest[:2], zip(calls, fastest[0::2], fastest[1::2])
        for n, t_one, t_chain in rows:
            print(f"{n:>4d} {t_one * 1e3:>10.2f} {t_one / one_1:>6.2f} {t_chain * 1e3:>10.2f} "
                  f"{t_chain / chain_1:>6.2f} {t_chain / t_one:>12.2f}")
    print()


VIEWS = {"aten::transpose", "aten::unflatten", "aten::flatten", "aten::view", "aten::select", "aten::slice",
         "aten::expand", "aten::reshape", "aten::numpy_T", "aten::t", "aten::alias", "aten::as_strided", "aten::unsqueeze"}


def operations_report(device=torch.device("cpu")):
    """3. torch operations of one layer call with 6 identities and 6 person prompts (SDXL 32x32)."""
    from collections import Counter
    from torch.profiler import ProfilerActivity, profile

    n, cells, width, heads, context = 6, 32, 1280, 20, 2048
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, cells * cells, width, generator=g).to(device)
    k, v = torch.randn(2, 77, width, generator=g).to(device), torch.randn(2, 77, width, generator=g).to(device)
    opts = {"block": KEY[:2], "block_index": 0, "n_heads": heads, "cond_or_uncond": [1, 0],
            "activations_shape": [2, width, cells, cells]}
    to_k, to_v = (torch.randn(width, context, generator=g).to(device) * context ** -0.5 for _ in range(2))
    text = PersonText(torch.randn(n * 77, context, generator=g), torch.arange(n).repeat_interleave(77),
                      torch.ones(n), lambda key, words: (words @ to_k.T, words @ to_v.T))
    patch = MultiIDAttention(tokens(n, width, context, 16, seed=n, device=device), group_masks(n), [1.0] * n,
                             {KEY: 0}, text=text)
    patch(q, k, v, opts)                       # warm: per-layer caches
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        patch(q, k, v, opts)
    ops = [e.name for e in prof.events() if e.name.startswith("aten::")
           and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
    counts = Counter(ops)
    views = sum(c for name, c in counts.items() if name in VIEWS)
    # nested ones too (a copy runs inside a `to`); a Python number multiplied in is no copy (0-d)
    every = Counter(e.name for e in prof.events() if e.input_shapes and e.input_shapes[0] != [])
    waits = {name[6:]: every[name] for name in ("aten::nonzero", "aten::_to_copy") if every.get(name)}
    print(f"== Operations of one layer call, 6 identities + 6 person prompts, SDXL 32x32 ({device.type}): "
          f"{len(ops) - views} operations and {views} views; attention calls "
          f"{counts.get('aten::scaled_dot_product_attention', 0)}; copies / waits {waits or 'none'}")
    print("   most frequent: " + ", ".join(f"{name[6:]} {c}" for name, c in counts.most_common(12) if name not in VIEWS))
    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    chosen = resolve_device(parser.parse_args().device)
    ownership_report()
    cost_report(chosen)
    operations_report(chosen)
