"""PuLID-Flux through MultiIDApply: what N identities cost against one, side by side in one run.

    python bench/bench_pulid_flux.py [--size 512] [--repeats 3] [--threads N] [--device cpu|cuda]   # 1. one real-width block
    COMFYUI_DIR=... MAGICID_PEERS_DIR=... python bench/bench_pulid_flux.py --host   # + 2. and 3.

1. One real-width Flux.1 double block (3072 wide, ComfyUI's DoubleStreamBlock when COMFYUI_DIR is set,
   seeded) and its PuLID CA (real dims) on a --size px picture (256 text tokens, cond batch): CPU time of
   block + residual with 4 identities in quadrants against 1 identity over the whole picture (goal <= 1.15x),
   and what 4 chained ApplyPulidFlux entries compute there (4 CAs over every token, each masked).
2. The tiny Flux of the host tests (Flux.1's 19 + 38 blocks, 64 wide, 8 x 8 tokens): CPU time per model call
   (a step at cfg 1; what ComfyUI does when sampling switches models is not counted) with 4 identities in
   quadrants, through MultiIDApply's patch.
   Against 1 identity over the whole picture (the same tokens as 4 in quadrants: the goal's ratio) and
   against 1 identity on one quadrant (a quarter of the tokens).
3. Peak memory (peak RSS of a fresh process over its RSS before the identities are applied, the
   identities' inputs made before that; with --device cuda, the peak of torch's CUDA allocations over
   those before) of sampling the tiny Flux with 1, 2, 4 identities in one
   MultiIDApply against 1, 2, 4 chained ApplyPulidFlux nodes fed by one loader (lldacing/
   ComfyUI_PuLID_Flux_ll run as shipped, re-parametrised to the tiny width; tests/host/pulid_reference.py).

Times (bench/device.py): CPU seconds of this process on the CPU (other load on the machine skews the ratios
less; give `uptime` with them), synchronised wall seconds with --device cuda.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magicid_core.diffusion.token_identities import TokenIdentities  # noqa: E402
from magicid_core.identity.pulid_flux import PulidCrossAttention  # noqa: E402
from tests.support.pulid_layouts import seed_module  # noqa: E402
from bench.device import add_device_argument, clock, clocked_model, describe, resolve_device  # noqa: E402

DEVICE = torch.device("cpu")   # --device


def quadrants(size: int, n: int = 4) -> np.ndarray:
    masks = np.zeros((n, size, size), np.float32)
    half = size // 2
    for i in range(n):
        masks[i, (i // 2) * half:(i // 2 + 1) * half, (i % 2) * half:(i % 2 + 1) * half] = 1
    return masks


def timed(fn, repeats: int) -> float:
    now = clock(DEVICE)
    times = []
    for _ in range(repeats):
        start = now()
        fn()
        times.append(now() - start)
    return statistics.median(times)


# -- 1. one real-width block ---------------------------------------------------------------------------

def real_width_block(text_tokens: int):
    """(block(img, txt) -> img) of a 3072-wide Flux.1 double block: ComfyUI's own when it is importable."""
    if os.environ.get("COMFYUI_DIR"):
        sys.path.insert(0, os.environ["COMFYUI_DIR"])
        from comfy.cli_args import args
        args.cpu = DEVICE.type == "cpu"          # before comfy.model_management looks for a GPU
        from comfy.ldm.flux.layers import DoubleStreamBlock, EmbedND
        import comfy.ops

        block = seed_module(DoubleStreamBlock(3072, 24, mlp_ratio=4.0, qkv_bias=True,
                                              operations=comfy.ops.disable_weight_init), seed=0).eval().to(DEVICE)
        return block, EmbedND(dim=128, theta=10000, axes_dim=[16, 56, 56]), "ComfyUI's DoubleStreamBlock"
    return None, None, "no block (COMFYUI_DIR not set): residuals only"


def bench_real_width(size: int, repeats: int) -> None:
    grid = size // 16
    text = 256
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(1, grid * grid, 3072, generator=gen).to(DEVICE)
    ca = seed_module(PulidCrossAttention(3072, 2048, 16), seed=1).eval().to(DEVICE)
    tokens = torch.randn(4, 32, 2048, generator=gen).to(DEVICE)
    one = TokenIdentities(tokens[:1], np.ones((1, size, size), np.float32), [1.0])
    four = TokenIdentities(tokens, quadrants(size), [1.0] * 4)
    owner_masks = [torch.zeros(1, grid * grid, 1, device=DEVICE) for _ in range(4)]
    for i, owned in enumerate(four.owned_tokens(grid, grid)):
        owner_masks[i][:, owned] = 1
    block, embed, block_name = real_width_block(text)
    if block is not None:
        txt = torch.randn(1, text, 3072, generator=gen).to(DEVICE)
        vec = torch.randn(1, 3072, generator=gen).to(DEVICE)
        ids = torch.zeros(1, text + grid * grid, 3)
        ids[0, text:, 1] = torch.arange(grid).repeat_interleave(grid).float()
        ids[0, text:, 2] = torch.arange(grid).repeat(grid).float()
        pe = embed(ids).to(DEVICE)

    def run(identities=None, chained=False):
        with torch.no_grad():
            out = block(img=img, txt=txt, vec=vec, pe=pe)[0] if block is not None else img
            if chained:     # 4 ApplyPulidFlux entries: each CA over every token, then masked
                for i in range(4):
                    out = out + ca(tokens[i:i + 1], out) * owner_masks[i]
            elif identities is not None:
                target = out.clone()
                identities.add_residuals(ca, out, target, grid, grid)

    run(one)   # warm up
    cases = {"block alone": lambda: run(), "1 identity (whole picture)": lambda: run(one),
             "4 identities (quadrants)": lambda: run(four), "4 chained ApplyPulidFlux entries": lambda: run(chained=True)}
    times = {name: [] for name in cases}
    for _ in range(repeats):        # interleaved, so drifting load hits every case alike
        for name, fn in cases.items():
            times[name].append(timed(fn, 1))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"1. one real-width block, {size} px ({grid * grid} image + {text} text tokens), {block_name}, "
          f"s (median of {repeats}):")
    for name, t in median.items():
        print(f"   {name:36s} {t:8.3f}")
    base = median["block alone"] if block is not None else 0.0
    print(f"   4 identities / 1 identity, block + residual: {median['4 identities (quadrants)'] / median['1 identity (whole picture)']:.3f}x"
          f" (goal <= 1.15x); residual only: "
          f"{(median['4 identities (quadrants)'] - base) / max(median['1 identity (whole picture)'] - base, 1e-9):.3f}x")
    print(f"   4 chained entries / 1 identity: {median['4 chained ApplyPulidFlux entries'] / median['1 identity (whole picture)']:.3f}x")


# -- 2. and 3. the tiny Flux in ComfyUI ------------------------------------------------------------------

def boot_comfy(work: Path):
    """ComfyUI in this process on the CPU, with this pack and the reference loaded (as tests/host/conftest.py)."""
    import asyncio

    sys.path.insert(0, os.environ["COMFYUI_DIR"])
    from comfy.cli_args import args
    args.cpu = DEVICE.type == "cpu"
    import comfy.model_management  # noqa: F401
    import utils.install_util  # noqa: F401
    import nodes
    from tests.host.comfy_server import PACK_NAME, make_base_dir
    from tests.host.pulid_reference import load_reference

    (work / "base").mkdir()
    base = make_base_dir(work / "base")
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / PACK_NAME)))
    path, _ = load_reference(nodes, work)
    return nodes.NODE_CLASS_MAPPINGS, path


def our_inputs(n: int, size: int = 128, masks=None):
    """n identities with PuLID inputs and their faces on ``masks`` (default: the first n quadrants)."""
    from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces, PulidInputs
    from tests.host.pulid_reference import identity_inputs

    identities, faces = [], []
    for i, mask in enumerate(quadrants(size)[:n] if masks is None else masks):
        raw, eva, hidden = identity_inputs(i)
        identities.append(Identity(f"p{i}", raw / np.linalg.norm(raw), "arcface:test",
                                   pulid=PulidInputs(raw[None], eva.numpy(), np.stack([h.numpy() for h in hidden]))))
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32), head_box=box, mask=mask))
    return identities, FaceSet([ImageFaces(size, size, faces)])


def our_model(classes, base, n: int, size: int = 128, masks=None, inputs=None):
    """MultiIDApply (one loader) with n identities (``inputs``: our_inputs(n, ...) made beforehand)."""
    from tests.host.pulid_reference import FILE

    identities, faces = our_inputs(n, size, masks) if inputs is None else inputs
    (adapter,) = classes["MagicIDAdapterLoader"]().load(f"pulid/{FILE}")
    return classes["MultiIDApply"]().apply(base, adapter, identities, faces,
                                           1.0, 0.0, 1.0, face_indices=", ".join(map(str, range(n))))[0]


def chained_reference(classes, base, n: int, size: int = 128, inputs=None):
    """n ApplyPulidFlux nodes, each with its quadrant as attn_mask, fed by one PulidFluxModelLoader."""
    from tests.host.pulid_reference import FILE, apply_pulid_flux, identity_inputs

    inputs = [identity_inputs(i) for i in range(n)] if inputs is None else inputs
    (pulid,) = classes["PulidFluxModelLoader"]().load_model(FILE)
    model = base
    for i, mask in enumerate(quadrants(size)[:n]):
        model = apply_pulid_flux(classes, model, i, 1.0, mask=mask, size=size, pulid=pulid, inputs=inputs[i])
    return model


def sample(model, steps: int = 2):
    import comfy.sample
    from tests.host.tiny_models import flux_conditioning

    latent = torch.zeros(1, 16, 16, 16)
    comfy.sample.sample(model, comfy.sample.prepare_noise(latent, 3), steps, 1.0, "euler", "simple",
                        flux_conditioning(1), flux_conditioning(2), latent, disable_pbar=True, seed=3)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def reset_peak_rss() -> None:
    """Linux: start VmHWM (the peak RSS) over from the current RSS, so setup's own peak does not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_mb() -> float:
    """What the peak is measured over: RSS on the CPU, torch's CUDA allocations on a GPU."""
    return torch.cuda.memory_allocated(DEVICE) / 2 ** 20 if DEVICE.type == "cuda" else rss_mb()


def reset_peak() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats(DEVICE)
    else:
        reset_peak_rss()


def peak_mb() -> float:
    return torch.cuda.max_memory_allocated(DEVICE) / 2 ** 20 if DEVICE.type == "cuda" else peak_rss_mb()


def child(kind: str, n: int) -> None:
    """One configuration in a fresh process: peak RSS over the RSS before the identities are applied."""
    from tests.host.tiny_models import tiny_flux_model

    with tempfile.TemporaryDirectory() as work:
        classes, _ = boot_comfy(Path(work))
        base = tiny_flux_model(seed=1, load_device=DEVICE)
        sample(base, 1)                          # ComfyUI's own first-run allocations happen before the baseline
        if kind == "ours":
            inputs = our_inputs(n)               # the identities' inputs (EVA-CLIP hidden states: 12 MB each)
        else:
            from tests.host.pulid_reference import identity_inputs
            inputs = [identity_inputs(i) for i in range(n)]
        reset_peak()
        before = memory_mb()
        model = (our_model(classes, base, n, inputs=inputs) if kind == "ours"
                 else chained_reference(classes, base, n, inputs=inputs))
        sample(model)
        peak = peak_mb()
        print(json.dumps({"kind": kind, "n": n, "peak_over_baseline_mb": peak - before}))


def bench_tiny(repeats: int) -> None:
    from tests.host.tiny_models import tiny_flux_model

    with tempfile.TemporaryDirectory() as work:
        classes, _ = boot_comfy(Path(work))
        base = tiny_flux_model(seed=1, load_device=DEVICE)
        whole = np.ones((1, 128, 128), np.float32)
        patched = {"no identity": base, "1 identity, whole picture": our_model(classes, base, 1, masks=whole),
                   "1 identity, one quadrant": our_model(classes, base, 1),
                   "4 identities, quadrants": our_model(classes, base, 4)}
        times = {name: [] for name in patched}
        models = {name: clocked_model(model, times[name], clock(DEVICE)) for name, model in patched.items()}
        for model in models.values():
            sample(model, 1)                     # warm up (the identities' keys / values are kept from here on)
        for t in times.values():
            t.clear()
        for _ in range(repeats):                 # interleaved, so drifting load hits every case alike
            for model in models.values():
                sample(model, 3)
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"2. tiny Flux (8 x 8 tokens), s per model call (median of {3 * repeats}):")
        for name, t in median.items():
            print(f"   {name:28s} {t:8.4f}")
        four = median["4 identities, quadrants"]
        print(f"   4 identities / 1 identity over the whole picture (the same tokens): "
              f"{four / median['1 identity, whole picture']:.3f}x (goal <= 1.15x)")
        print(f"   4 identities / 1 identity on one quadrant (4x the tokens): "
              f"{four / median['1 identity, one quadrant']:.3f}x")


def bench_memory(threads: int) -> None:
    what = "CUDA memory allocated" if DEVICE.type == "cuda" else "RSS"
    print(f"3. tiny Flux, peak {what} over the {what} before applying (MB), each in a fresh process:")
    for n in (1, 2, 4):
        row = {}
        for kind in ("ours", "reference"):
            done = subprocess.run([sys.executable, __file__, "--child", kind, str(n), "--threads", str(threads),
                                   "--device", str(DEVICE)],
                                  capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            row[kind] = json.loads(lines[-1])["peak_over_baseline_mb"] if lines else float("nan")
            if not lines:
                print(done.stderr[-2000:])
        print(f"   {n} identities: MultiIDApply {row['ours']:7.1f}   {n} chained ApplyPulidFlux {row['reference']:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="picture size of the real-width block (px)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--host", action="store_true", help="also 2. and 3. (needs COMFYUI_DIR, MAGICID_PEERS_DIR)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 keeps a loaded machine's spinning threads out of CPU time")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    add_device_argument(parser)
    options = parser.parse_args()
    global DEVICE
    DEVICE = resolve_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.child:
        child(options.child[0], int(options.child[1]))
        return
    print(f"{describe(DEVICE)}; load average: {os.getloadavg()}, torch threads: {torch.get_num_threads()}")
    bench_real_width(options.size, options.repeats)
    if options.host:
        bench_tiny(options.repeats)
        bench_memory(options.threads)
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
