"""What a ComfyUI MODEL's UNet looks like to MultiIDApply: its cross-attention layers and sizes."""

from __future__ import annotations

import math

LayerKey = tuple  # ("input" | "middle" | "output", block id, transformer index): ComfyUI's attn2 key


def cross_attention_layers(model) -> list[tuple[LayerKey, int, int]]:
    """(layer key, width, context width) of every cross-attention layer, in diffusers order
    (input blocks, output blocks, middle block) -- the order adapter files number them in."""
    unet = model.model.diffusion_model
    if not all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        raise ValueError(f"MultiIDApply needs an SD1.5 or SDXL UNet; this model is a {type(model.model).__name__}")
    found = []
    for name, blocks in (("input", unet.input_blocks), ("output", unet.output_blocks), ("middle", [unet.middle_block])):
        for block_id, block in enumerate(blocks):
            for module in block:
                for index, tb in enumerate(getattr(module, "transformer_blocks", [])):
                    attn2 = getattr(tb, "attn2", None)
                    if attn2 is not None:
                        found.append(((name, block_id, index), *attn2.to_k.weight.shape))
    if not found:
        raise ValueError("this model has no UNet cross-attention layers: MultiIDApply needs an SD1.5 or SDXL model")
    return found


def coarsest_layer_size(model, height: int, width: int) -> tuple[int, int]:
    """Cells of the middle block for an image of height x width (latent = image / 8)."""
    unet = model.model.diffusion_model
    downsamples = sum(type(m).__name__ == "Downsample" for block in unet.input_blocks for m in block)
    h, w = math.ceil(height / 8), math.ceil(width / 8)
    for _ in range(downsamples):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w
