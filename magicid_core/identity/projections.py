"""Token projections of the identity adapters: an identity vector (and, for FaceID Plus, the face's
CLIP vision features) -> T context tokens of width C, written as the reference packs compute them
(IPAdapter_plus's ``image_proj_models.py``, ComfyUI_InstantID's ``resampler.py``), so the tokens agree
with theirs to float32 rounding. Their state-dict keys are the files' ``image_proj`` keys.

- ``FaceIDProjection``: IP-Adapter FaceID's MLP (``MLPProjModelFaceId``).
- ``ResamplerProjection``: InstantID's / FaceID portrait-unnorm's perceiver Resampler.
- ``FaceIDPlusProjection``: FaceID Plus / Plus v2 (``ProjModelFaceIdPlus``): the FaceID MLP's tokens
  refined by perceiver attention over the CLIP hidden states (``FacePerceiver``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FaceIDProjection(nn.Module):
    """IP-Adapter FaceID: tokens = LayerNorm(reshape(W2 GELU(W1 e + b1) + b2, (T, C)))."""

    def __init__(self, embedding_dim: int, hidden: int, context_dim: int, tokens: int):
        super().__init__()
        self.embedding_dim, self.context_dim, self.tokens = embedding_dim, context_dim, tokens
        self.proj = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.GELU(),
                                  nn.Linear(hidden, context_dim * tokens))
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.proj(embedding).reshape(-1, self.tokens, self.context_dim)
        return self.norm(x)


class PerceiverAttention(nn.Module):
    """Latents attend to [features; latents] (the perceiver step of the Resampler)."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_kv = nn.Linear(dim, dim_head * heads * 2, bias=False)
        self.to_out = nn.Linear(dim_head * heads, dim, bias=False)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        features, latents = self.norm1(features), self.norm2(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([features, latents], dim=1)).chunk(2, dim=-1)
        return self.to_out(perceiver_attention(q, k, v, self.heads))


def perceiver_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax((q s)(k s)^T) v with s = d^-1/4, on (B, N, heads*d) tensors, in the order the reference
    Resamplers (IPAdapter_plus, ComfyUI_InstantID) compute it, so the tokens equal theirs bit for bit."""
    def split(t):   # (B, N, heads*d) -> contiguous (B, heads, N, d)
        return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2).reshape(t.shape[0], heads, t.shape[1], -1)

    q, k, v = split(q), split(k), split(v)
    s = 1 / math.sqrt(math.sqrt(q.shape[-1]))
    weight = (q * s) @ (k * s).transpose(-2, -1)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return (weight @ v).permute(0, 2, 1, 3).reshape(q.shape[0], q.shape[2], -1)


def perceiver_layers(dim: int, dim_head: int, heads: int, ff_hidden: int, depth: int) -> nn.ModuleList:
    """``depth`` pairs (perceiver attention, feed-forward LayerNorm -> Linear -> GELU -> Linear), the
    reference Resamplers' ``layers`` (their state-dict keys ``layers.{i}.0.*`` / ``layers.{i}.1.*``)."""
    return nn.ModuleList(
        nn.ModuleList([PerceiverAttention(dim, dim_head, heads),
                       nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ff_hidden, bias=False),
                                     nn.GELU(), nn.Linear(ff_hidden, dim, bias=False))])
        for _ in range(depth))


class ResamplerProjection(nn.Module):
    """InstantID: learned latents refined by perceiver attention over the projected embedding."""

    def __init__(self, embedding_dim: int, dim: int, context_dim: int, tokens: int,
                 depth: int, heads: int, ff_hidden: int, dim_head: int = 64):
        super().__init__()
        self.embedding_dim, self.context_dim, self.tokens = embedding_dim, context_dim, tokens
        self.latents = nn.Parameter(torch.zeros(1, tokens, dim))
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, context_dim)
        self.norm_out = nn.LayerNorm(context_dim)
        self.layers = perceiver_layers(dim, dim_head, heads, ff_hidden, depth)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        features = self.proj_in(embedding.reshape(len(embedding), -1, embedding.shape[-1]))
        latents = self.latents.expand(len(embedding), -1, -1)
        for attention, feed_forward in self.layers:
            latents = latents + attention(features, latents)
            latents = latents + feed_forward(latents)
        return self.norm_out(self.proj_out(latents))


class FacePerceiver(nn.Module):
    """IPAdapter_plus's ``FacePerceiverResampler``: given tokens attend to [CLIP features; tokens]."""

    def __init__(self, clip_dim: int, dim: int, depth: int, heads: int, ff_hidden: int, dim_head: int = 64):
        super().__init__()
        self.proj_in = nn.Linear(clip_dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.layers = perceiver_layers(dim, dim_head, heads, ff_hidden, depth)

    def forward(self, latents: torch.Tensor, clip_features: torch.Tensor) -> torch.Tensor:
        features = self.proj_in(clip_features)
        for attention, feed_forward in self.layers:
            latents = attention(features, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))


class FaceIDPlusProjection(FaceIDProjection):
    """IP-Adapter FaceID Plus / Plus v2 (``ProjModelFaceIdPlus``):

    1. x = FaceID MLP tokens of the ArcFace vector e                        (T, C)
    2. out = FacePerceiver(x, CLIP penultimate hidden states of the face crop)
    3. Plus: tokens = out; Plus v2 (``shortcut``): tokens = x + s * out, s = weight_faceidv2.
    """

    def __init__(self, embedding_dim: int, hidden: int, context_dim: int, tokens: int,
                 clip_dim: int, depth: int, heads: int, ff_hidden: int):
        super().__init__(embedding_dim, hidden, context_dim, tokens)
        self.clip_dim = clip_dim
        self.perceiver_resampler = FacePerceiver(clip_dim, context_dim, depth, heads, ff_hidden)

    def forward(self, embedding: torch.Tensor, clip_features: torch.Tensor, scale: float = 1.0,
                shortcut: bool = False) -> torch.Tensor:
        x = super().forward(embedding)
        out = self.perceiver_resampler(x, clip_features)
        return x + scale * out if shortcut else out


def faceid_plus_from(sd: dict) -> FaceIDPlusProjection:
    """Read a ``ProjModelFaceIdPlus`` state dict's sizes from its weights (64-wide heads, as the file's)."""
    e, hidden = sd["proj.0.weight"].shape[1], sd["proj.0.weight"].shape[0]
    context_dim = sd["norm.weight"].shape[0]
    p = "perceiver_resampler."
    depth = len({k.split(".")[2] for k in sd if k.startswith(p + "layers.")})
    return FaceIDPlusProjection(embedding_dim=e, hidden=hidden, context_dim=context_dim,
                                tokens=sd["proj.2.weight"].shape[0] // context_dim,
                                clip_dim=sd[p + "proj_in.weight"].shape[1], depth=depth,
                                heads=sd[p + "layers.0.0.to_q.weight"].shape[0] // 64,
                                ff_hidden=sd[p + "layers.0.1.1.weight"].shape[0])
