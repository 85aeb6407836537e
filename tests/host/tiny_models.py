"""Tiny real ComfyUI models for host tests, built in process with ComfyUI's own classes.

Nothing is downloaded: an SD1.5-shaped UNet with 32 base channels and a TAESD-shaped
VAE, both with seeded random weights, wrapped in ComfyUI's ModelPatcher / VAE exactly
as a loaded checkpoint would be.
"""

from __future__ import annotations

import torch

# SD1.5 layout, shrunk: two levels, one res block and one transformer per level,
# cross-attention to 768-wide text tokens like the real model.
TINY_SD15_UNET = {
    # what ComfyUI's model detection sets for every SD-style UNet
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}


def _seed_weights(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    # ComfyUI's ops skip weight init (weights come from checkpoints), so fill them here.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def tiny_sd15_model(seed: int = 0, **unet_changes):
    """A ComfyUI MODEL (ModelPatcher) around a tiny seeded SD1.5-shaped UNet on the CPU;
    ``unet_changes`` override TINY_SD15_UNET entries (e.g. SDXL-like transformer depths)."""
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(TINY_SD15_UNET, **unet_changes))
    model = config.get_model({}, device=torch.device("cpu"))
    _seed_weights(model.diffusion_model, seed)
    model.diffusion_model.float()
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                            offload_device=torch.device("cpu"))


def tiny_vae(seed: int = 0):
    """A ComfyUI VAE with the TAESD layout (8x down, 4 latent channels), seeded weights.

    Its latents are O(1) (unit latent scale, small weights), so a changed latent shows in
    pixels; with TAESD's scale seeded too, latents reach ~1e8 and the decoder saturates.
    """
    import comfy.sd
    from comfy.taesd.taesd import TAESD

    net = TAESD()
    _seed_weights(net, seed, std=0.05)
    with torch.no_grad():
        net.vae_scale.fill_(1.0)
        net.vae_shift.fill_(0.0)
    return comfy.sd.VAE(sd=net.state_dict(), device=torch.device("cpu"), dtype=torch.float32)


def text_conditioning(seed: int = 0, tokens: int = 77):
    """A CONDITIONING value as CLIPTextEncode would give it (random 768-wide tokens)."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 768, generator=gen), {}]]
