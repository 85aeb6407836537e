"""MGMICA on a DiT: several identities' residuals, each confined to the image tokens its face owns.

A DiT (Flux) has no cross-attention to patch: an identity adapter such as PuLID-Flux adds, after
chosen blocks, a residual computed from the block's image tokens and the identity's tokens:

    img_t <- img_t + w_i * CA_block(tokens_i, img_t)      for every token t that face i owns

Tokens are positions on the latent's patch grid (Flux: 2x2 latent patches, row-major), so
ownership is ownership.py's owner map at the token grid's size: a token belongs to the face
covering at least half of it, and every face keeps at least one token. Each identity is computed
on its own tokens only, all identities in one CA call (gather the owned tokens -> attend, each token
to its own identity's keys by a mask -> scatter-add), so N identities cost about what one identity
over the whole picture costs; a token nobody owns, and every text token, is untouched. CA_block is
a per-token map (layer norm and attention with the token as the query), so computing it on a
subset of tokens gives each token what the whole-image computation would. The identities' keys
and values depend only on their tokens and the CA's weights: computed once per CA, not per step.

This module never imports ComfyUI; the host (nodes/host/dit.py) knows where a block's image
tokens are and which CA a block uses.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from .ownership import owner_map, ownership_preview, validate_masks


class CrossAttention(Protocol):
    """A block's identity cross-attention (identity/pulid_flux.py's PulidCrossAttention)."""

    def keys_values(self, id_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, T, C) identity tokens -> K, V (N, T, inner)."""

    def attend(self, img: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
        """(B, L, D) image tokens, K / V (1, S, inner), mask (L, S) bool -> residual (B, L, D)."""


class TokenIdentities:
    """N identities' tokens, their faces' masks (on the FACES image), weights and sigma window."""

    def __init__(self, tokens: torch.Tensor, masks: np.ndarray, weights, sigma_range=(math.inf, 0.0)):
        self.masks = validate_masks(masks)
        if len(tokens) != len(self.masks):
            raise ValueError(f"{len(tokens)} identities' tokens for {len(self.masks)} face masks")
        self.tokens = tokens
        self.weights = [float(w) for w in weights]
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.acting = [i for i, w in enumerate(self.weights) if w != 0]    # weight 0: computed nowhere
        self._owned: dict[tuple[int, int], list[torch.Tensor]] = {}
        self._gathers: dict[tuple, _Gather | None] = {}
        self._keys_values: dict[int, tuple] = {}     # id(CA) -> (CA, its weights' stamp, K, V)

    def acts_at(self, sigma: float | None) -> bool:
        start, end = self.sigma_range
        return sigma is None or start >= sigma >= end

    def owned_tokens(self, height: int, width: int) -> list[torch.Tensor]:
        """Per identity, the indices (row-major on a height x width token grid) of the tokens it owns."""
        if (height, width) not in self._owned:
            owner = owner_map(self.masks, height, width).reshape(-1)
            self._owned[(height, width)] = [torch.from_numpy(np.flatnonzero(owner == i)) for i in range(len(self.masks))]
        return self._owned[(height, width)]

    def add_residuals(self, cross_attention: CrossAttention, source: torch.Tensor, target: torch.Tensor,
                      height: int, width: int) -> None:
        """target[:, t] += w_i CA(tokens_i, source[:, t]) for every token t identity i owns.

        source, target: (B, height*width, D) image tokens (the block's output, and where residuals go).
        Every identity in one CA call: the tokens they own gathered together, each attending to its own
        identity's keys among everyone's (a mask), the residuals scattered back.
        """
        gather = self._gather(height, width, source.device)
        if gather is None:
            return
        dtype = cross_attention.to_q.weight.dtype    # the host casts the CA to the model's dtype, as the reference
        keys, values = self._identity_keys_values(cross_attention)
        residual = cross_attention.attend(source.index_select(1, gather.tokens).to(dtype), keys, values, gather.mask)
        target.index_add_(1, gather.tokens, (residual * gather.weight).to(target.dtype))

    def preview(self, height: int, width: int) -> np.ndarray:
        """(H, W, 3): each face's mask dimmed, the tokens it owns on a height x width grid bright."""
        return ownership_preview(self.masks, height, width)

    def _gather(self, height: int, width: int, device) -> "_Gather | None":
        """Which tokens the acting identities own, which keys each may see, their weights; per grid and device."""
        key = (height, width, str(device))
        if key not in self._gathers:
            owned = self.owned_tokens(height, width)
            self._gathers[key] = _Gather.build([owned[i] for i in self.acting],
                                               [self.weights[i] for i in self.acting],
                                               self.tokens.shape[1], device)
        return self._gathers[key]

    def _identity_keys_values(self, cross_attention) -> tuple[torch.Tensor, torch.Tensor]:
        """The acting identities' keys and values at this CA, side by side (1, N*T, inner each).

        They depend only on the identity tokens and the CA's weights, so they are computed once and kept
        while those weights are the same tensors, unwritten, on the same device and dtype (``.to`` on the
        model's patches, a state dict loaded into the CA: recomputed)."""
        stamp = _stamp((cross_attention.norm1.weight, cross_attention.norm1.bias, cross_attention.to_kv.weight))
        kept = self._keys_values.get(id(cross_attention))
        if kept is None or kept[0] is not cross_attention or kept[1] != stamp:
            weight = cross_attention.to_kv.weight
            with torch.no_grad():
                keys, values = cross_attention.keys_values(self.tokens[self.acting].to(weight.device, weight.dtype))
            kept = (cross_attention, stamp, keys.reshape(1, -1, keys.shape[-1]), values.reshape(1, -1, values.shape[-1]))
            self._keys_values[id(cross_attention)] = kept
        return kept[2], kept[3]


class _Gather:
    """The acting identities' tokens on one grid: ``tokens`` (L,) their indices, identity by identity;
    ``mask`` (L, N*T) True where a token may attend (its own identity's T keys; None for one identity);
    ``weight`` each token's identity weight ((L, 1), or one float when all are equal)."""

    def __init__(self, tokens: torch.Tensor, mask: torch.Tensor | None, weight):
        self.tokens, self.mask, self.weight = tokens, mask, weight

    @staticmethod
    def build(owned: list[torch.Tensor], weights: list[float], id_tokens: int, device) -> "_Gather | None":
        counts = torch.tensor([len(o) for o in owned], dtype=torch.long)
        if int(counts.sum()) == 0:
            return None
        tokens = torch.cat(owned).to(device)
        identity = torch.arange(len(owned)).repeat_interleave(counts)        # each gathered token's identity
        mask = None
        if len(owned) > 1:
            key_identity = torch.arange(len(owned)).repeat_interleave(id_tokens)
            mask = (identity[:, None] == key_identity[None, :]).to(device)
        weight = weights[0] if len(set(weights)) == 1 else torch.tensor(weights)[identity][None, :, None].to(device)
        return _Gather(tokens, mask, weight)


def _stamp(tensors) -> tuple:
    """What changes when a weight is moved, cast, replaced or written: storage, dtype, device, version."""
    def version(t):
        try:
            return t._version
        except RuntimeError:          # inference tensors have no version counter (nor can they be written)
            return None
    return tuple((t.data_ptr(), t.dtype, t.device, version(t)) for t in tensors)
