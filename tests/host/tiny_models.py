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


def tiny_vae(seed: int = 0, latent_channels: int = 4, device=None):
    """A ComfyUI VAE with the TAESD layout (8x down, 4 latent channels; 16 like Flux's), seeded weights.

    Its latents are O(1) (unit latent scale, small weights), so a changed latent shows in
    pixels; with TAESD's scale seeded too, latents reach ~1e8 and the decoder saturates.
    """
    import comfy.sd
    from comfy.taesd.taesd import TAESD

    net = TAESD(latent_channels=latent_channels)
    _seed_weights(net, seed, std=0.05)
    with torch.no_grad():
        net.vae_scale.fill_(1.0)
        net.vae_shift.fill_(0.0)
    return comfy.sd.VAE(sd=net.state_dict(), device=device or torch.device("cpu"), dtype=torch.float32)


def text_conditioning(seed: int = 0, tokens: int = 77):
    """A CONDITIONING value as CLIPTextEncode would give it (random 768-wide tokens)."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 768, generator=gen), {}]]


# The real SD1.5 / SDXL block layouts (which blocks hold cross-attention, and how many
# transformers each), at 32 base channels: peer packs (IPAdapter_plus, InstantID) patch
# hard-coded block ids, so a parity test needs the real layout, not just the real widths.
TINY_SD15_FULL_LAYOUT = dict(TINY_SD15_UNET, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
                             transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                             transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
TINY_SDXL_FULL_LAYOUT = dict(TINY_SD15_UNET, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
                             transformer_depth=[0, 0, 2, 2, 10, 10],
                             transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
                             transformer_depth_middle=10, context_dim=2048, num_classes="sequential", adm_in_channels=2816,
                             use_linear_in_transformer=True, num_head_channels=32)


def tiny_full_layout_model(family: str, seed: int = 0):
    """A ComfyUI MODEL with the real SD1.5 ("sd15") or SDXL ("sdxl") block layout, tiny widths."""
    import comfy.model_patcher
    import comfy.supported_models

    if family == "sd15":
        config = comfy.supported_models.SD15(dict(TINY_SD15_FULL_LAYOUT))
    else:
        unet = dict(TINY_SDXL_FULL_LAYOUT)
        head_channels = unet.pop("num_head_channels")
        config = comfy.supported_models.SDXL(unet)
        config.unet_config.update(num_heads=-1, num_head_channels=head_channels)
    model = config.get_model({}, device=torch.device("cpu"))
    _seed_weights(model.diffusion_model, seed)
    model.diffusion_model.float()
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                            offload_device=torch.device("cpu"))


def family_conditioning(family: str, seed: int = 0, tokens: int = 77):
    """CONDITIONING for a tiny_full_layout_model: 768-wide text (SD1.5), or 2048-wide text and
    a 1280-wide pooled vector (SDXL), random and seeded."""
    if family == "sd15":
        return text_conditioning(seed, tokens)
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 2048, generator=gen), {"pooled_output": torch.randn(1, 1280, generator=gen)}]]


TINY_CLIP_VISION_WIDTH = 32  # the hidden size of tiny_clip_vision: what a FaceID Plus file for it reads


def tiny_clip_vision(seed: int = 0, folder=None):
    """A ComfyUI CLIP_VISION (comfy.clip_vision.ClipVisionModel) of a tiny ViT config, seeded."""
    import json
    import os
    import tempfile

    import comfy.clip_vision

    config = {"hidden_act": "quick_gelu", "hidden_size": TINY_CLIP_VISION_WIDTH, "image_size": 224,
              "intermediate_size": 64,
              "layer_norm_eps": 1e-5, "model_type": "clip_vision_model", "num_attention_heads": 2,
              "num_channels": 3, "num_hidden_layers": 2, "patch_size": 14, "projection_dim": 32}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = os.path.join(tmp, "tiny_clip_vision.json")
        with open(path, "w") as f:
            json.dump(config, f)
        clip = comfy.clip_vision.ClipVisionModel(path)
    _seed_weights(clip.model, seed)
    return clip


# Flux.1's block layout (19 double, 38 single blocks, 2x2 patches of a 16-channel latent), tiny
# widths: ComfyUI's model detection fixes the width at 3072, so the config is given directly.
# PuLID-Flux (and lldacing's reference) hooks hard-coded block ids, so the depths are the real ones.
TINY_FLUX = {
    "image_model": "flux",
    "in_channels": 16,
    "out_channels": 16,
    "vec_in_dim": 32,
    "context_in_dim": 48,
    "hidden_size": 64,
    "mlp_ratio": 2.0,
    "num_heads": 2,
    "depth": 19,
    "depth_single_blocks": 38,
    "axes_dim": [8, 12, 12],
    "theta": 10000,
    "patch_size": 2,
    "qkv_bias": True,
    "guidance_embed": True,
}


def tiny_flux_model(seed: int = 0, load_device=None, **changes):
    """A ComfyUI MODEL around ComfyUI's own Flux class (Flux.1 dev's layout, tiny widths), seeded; made on
    the CPU, sampled on ``load_device`` (default the CPU; the benches' --device)."""
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.Flux(dict(TINY_FLUX, **changes))
    model = config.get_model({}, device=torch.device("cpu"))
    _seed_weights(model.diffusion_model, seed, std=0.08)
    model.diffusion_model.float()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device or torch.device("cpu"),
                                            offload_device=torch.device("cpu"))


def flux_conditioning(seed: int = 0, tokens: int = 8, guidance: float = 3.5):
    """CONDITIONING for tiny_flux_model: text tokens, a pooled vector and FluxGuidance's guidance."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, TINY_FLUX["context_in_dim"], generator=gen),
             {"pooled_output": torch.randn(1, TINY_FLUX["vec_in_dim"], generator=gen), "guidance": guidance}]]
