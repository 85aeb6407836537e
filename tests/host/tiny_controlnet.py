"""A tiny real ComfyUI ControlNet for host tests and benches, shaped like tiny_models' UNet.

``comfy.cldm.cldm.ControlNet`` with the tiny UNet's layout and seeded weights, wrapped as
``comfy.controlnet.ControlNet`` the way ComfyUI's loader wraps a checkpoint. (The loader
itself cannot read it back: it assumes 64-channel attention heads, wider than this UNet.)
"""

from __future__ import annotations

import torch

from tests.host.tiny_models import TINY_SD15_UNET, _seed_weights


def tiny_controlnet(seed: int = 3):
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    config = {k: v for k, v in TINY_SD15_UNET.items() if k != "out_channels"}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, num_heads=8, num_head_channels=-1, dtype=torch.float32,
                                     device=torch.device("cpu"), operations=comfy.ops.disable_weight_init, **config)
    _seed_weights(net, seed)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))
