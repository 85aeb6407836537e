"""Tiny real ComfyUI ControlNets for host tests and benches, shaped like tiny_models' UNet and Flux.

``comfy.cldm.cldm.ControlNet`` with the tiny UNet's layout and seeded weights, wrapped as
``comfy.controlnet.ControlNet`` the way ComfyUI's loader wraps a checkpoint. (The loader
itself cannot read it back: it assumes 64-channel attention heads, wider than this UNet.)
``comfy.ldm.flux.controlnet.ControlNetFlux`` likewise at the tiny Flux's widths, wrapped as the loader
wraps an InstantX / Union Flux ControlNet (its model detection fixes the width at 3072, so the
config is given directly, as tiny_models builds the tiny Flux).
"""

from __future__ import annotations

import torch

from tests.host.tiny_models import TINY_FLUX, TINY_SD15_UNET, _seed_weights


def tiny_controlnet(seed: int = 3):
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    config = {k: v for k, v in TINY_SD15_UNET.items() if k != "out_channels"}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, num_heads=8, num_head_channels=-1, dtype=torch.float32,
                                     device=torch.device("cpu"), operations=comfy.ops.disable_weight_init, **config)
    _seed_weights(net, seed)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))


def tiny_flux_controlnet(seed: int = 3, union_modes: int = 0):
    """An InstantX-style Flux ControlNet (the hint VAE-encoded, as comfy.controlnet.load_controlnet_flux_instantx
    loads the InstantX and Union files) at the tiny Flux's widths, seeded; ``union_modes`` > 0: a Union one."""
    import comfy.controlnet
    import comfy.latent_formats
    import comfy.ldm.flux.controlnet
    import comfy.ops

    net = comfy.ldm.flux.controlnet.ControlNetFlux(latent_input=True, num_union_modes=union_modes,
                                                   control_latent_channels=TINY_FLUX["in_channels"],
                                                   operations=comfy.ops.disable_weight_init, dtype=torch.float32,
                                                   device=torch.device("cpu"), **TINY_FLUX)
    _seed_weights(net, seed, std=0.08)
    return comfy.controlnet.ControlNet(net, compression_ratio=1, latent_format=comfy.latent_formats.Flux(),
                                       load_device=torch.device("cpu"), extra_conds=["y", "guidance"])
