"""How much of a ControlNet's effect stays inside its mask: stock Apply ControlNet vs MMFControlApply.

Needs ComfyUI: COMFYUI_DIR=/path/to/ComfyUI python bench/mmf_masked_control.py
A tiny seeded SD1.5-shaped UNet and ControlNet (tests/host/tiny_models.py, tiny_controlnet.py) denoise one
step from the same noise three times: no control, the stock control, the masked control.
For each control, |denoised - denoised without control| is averaged inside and outside the
face mask (at latent resolution); the ratio outside/inside says how much acts off the face.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import torch

PACK = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
SIZE = 128


def main() -> None:
    sys.path.insert(0, str(PACK))
    from bench.device import cpu_bench

    cpu_bench(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
              "it measures where a ControlNet acts (not time), on the host tests' tiny CPU models")
    if not Path(COMFYUI_DIR, "main.py").is_file():
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    sys.path[:0] = [COMFYUI_DIR, str(PACK / "tests" / "host")]
    from comfy.cli_args import args

    args.cpu = True
    import folder_paths
    import nodes
    from tiny_models import text_conditioning, tiny_sd15_model
    from tiny_controlnet import tiny_controlnet

    base = Path(tempfile.mkdtemp())
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-MagicID").symlink_to(PACK, target_is_directory=True)
    folder_paths.set_temp_directory(str(base))
    asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / "ComfyUI-MagicID")))
    apply_masked = nodes.NODE_CLASS_MAPPINGS["MMFControlApply"]()

    model, cnet = tiny_sd15_model(), tiny_controlnet(3)
    gen = torch.Generator().manual_seed(0)
    hint = torch.rand(1, SIZE, SIZE, 3, generator=gen)
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, 16:64, 16:64] = 1.0            # a face in the top-left
    latent = {"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 8)}
    pos, neg = text_conditioning(0), text_conditioning(1)

    def denoised(p, n):   # one Euler step to sigma 0 lands on the denoised latent
        return nodes.common_ksampler(model, 5, 1, 4.0, "euler", "normal", p, n, latent)[0]["samples"]

    plain = denoised(pos, neg)
    stock = denoised(*nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, cnet, hint, 1.0, 0.0, 1.0))
    masked = denoised(*apply_masked.apply(pos, neg, 0.0, 1.0, 0.0, 1.0, "together", 0.5,
                                          face_control_net=cnet, face_map=hint, face_mask=mask))
    inside = torch.nn.functional.interpolate(mask[:, None], size=plain.shape[-2:], mode="area")[0, 0] > 0.5
    print(f"{'control':<10}{'mean |effect| inside':>22}{'outside':>10}{'outside/inside':>16}")
    for name, out in (("stock", stock), ("masked", masked)):
        effect = (out - plain).abs().mean(dim=(0, 1))
        i, o = effect[inside].mean().item(), effect[~inside].mean().item()
        print(f"{name:<10}{i:>22.4f}{o:>10.4f}{o / i:>16.3f}")


if __name__ == "__main__":
    main()
