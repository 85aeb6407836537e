"""What a prompt per person costs, side by side in one run, in a real ComfyUI:

    COMFYUI_DIR=/path/to/ComfyUI python bench/bench_person_prompts.py [--size 512] [--repeat 2]

One KSampler step (CFG on: cond + uncond) of a real-size SD1.5 UNet (ComfyUI's SD15 class at the
real layout, seeded random weights: nothing is downloaded) at size x size, four people in a row:
1. plain: the global prompt only;
2. MultiIDApply with four PersonPrompts (words only, identity weight 0);
3. MultiIDApply with four identities and four PersonPrompts;
4. the global prompt plus four ConditioningSetMask conditionings (strength 1, area "default"),
   ComfyUI's own way to give each face its prompt.
Times are CPU seconds of this process (time.process_time), the best of --repeat runs, so other
load on the machine skews them less; the ratios to the plain step are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PACK = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
SD15_LAYOUT = dict(model_channels=320, channel_mult=[1, 2, 4, 4], num_res_blocks=[2, 2, 2, 2],
                   transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                   transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
FOUR = [(0.14, 0.4, 0.1), (0.38, 0.45, 0.09), (0.62, 0.4, 0.08), (0.86, 0.5, 0.07)]   # cx, cy, r of the side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    opts = parser.parse_args()
    if not Path(COMFYUI_DIR, "main.py").is_file():
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    # ComfyUI first (its nodes.py, not the pack's nodes/); the pack's test helpers by folder, since
    # ComfyUI has a package called tests too
    sys.path[:0] = [COMFYUI_DIR, str(PACK), str(PACK / "tests" / "host"), str(PACK / "tests" / "support")]
    from comfy.cli_args import args

    args.cpu = True
    import folder_paths
    import nodes
    from magicid_core.diffusion.placement import PersonPrompt
    from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces
    from mgmica_layouts import faceid_state_dict
    from tiny_models import tiny_sd15_model

    base = Path(tempfile.mkdtemp())
    (base / "custom_nodes").mkdir()
    (base / "ipadapter").mkdir()
    (base / "custom_nodes" / "ComfyUI-MagicID").symlink_to(PACK, target_is_directory=True)
    folder_paths.set_temp_directory(str(base))
    asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / "ComfyUI-MagicID")))
    classes = nodes.NODE_CLASS_MAPPINGS
    pack = sys.modules[classes["MultiIDApply"].__module__]

    size = opts.size
    model = tiny_sd15_model(seed=0, **SD15_LAYOUT)
    layers = pack.cross_attention_layers(model)
    torch.save(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=768, seed=1), base / "ipadapter" / "faceid.bin")
    folder_paths.add_model_folder_path("ipadapter", str(base / "ipadapter"))
    (adapter,) = classes["MagicIDAdapterLoader"]().load("ipadapter/faceid.bin")

    gen = torch.Generator().manual_seed(0)
    text = lambda: [[torch.randn(1, 77, 768, generator=gen), {}]]
    positive, negative = text(), text()
    people_words = [text() for _ in FOUR]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    masks = [((yy - cy * size) ** 2 + (xx - cx * size) ** 2 <= (r * size) ** 2).astype(np.float32) for cx, cy, r in FOUR]
    faces = FaceSet([ImageFaces(size, size, [
        Face(index=i, box=np.array([0, 0, 1, 1], np.float32), score=1.0, keypoints=np.zeros((5, 2), np.float32),
             head_box=np.array([0, 0, 1, 1], np.float32), mask=m) for i, m in enumerate(masks)])])
    rng = np.random.default_rng(0)
    identities = [Identity(name=f"p{i}", embedding=e / np.linalg.norm(e), embedding_model="arcface:bench")
                  for i, e in enumerate(rng.normal(size=(4, 512)).astype(np.float32))]
    prompts = [PersonPrompt(w[0][0][0], 1.0, None) for w in people_words]

    def with_people(weight):
        return classes["MultiIDApply"]().apply(model, adapter, identities, faces, weight, 0.0, 1.0,
                                               face_indices="0, 1, 2, 3", person_prompts=prompts)[0]

    masked = list(positive)
    for w, m in zip(people_words, masks):
        masked += nodes.ConditioningSetMask().append(w, torch.from_numpy(m)[None], "default", 1.0)[0]

    runs = {
        "plain (global prompt only)": (model, positive),
        "4 person prompts (MultiIDApply, words only)": (with_people(0.0), positive),
        "4 identities + 4 person prompts": (with_people(1.0), positive),
        "4 ConditioningSetMask prompts": (model, masked),
    }
    (latent,) = nodes.EmptyLatentImage().generate(size, size, 1)

    def step(m, pos):
        start = time.process_time()
        nodes.common_ksampler(m, 3, 1, 5.0, "euler", "normal", pos, negative, latent)
        return time.process_time() - start

    step(model, positive)                                          # warm-up: loading, allocations
    best = {name: min(step(*run) for _ in range(opts.repeat)) for name, run in runs.items()}
    plain = best["plain (global prompt only)"]
    print(f"one KSampler step, real-size SD1.5 UNet, {size}x{size}, CFG on, best of {opts.repeat} (CPU s)")
    print(f"{'':<46}{'CPU s':>8}{'x plain':>9}")
    for name, seconds in best.items():
        print(f"{name:<46}{seconds:>8.2f}{seconds / plain:>9.3f}")


if __name__ == "__main__":
    main()
