"""Flux.1 restore and per-person words on the tiny Flux, side by side in one run, in a real ComfyUI:

    COMFYUI_DIR=/path/to/ComfyUI python bench/bench_flux.py [--size 512] [--repeat 3] [--threads N] [--only-words]
        [--device cpu|cuda]

ComfyUI's own Flux class with Flux.1's 19 + 38 blocks at tiny widths (tests/host/tiny_models.py,
seeded, nothing downloaded), cfg 1 with FluxGuidance's guidance as a Flux dev graph samples.
1. Model calls (and time) of IDRestore on one face against a plain img2img pass of the same
   crop (VAE-encode the crop, KSampler with the same steps and denoise = strength, decode).
2. One step at size x size with four people's words (PersonPrompt, 8 tokens each) beside the
   main prompt, against the main prompt alone (goal: at most 1.15x), and against the main prompt with
   the 32 words concatenated (what the words' tokens cost by themselves, without masks).
Times (bench/device.py: CPU seconds of this process on the CPU, synchronised wall seconds on CUDA): 1. the
best of --repeat runs, 2. the median of the model calls of --repeat interleaved 3-step runs (what ComfyUI
does when sampling switches models is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

PACK = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK / "bench"))
from device import add_device_argument, clock, clocked_model, describe, resolve_device  # noqa: E402

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
FOUR = [(0.14, 0.4, 0.1), (0.38, 0.45, 0.09), (0.62, 0.4, 0.08), (0.86, 0.5, 0.07)]   # cx, cy, r of the side


def best(run, repeat, now):
    times = []
    for _ in range(repeat):
        start = now()
        out = run()
        times.append(now() - start)
    return min(times), out


def ellipse_face(index, cx, cy, r, size):
    from magicid_core.faces.records import Face

    yy, xx = np.mgrid[:size, :size]
    mask = (((xx - cx * size) / (r * size)) ** 2 + ((yy - cy * size) / (1.3 * r * size)) ** 2 <= 1).astype(np.float32)
    box = np.array([(cx - r) * size, (cy - 1.3 * r) * size, (cx + r) * size, (cy + 1.3 * r) * size], np.float32)
    return Face(index=index, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32), head_box=box, mask=mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps of the restore and of img2img")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 keeps a loaded machine's spinning threads out of CPU time")
    parser.add_argument("--only-words", action="store_true", help="only 2. (the step with people's words)")
    add_device_argument(parser)
    opts = parser.parse_args()
    opts.device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if not Path(COMFYUI_DIR, "main.py").is_file():
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    sys.path[:0] = [COMFYUI_DIR, str(PACK), str(PACK / "tests" / "host")]
    from comfy.cli_args import args

    args.cpu = opts.device.type == "cpu"
    import utils.install_util  # noqa: F401  (ComfyUI's utils package before nodes puts comfy/ first, as main.py)
    import comfy.patcher_extension
    import nodes
    from tiny_models import flux_conditioning, tiny_flux_model, tiny_vae

    base = Path(tempfile.mkdtemp())
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-MagicID").symlink_to(PACK, target_is_directory=True)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    assert asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / "ComfyUI-MagicID")))
    classes = nodes.NODE_CLASS_MAPPINGS
    words_host = sys.modules[classes["MultiIDApply"].__module__.rsplit(".", 1)[0] + ".host.dit_words"]
    torch.set_grad_enabled(False)

    model = tiny_flux_model(seed=1, load_device=opts.device)
    vae = tiny_vae(seed=1, latent_channels=16, device=opts.device)
    print(f"times: {describe(opts.device)}; load average {os.getloadavg()[0]:.2f}")
    (positive,) = classes["FluxGuidance"]().execute(flux_conditioning(1), 3.5)
    calls = {"n": 0}

    def counting(executor, *a, **k):
        calls["n"] += 1
        return executor(*a, **k)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench_count", counting)

    if not opts.only_words:
        bench_restore(classes, model, vae, positive, calls, opts)
    bench_words(classes, words_host, model, positive, opts)


def bench_restore(classes, model, vae, positive, calls, opts) -> None:
    """1. a Flux restore against img2img of the same crop."""
    from magicid_core.faces.records import FaceSet, ImageFaces

    size, steps, strength = 256, opts.steps, 0.5
    image = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    face = ellipse_face(0, 0.5, 0.5, 0.2, size)
    faces = FaceSet([ImageFaces(size, size, [face])])

    def restore():
        calls["n"] = 0
        classes["IDRestore"]().restore(image=image, faces=faces, model=model, vae=vae, positive=positive,
                                       steps=steps, strength=strength, cfg=0.0, scheduler="simple",
                                       zoom_size=256, context=0.4, feather=3, refinement=1, faces_to_restore="all")
        return calls["n"]

    def img2img():
        calls["n"] = 0
        (latent,) = classes["VAEEncode"]().encode(vae, image)
        (out,) = classes["KSampler"]().sample(model, 0, steps, 1.0, "euler", "simple", positive, positive, latent,
                                              denoise=strength)
        vae.decode(out["samples"])
        return calls["n"]

    now = clock(opts.device)
    t_restore, n_restore = best(restore, opts.repeat, now)
    t_img2img, n_img2img = best(img2img, opts.repeat, now)
    print(f"Flux restore of one face ({size} px crop, {steps} steps, strength {strength}, refinement 1): "
          f"{n_restore} model calls, {t_restore:.2f} s")
    print(f"plain img2img of the same crop:                                     "
          f"{n_img2img} model calls, {t_img2img:.2f} s  -> {n_restore / n_img2img:.2f}x calls, "
          f"{t_restore / t_img2img:.2f}x time")


def bench_words(classes, words_host, model, positive, opts) -> None:
    """2. one step with four people's words against the main prompt alone, and the words concatenated."""
    import comfy.sample
    from magicid_core.diffusion.placement import PersonPrompt
    from magicid_core.faces.records import FaceSet, ImageFaces
    from tiny_models import TINY_FLUX

    people = FaceSet([ImageFaces(opts.size, opts.size, [ellipse_face(i, *f, opts.size) for i, f in enumerate(FOUR)])])
    said = [PersonPrompt(torch.randn(8, TINY_FLUX["context_in_dim"], generator=torch.Generator().manual_seed(i)), 1.0)
            for i in range(4)]
    with_words = words_host.add_person_words(model, words_host.flux_words(model, said, people[0]))
    concatenated = [[torch.cat([positive[0][0]] + [p.tokens[None] for p in said], dim=1), dict(positive[0][1])]]
    latent = torch.zeros(1, 16, opts.size // 8, opts.size // 8)
    noise = comfy.sample.prepare_noise(latent, 0)

    words_case, concat_case = "4 people's words", "main prompt + the words concatenated"
    cases = {"main prompt": (model, positive), words_case: (with_words, positive), concat_case: (model, concatenated)}
    times = {name: [] for name in cases}
    runs = {name: (clocked_model(m, times[name], clock(opts.device)), cond) for name, (m, cond) in cases.items()}

    def steps(m, cond, count):
        comfy.sample.sample(m, noise, count, 1.0, "euler", "simple", cond, cond, latent, disable_pbar=True, seed=0)
    for m, cond in runs.values():
        steps(m, cond, 1)                        # warm up (the words' layout is kept from here on)
    for t in times.values():
        t.clear()
    for _ in range(opts.repeat):                 # interleaved, so drifting load hits every case alike
        for m, cond in runs.values():
            steps(m, cond, 3)
    median = {name: statistics.median(t) for name, t in times.items()}
    tokens = (opts.size // 16) ** 2
    plain = median["main prompt"]
    print(f"one model call at {opts.size} px ({tokens} image tokens, 8 prompt tokens, 4 people with 8 words each), "
          f"s, median of {3 * opts.repeat}:")
    for name, t in median.items():
        print(f"   {name:38s} {t:8.4f}  {t / plain:.3f}x")
    print(f"   4 people's words / main prompt: {median[words_case] / plain:.3f}x (goal <= 1.15x); "
          f"the 32 words' tokens alone (concatenated, no masks): {median[concat_case] / plain:.3f}x")


if __name__ == "__main__":
    main()
