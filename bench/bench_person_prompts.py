"""What identities and a prompt per person cost in a whole UNet step, side by side in one run, in a real ComfyUI:

    COMFYUI_DIR=/path/to/ComfyUI python bench/bench_person_prompts.py [--family sd15|sdxl] [--size S]
        [--people 4|6] [--repeat 2] [--runs plain,words,people,masked] [--device cpu|cuda]

One KSampler step (CFG on: cond + uncond) of a full-width UNet (ComfyUI's SD15 or SDXL class at the
real layout and widths, seeded random weights: nothing is downloaded) at size x size, the people in
a group (FaceID for SD1.5, InstantID's 16 tokens for SDXL):
1. plain: the global prompt only;
2. MultiIDApply with a PersonPrompt each (words only, identity weight 0);
3. MultiIDApply with an identity and a PersonPrompt each;
4. the global prompt plus one ConditioningSetMask conditioning per person (strength 1, area
   "default"), ComfyUI's own way to give each face its prompt (--runs picks the runs: this one
   doubles the step, which is long for SDXL at 1024 on a CPU).
Each run is warmed up by one step (model loading, and each patch's per-layer caches, built once per
sampling run); times (bench/device.py) are the best of --repeat runs, interleaved; the ratios to
the plain step are what to read. The SDXL UNet at full width holds about 10 GB of float32 weights.

A step of SDXL at 1024 takes minutes on a CPU and two such steps differ by a few percent from load
alone, more than the people add. So the bench also clocks, inside each MultiIDApply step, the time
MultiIDApply's dispatchers spend beyond the layer's own text attention (the owned cells' identity and
word attention, and the adding of their residuals), and prints it as a share of the plain step
("1 + added/plain", and by layer size): the people's cost measured directly, not as the difference
of two long steps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

PACK = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK / "bench"))
from device import add_device_argument, clock, describe, resolve_device  # noqa: E402

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
# the unet_config ComfyUI's model detection gives a real checkpoint of each family
FULL_UNET = {
    "sd15": dict(model_channels=320, channel_mult=[1, 2, 4, 4], num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]),
    "sdxl": dict(model_channels=320, channel_mult=[1, 2, 4], num_res_blocks=[2, 2, 2],
                 transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
                 transformer_depth_middle=10, context_dim=2048, num_classes="sequential", adm_in_channels=2816,
                 use_linear_in_transformer=True),
}
CONTEXT = {"sd15": 768, "sdxl": 2048}
DEFAULT_SIZE = {"sd15": 512, "sdxl": 1024}
# (cx, cy, r) as fractions of the side: faces of a group photo
PEOPLE = {
    4: [(0.14, 0.4, 0.1), (0.38, 0.45, 0.09), (0.62, 0.4, 0.08), (0.86, 0.5, 0.07)],
    6: [(0.1, 0.38, 0.07), (0.26, 0.45, 0.075), (0.42, 0.36, 0.07), (0.58, 0.44, 0.08),
        (0.74, 0.37, 0.07), (0.9, 0.46, 0.065)],
}


def full_size_model(family: str, device: torch.device, seed: int = 0):
    """A ModelPatcher around ComfyUI's SD15 / SDXL class at full width, seeded random weights."""
    import comfy.model_patcher
    import comfy.supported_models
    from tiny_models import TINY_SD15_UNET, _seed_weights

    unet = dict(TINY_SD15_UNET, **FULL_UNET[family])
    if family == "sd15":
        config = comfy.supported_models.SD15(unet)
    else:
        config = comfy.supported_models.SDXL(unet)
        config.unet_config.update(num_heads=-1, num_head_channels=64)
    model = config.get_model({}, device=torch.device("cpu"))
    _seed_weights(model.diffusion_model, seed)
    model.diffusion_model.float()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=torch.device("cpu"))


def write_adapter(family: str, folder: Path, layers) -> str:
    """A seeded adapter file of the family's usual kind, with the real key layout: its name for the loader."""
    from mgmica_layouts import faceid_state_dict, instantid_state_dict

    widths = [w for _, w, _ in layers]
    if family == "sd15":
        (folder / "ipadapter").mkdir()
        torch.save(faceid_state_dict(widths=widths, context_dim=768, seed=1), folder / "ipadapter" / "faceid.bin")
        return "ipadapter/faceid.bin"
    (folder / "instantid").mkdir()
    torch.save(instantid_state_dict(widths=widths, context_dim=2048, seed=1), folder / "instantid" / "ip-adapter.bin")
    return "instantid/ip-adapter.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FULL_UNET), default="sd15")
    parser.add_argument("--size", type=int, help="picture side in pixels (default 512 for sd15, 1024 for sdxl)")
    parser.add_argument("--people", type=int, choices=sorted(PEOPLE), default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--runs", default="plain,words,people,masked",
                        help="which runs, comma-separated: plain, words (prompts only), people (identities and "
                             "prompts), masked (ConditioningSetMask); the masked run doubles the step")
    add_device_argument(parser)
    opts = parser.parse_args()
    device = resolve_device(opts.device)
    if not Path(COMFYUI_DIR, "main.py").is_file():
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    # ComfyUI first (its nodes.py, not the pack's nodes/); the pack's test helpers by folder, since
    # ComfyUI has a package called tests too
    sys.path[:0] = [COMFYUI_DIR, str(PACK), str(PACK / "tests" / "host"), str(PACK / "tests" / "support")]
    from comfy.cli_args import args

    args.cpu = device.type == "cpu"
    import folder_paths
    import nodes
    from magicid_core.diffusion.placement import PersonPrompt
    from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces
    from tiny_models import family_conditioning

    base = Path(tempfile.mkdtemp())
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-MagicID").symlink_to(PACK, target_is_directory=True)
    folder_paths.set_temp_directory(str(base))
    asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / "ComfyUI-MagicID")))
    classes = nodes.NODE_CLASS_MAPPINGS
    pack = sys.modules[classes["MultiIDApply"].__module__]

    family, people = opts.family, PEOPLE[opts.people]
    size = opts.size or DEFAULT_SIZE[family]
    model = full_size_model(family, device)
    adapter_name = write_adapter(family, base, pack.cross_attention_layers(model))
    for folder in ("ipadapter", "instantid"):
        folder_paths.add_model_folder_path(folder, str(base / folder))
    (adapter,) = classes["MagicIDAdapterLoader"]().load(adapter_name)

    positive, negative = family_conditioning(family, seed=0), family_conditioning(family, seed=1)
    gen = torch.Generator().manual_seed(2)
    people_words = [[[torch.randn(1, 77, CONTEXT[family], generator=gen), dict(positive[0][1])]] for _ in people]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    masks = [((yy - cy * size) ** 2 + (xx - cx * size) ** 2 <= (r * size) ** 2).astype(np.float32)
             for cx, cy, r in people]
    faces = FaceSet([ImageFaces(size, size, [
        Face(index=i, box=np.array([0, 0, 1, 1], np.float32), score=1.0, keypoints=np.zeros((5, 2), np.float32),
             head_box=np.array([0, 0, 1, 1], np.float32), mask=m) for i, m in enumerate(masks)])])
    rng = np.random.default_rng(0)
    identities = [Identity(name=f"p{i}", embedding=e / np.linalg.norm(e), embedding_model="arcface:bench",
                           embedding_norm=20.0)
                  for i, e in enumerate(rng.normal(size=(len(people), 512)).astype(np.float32))]
    prompts = [PersonPrompt(w[0][0][0], 1.0, None) for w in people_words]
    n = len(people)

    def with_people(weight):
        return classes["MultiIDApply"]().apply(model, adapter, identities, faces, weight, 0.0, 1.0,
                                               face_indices=", ".join(map(str, range(n))), person_prompts=prompts)[0]

    runs = {"plain": ("plain (global prompt only)", model, positive)}
    wanted = set(opts.runs.split(",")) | {"plain"}
    if "words" in wanted:
        runs["words"] = (f"{n} person prompts (MultiIDApply, words only)", with_people(0.0), positive)
    if "people" in wanted:
        runs["people"] = (f"{n} identities + {n} person prompts", with_people(1.0), positive)
    if "masked" in wanted:
        masked = list(positive)
        for w, m in zip(people_words, masks):
            masked += nodes.ConditioningSetMask().append(w, torch.from_numpy(m)[None], "default", 1.0)[0]
        runs["masked"] = (f"{n} ConditioningSetMask prompts", model, masked)
    (latent,) = nodes.EmptyLatentImage().generate(size, size, 1)
    now = clock(device)
    in_entries = clock_entries(sys.modules[pack.add_identities.__module__], now)

    def step(m, pos):
        start = now()
        nodes.common_ksampler(m, 3, 1, 5.0, "euler", "normal", pos, negative, latent)
        return now() - start

    for _, m, pos in runs.values():          # warm-up: loading, allocations, each patch's per-layer caches
        step(m, pos)
    times = {name: [] for name in runs}
    entries = {name: [] for name in runs}
    by_layer = {}                            # run -> {layer cells: seconds added there, last step}
    for _ in range(opts.repeat):             # interleaved: load spikes hit all alike
        for name, (_, m, pos) in runs.items():
            in_entries.clear()
            times[name].append(step(m, pos))
            entries[name].append(sum(seconds for _, seconds in in_entries))
            by_layer[name] = {cells: sum(t for c, t in in_entries if c == cells) for cells, _ in in_entries}
    best = {name: min(t) for name, t in times.items()}
    print(f"one KSampler step, full-width {family.upper()} UNet, {size}x{size}, CFG on, {n} people, "
          f"best of {opts.repeat} after a warm-up step each ({describe(device)}); load average {os.getloadavg()[0]:.2f}")
    print(f"{'':<46}{'s':>8}{'x plain':>9}{'added s':>10}{'1 + added/plain':>17}   all runs")
    for name, seconds in best.items():
        spent = min(entries[name])
        direct = f"{spent:>10.2f}{1 + spent / best['plain']:>17.4f}" if spent else f"{'-':>10}{'-':>17}"
        print(f"{runs[name][0]:<46}{seconds:>8.2f}{seconds / best['plain']:>9.3f}{direct}   "
              f"{', '.join(f'{t:.2f}' for t in times[name])}")
        if by_layer.get(name):
            print(f"{'':<6}added by layer size (last step): " + ", ".join(
                f"{cells} cells {t:.2f} s" for cells, t in sorted(by_layer[name].items(), reverse=True)))


def clock_entries(attn2_module, now) -> list:
    """Seconds MultiIDApply's dispatchers (attn2 module's MagicIDAttn2) spend beyond the plain layer's
    text attention (its host_attention): the entries and the adding of their residuals. (the layer's
    cells, seconds) of each layer call is appended to the returned list."""
    spent: list = []
    dispatch, host_attention = attn2_module.MagicIDAttn2.__call__, attn2_module.host_attention
    text_time = [0.0]

    def clocked_text(*args, **kwargs):
        start = now()
        out = host_attention(*args, **kwargs)
        text_time[0] += now() - start
        return out

    def clocked_dispatch(self, *args, **kwargs):
        start, text_before = now(), text_time[0]
        out = dispatch(self, *args, **kwargs)
        spent.append((args[0].shape[1], now() - start - (text_time[0] - text_before)))   # (cells, s)
        return out
    attn2_module.host_attention = clocked_text
    attn2_module.MagicIDAttn2.__call__ = clocked_dispatch
    return spent


if __name__ == "__main__":
    main()
