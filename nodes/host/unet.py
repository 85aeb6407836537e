"""What a ComfyUI MODEL's UNet looks like to MultiIDApply: its cross-attention layers and sizes."""

from __future__ import annotations

import math
import weakref

LayerKey = tuple  # ("input" | "middle" | "output", block id, transformer index): ComfyUI's attn2 key


def cross_attention_layers(model) -> list[tuple[LayerKey, int, int]]:
    """(layer key, width, context width) of every cross-attention layer, in diffusers order
    (input blocks, output blocks, middle block) -- the order adapter files number them in."""
    found = [(key, *attn2.to_k.weight.shape) for key, attn2 in attn2_modules(model)]
    if not found:
        raise ValueError("this model has no UNet cross-attention layers: MultiIDApply needs an SD1.5 or SDXL model")
    return found


def attn2_modules(model):
    """(layer key, attn2 module) of every cross-attention layer, in diffusers order."""
    unet = model.model.diffusion_model
    if not all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        raise ValueError(f"MultiIDApply needs an SD1.5 or SDXL UNet; this model is a {type(model.model).__name__}")
    for name, blocks in (("input", unet.input_blocks), ("output", unet.output_blocks), ("middle", [unet.middle_block])):
        for block_id, block in enumerate(blocks):
            for module in block:
                for index, tb in enumerate(getattr(module, "transformer_blocks", [])):
                    attn2 = getattr(tb, "attn2", None)
                    if attn2 is not None:
                        yield (name, block_id, index), attn2


class UNetTextProjection:
    """Each layer's own to_k / to_v applied to a person's words (``project`` of the core's PersonText).

    The modules are called, not their weights copied, so whatever ComfyUI does to the prompt's
    keys (weight casting, LoRA patches, low-VRAM loading) happens to the words too. The result is
    kept per layer while the words and both weights are the same tensors, unchanged (a LoRA patched
    in or out replaces a weight or writes into it): projecting SDXL's 2048-wide words at every
    layer and step would cost a few percent of the step. Weights that ComfyUI patches at call time
    (low-VRAM ``weight_function``) are projected at every call.
    """

    def __init__(self, model):
        self.modules = dict(attn2_modules(model))
        self._kept: dict = {}        # layer key -> (references to the inputs, (K, V))

    def __call__(self, key, tokens):
        attn2 = self.modules[key]
        inputs = (tokens, attn2.to_k.weight, attn2.to_v.weight)
        kept = self._kept.get(key)
        if kept is not None and kept[0] == _references(inputs):
            return kept[1]
        projected = attn2.to_k(tokens), attn2.to_v(tokens)
        references = _references(inputs)
        if references is not None and not _patched_at_call(attn2.to_k) and not _patched_at_call(attn2.to_v):
            self._kept[key] = (references, projected)
        return projected


def _references(tensors) -> tuple | None:
    """(id, version) of each tensor, with a weak reference keeping the id meaningful: equal only while
    the same tensors are alive and unwritten. None for tensors without a version counter (inference tensors)."""
    try:
        return tuple((_Alive(t), t._version) for t in tensors)
    except RuntimeError:
        return None


class _Alive:
    """Equal to another _Alive of the same, still living tensor."""

    def __init__(self, tensor):
        self.ref = weakref.ref(tensor)

    def __eq__(self, other):
        mine = self.ref()
        return mine is not None and mine is other.ref()


def _patched_at_call(module) -> bool:
    return bool(getattr(module, "weight_function", None)) or bool(getattr(module, "bias_function", None))


def coarsest_layer_size(model, height: int, width: int) -> tuple[int, int]:
    """Cells of the middle block for an image of height x width (latent = image / 8)."""
    unet = model.model.diffusion_model
    downsamples = sum(type(m).__name__ == "Downsample" for block in unet.input_blocks for m in block)
    h, w = math.ceil(height / 8), math.ceil(width / 8)
    for _ in range(downsamples):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w
