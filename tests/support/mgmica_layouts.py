"""Adapter state dicts with the real key layout of each format, seeded, built in memory.

Also the attention inputs (q, k, v, extra_options) of one such layer. Nothing is downloaded: the shapes follow the published files (IP-Adapter FaceID SD1.5 /
SDXL, InstantID's ip-adapter.bin), shrunk where a test does not need the full size.
"""

from __future__ import annotations

import torch

# Cross-attention layer widths in diffusers order (down blocks, up blocks, mid block).
SD15_WIDTHS = [320, 320, 640, 640, 1280, 1280] + [1280] * 3 + [640] * 3 + [320] * 3 + [1280]
SDXL_WIDTHS = [640] * 4 + [1280] * 20 + [1280] * 30 + [640] * 6 + [1280] * 10


def _randn(gen, *shape, std=0.05):
    return torch.randn(*shape, generator=gen) * std


def ip_layers(gen, widths, context_dim, with_lora=False) -> dict:
    """{n}.to_k_ip.weight / {n}.to_v_ip.weight for n = 1, 3, ...; FaceID's LoRA keys optional.

    Layer i reads rows i .. i+width of one random matrix: distinct weights per layer while
    SDXL's 70 layers share one storage (torch.save writes it once).
    """
    out = {}
    base_k, base_v = (_randn(gen, max(widths) + len(widths), context_dim) for _ in range(2))
    for i, width in enumerate(widths):
        n = 2 * i + 1
        out[f"{n}.to_k_ip.weight"] = base_k[i:i + width]
        out[f"{n}.to_v_ip.weight"] = base_v[i:i + width]
        if with_lora:  # FaceID files carry the LoRA of self- and cross-attention processors
            for m in (n - 1, n):
                out[f"{m}.to_q_lora.down.weight"] = _randn(gen, 8, width)
                out[f"{m}.to_q_lora.up.weight"] = _randn(gen, width, 8)
    return out


def faceid_state_dict(widths=SD15_WIDTHS, context_dim=768, tokens=4, seed=0) -> dict:
    """ip-adapter-faceid_sd15.bin layout: MLP 512 -> 1024 -> tokens*C, LayerNorm(C)."""
    gen = torch.Generator().manual_seed(seed)
    image_proj = {
        "proj.0.weight": _randn(gen, 1024, 512), "proj.0.bias": _randn(gen, 1024),
        "proj.2.weight": _randn(gen, context_dim * tokens, 1024), "proj.2.bias": _randn(gen, context_dim * tokens),
        "norm.weight": 1 + _randn(gen, context_dim), "norm.bias": _randn(gen, context_dim),
    }
    return {"image_proj": image_proj, "ip_adapter": ip_layers(gen, widths, context_dim, with_lora=True)}


def instantid_state_dict(widths=SDXL_WIDTHS, context_dim=2048, dim=1280, tokens=16, depth=4,
                         heads=20, ff_mult=4, seed=0) -> dict:
    """InstantID ip-adapter.bin layout: perceiver Resampler (64-wide heads) + to_k_ip/to_v_ip."""
    gen = torch.Generator().manual_seed(seed)
    inner = heads * 64
    image_proj = {
        "latents": _randn(gen, 1, tokens, dim, std=dim ** -0.5),
        "proj_in.weight": _randn(gen, dim, 512), "proj_in.bias": _randn(gen, dim),
        "proj_out.weight": _randn(gen, context_dim, dim), "proj_out.bias": _randn(gen, context_dim),
        "norm_out.weight": 1 + _randn(gen, context_dim), "norm_out.bias": _randn(gen, context_dim),
    }
    for i in range(depth):
        p = f"layers.{i}."
        image_proj.update({
            p + "0.norm1.weight": 1 + _randn(gen, dim), p + "0.norm1.bias": _randn(gen, dim),
            p + "0.norm2.weight": 1 + _randn(gen, dim), p + "0.norm2.bias": _randn(gen, dim),
            p + "0.to_q.weight": _randn(gen, inner, dim), p + "0.to_kv.weight": _randn(gen, 2 * inner, dim),
            p + "0.to_out.weight": _randn(gen, dim, inner),
            p + "1.0.weight": 1 + _randn(gen, dim), p + "1.0.bias": _randn(gen, dim),
            p + "1.1.weight": _randn(gen, dim * ff_mult, dim), p + "1.3.weight": _randn(gen, dim, dim * ff_mult),
        })
    return {"image_proj": image_proj, "ip_adapter": ip_layers(gen, widths, context_dim)}


def flatten(state: dict) -> dict:
    """The .safetensors layout: one flat dict with image_proj. / ip_adapter. prefixes."""
    return {f"{group}.{k}": v.clone() for group, sd in state.items() for k, v in sd.items()}


# A cross-attention block key as ComfyUI passes it: (block name, block id, transformer index).
KEY = ("input", 1, 0)


def attention_inputs(cells, width, heads, context=768, batch=2, seed=1):
    """q from hidden states through a real to_q projection; k, v from 77 text tokens."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, cells * cells, width, generator=g)
    text = torch.randn(batch, 77, context, generator=g)
    # seeded like torch.nn.Linear's default init (uniform, bound 1/sqrt(fan_in)), not from the global RNG,
    # so the inputs do not depend on which tests ran before
    to_q, to_k, to_v = ((torch.rand(width, i, generator=g) * 2 - 1) * i ** -0.5 for i in (width, context, context))
    q, k, v = hidden @ to_q.T, text @ to_k.T, text @ to_v.T
    options = {"block": KEY[:2], "block_index": 0, "n_heads": heads, "cond_or_uncond": [1, 0],
               "activations_shape": [batch, width, cells, cells], "sigmas": torch.tensor([5.0] * batch)}
    return q, k, v, options
