"""MGMICA: mask-guided multi-identity cross-attention, as one attn2 replacement patch.

At every cross-attention layer the text attention runs as usual, then each identity's
image-prompt tokens add a decoupled IP-Adapter residual, confined to the cells its face owns:

    out = Attn(q, K_text, V_text) + sum_j  w_j * M_j(layer) * Attn(q, K_j, V_j)

with K_j = tokens_j W_k^T, V_j = tokens_j W_v^T of the adapter's layer. The ownership masks
M_j (see ownership.py) never overlap, so a cell attends to its owner's tokens only: all
identities are attended in one batched call, a cell's softmax restricted to its owner's
tokens by a boolean attention mask, computed only on owned cells. The patch reads
as: gather tokens -> attend per identity -> mask -> add.

The patch is a plain callable ``patch(q, k, v, extra_options) -> out`` (ComfyUI's attn2
replacement protocol); this module never imports ComfyUI. Which identity goes to which
face, and building a patch from identities and FACES, is placement.py's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..identity.adapters import multi_head_attention
from .ownership import crop_and_resize, owner_map, ownership_preview, validate_masks

LayerKey = tuple  # ("input" | "middle" | "output", block id, transformer index)


def sdpa_attention(q, k, v, heads, extra_options=None):
    """Plain multi-head attention on (B, N, heads*d) tensors (the default text attention)."""
    return multi_head_attention(q, k, v, heads)


@dataclass
class IdentityTokens:
    """The identities' adapter tokens and the per-layer projections that turn them into K, V."""

    cond: torch.Tensor            # (N, T, C) identity tokens
    uncond: torch.Tensor          # (N, T, C) the adapter's "no identity" tokens
    to_k: list[torch.Tensor]      # per adapter layer (width, C)
    to_v: list[torch.Tensor]

    def subset(self, keep: list[int]) -> "IdentityTokens":
        return replace(self, cond=self.cond[keep], uncond=self.uncond[keep])


class MultiIDAttention:
    """One attn2 replacement serving every identity on every cross-attention layer."""

    def __init__(self, tokens: IdentityTokens, masks: np.ndarray, weights, layer_of: dict,
                 sigma_range=(math.inf, 0.0), attention=sdpa_attention, previous=None):
        self.tokens = tokens
        self.masks = validate_masks(masks) if len(masks) else np.zeros((0, 1, 1), np.float32)
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float32).reshape(-1))
        if not (len(self.masks) == len(tokens.cond) == len(self.weights)):
            raise ValueError(f"{len(tokens.cond)} identities need as many masks and weights; got "
                             f"{len(self.masks)} masks and {len(self.weights)} weights")
        if not torch.isfinite(self.weights).all():
            raise ValueError("identity weights must be finite numbers")
        self.layer_of = dict(layer_of)            # ComfyUI block key -> adapter layer number
        self.sigma_start, self.sigma_end = sigma_range
        self.attention = attention                # the host's text attention
        self.previous = dict(previous or {})      # patches this one wraps, by block key
        self._owners: dict = {}
        self._kv: dict = {}

    # -- the patch ---------------------------------------------------------------------
    def __call__(self, q, k, v, extra_options):
        key = block_key(extra_options)
        out = self._base(key, q, k, v, extra_options)
        if not self._acts(key, extra_options):
            return out
        rows, added = self._owned_residual(q, extra_options)
        return out.index_add(1, rows, added)                  # owned cells only; the rest untouched

    def residual(self, q: torch.Tensor, extra_options: dict) -> torch.Tensor:
        """sum_j w_j M_j Attn(q, K_j, V_j) for the layer in extra_options, (B, N, width)."""
        rows, added = self._owned_residual(q, extra_options)
        return torch.zeros_like(q).index_add(1, rows, added)

    def _owned_residual(self, q: torch.Tensor, extra_options: dict):
        """gather tokens -> attend per identity -> mask: the residual on owned cells (rows)."""
        keys, values = self._gather_tokens(self.layer_of[block_key(extra_options)], q, extra_options)
        rows, allowed, scale = self._ownership(layer_size(q, extra_options, self.masks.shape[1:]), q)
        attended = _attend(q[:, rows], keys, values, allowed, extra_options["n_heads"])
        return rows, attended * scale[:, None]

    # -- the steps -----------------------------------------------------------------------
    def _base(self, key, q, k, v, extra_options):
        """Text attention, or the attn2 patch this one was stacked on."""
        previous = self.previous.get(key) or self.previous.get(key[:2])
        if previous is not None:
            return previous(q, k, v, extra_options)
        return self.attention(q, k, v, extra_options["n_heads"], extra_options)

    def _acts(self, key, extra_options) -> bool:
        """Any identity with a weight, a known layer, and the sigma inside [end, start]."""
        if len(self.weights) == 0 or not bool((self.weights != 0).any()) or key not in self.layer_of:
            return False
        sigmas = extra_options.get("sigmas")
        if sigmas is None:
            return True
        sigma = float(sigmas.detach().flatten()[0])
        return self.sigma_end <= sigma <= self.sigma_start

    def _gather_tokens(self, layer: int, q: torch.Tensor, extra_options: dict):
        """Every identity's K, V for each batch row: cond tokens, or "no identity" ones for uncond."""
        cache_key = (layer, q.device, q.dtype)
        if cache_key not in self._kv:
            tokens = torch.stack([self.tokens.cond, self.tokens.uncond]).flatten(1, 2)  # (2, N*T, C)
            self._kv[cache_key] = tuple(
                (tokens @ w.T).to(q.device, q.dtype) for w in (self.tokens.to_k[layer], self.tokens.to_v[layer]))
        k_all, v_all = self._kv[cache_key]
        is_uncond = batch_is_uncond(len(q), extra_options).to(q.device)
        return k_all[is_uncond.long()], v_all[is_uncond.long()]            # (B, N*T, width)

    def _ownership(self, size: tuple[int, int], q: torch.Tensor):
        """Owned cell indices, which tokens each may see, and its owner's weight (cached per size)."""
        cache_key = (size, q.device, q.dtype)
        if cache_key not in self._owners:
            owner = torch.from_numpy(owner_map(self.masks, *size).reshape(-1))
            rows = torch.nonzero(owner >= 0)[:, 0]
            n_tokens = self.tokens.cond.shape[1]
            token_owner = torch.arange(len(self.masks)).repeat_interleave(n_tokens)
            allowed = owner[rows][:, None] == token_owner[None, :]             # (M, N*T)
            scale = self.weights[owner[rows]]
            self._owners[cache_key] = (rows.to(q.device), allowed.to(q.device), scale.to(q.device, q.dtype))
        return self._owners[cache_key]

    # -- derived patches -------------------------------------------------------------------
    def cropped(self, box_xyxy, out_hw: tuple[int, int], _done=None) -> "MultiIDAttention":
        """A copy for a zoomed crop: masks cut to box (image pixels) and resized to out_hw.

        Identities whose face lies outside the box are dropped (they act nowhere in the crop);
        stacked MultiIDAttention patches underneath are cropped the same way.
        """
        _done = {} if _done is None else _done
        if id(self) in _done:
            return _done[id(self)]
        masks = crop_and_resize(self.masks, box_xyxy, out_hw) if len(self.masks) else self.masks
        keep = [i for i, m in enumerate(masks) if (m > 0).any()]
        previous = {key: (p.cropped(box_xyxy, out_hw, _done) if callable(getattr(p, "cropped", None)) else p)
                    for key, p in self.previous.items()}
        copy = MultiIDAttention(self.tokens.subset(keep), masks[keep], self.weights.numpy()[keep],
                                self.layer_of, (self.sigma_start, self.sigma_end), self.attention, previous)
        _done[id(self)] = copy
        return copy

    def preview(self, height: int, width: int) -> np.ndarray:
        """(H, W, 3) picture of who owns which cell at a height x width layer (see ownership.py)."""
        if len(self.masks) == 0:
            return np.zeros((1, 1, 3), np.float32)
        return ownership_preview(self.masks, height, width)

    def stacked_on(self, previous: dict) -> "MultiIDAttention":
        """The same patch wrapping other attn2 patches (by block key)."""
        return MultiIDAttention(self.tokens, self.masks, self.weights.numpy(), self.layer_of,
                                (self.sigma_start, self.sigma_end), self.attention, previous)


def _attend(q, keys, values, allowed, heads):
    """Attention of owned cells over all identities' tokens, each cell seeing its owner's only."""
    return multi_head_attention(q, keys, values, heads, attn_mask=allowed)


def block_key(extra_options: dict) -> LayerKey:
    """ComfyUI's key of the running transformer block: (name, block id, transformer index)."""
    block = extra_options.get("block")
    if block is None:
        raise ValueError("MultiIDApply's attention patch ran outside a UNet block (no 'block' given)")
    return (block[0], block[1], extra_options.get("block_index", 0))


def batch_is_uncond(batch: int, extra_options: dict) -> torch.Tensor:
    """(B,) bool: which rows are the unconditional branch (ComfyUI: cond 0, uncond 1 per chunk)."""
    chunks = extra_options.get("cond_or_uncond") or [0]
    per_chunk = max(batch // len(chunks), 1)
    flags = torch.tensor([c == 1 for c in chunks]).repeat_interleave(per_chunk)
    if len(flags) != batch:
        raise ValueError(f"batch of {batch} does not split into {len(chunks)} cond/uncond chunks")
    return flags


def layer_size(q: torch.Tensor, extra_options: dict, image_hw) -> tuple[int, int]:
    """(h, w) of the current layer; checks it has the picture's aspect ratio."""
    shape = extra_options.get("activations_shape")
    if shape is not None:
        h, w = int(shape[-2]), int(shape[-1])
    else:  # older hosts: infer from the latent and the number of queries
        lh, lw = extra_options["original_shape"][-2:]
        factor = math.sqrt(lh * lw / q.shape[1])
        h, w = math.ceil(lh / factor), math.ceil(lw / factor)
    if h * w != q.shape[1]:
        raise ValueError(f"attention layer of {q.shape[1]} queries is not {h}x{w}")
    ih, iw = image_hw
    if len(image_hw) and abs(h / w - ih / iw) > 0.05 * (ih / iw) + 1.0 / min(h, w):
        raise ValueError(f"the face masks are {iw}x{ih} but the picture being generated has the "
                         f"aspect ratio of a {w}x{h} layer: generate at the size of the image the "
                         "faces were found in (or an exact multiple of it)")
    return h, w
