"""MGMICA on a DiT: several identities' residuals, each confined to the image tokens its face owns.

A DiT (Flux) has no cross-attention to patch: an identity adapter such as PuLID-Flux adds, after
chosen blocks, a residual computed from the block's image tokens and the identity's tokens:

    img_t <- img_t + w_i * CA_block(tokens_i, img_t)      for every token t that face i owns

Tokens are positions on the latent's patch grid (Flux: 2x2 latent patches, row-major), so
ownership is ownership.py's owner map at the token grid's size: a token belongs to the face
covering at least half of it, and every face keeps at least one token. Each identity is computed
on its own tokens only (gather -> attend -> scatter-add), so N identities cost about what one
identity over the whole picture costs; a token nobody owns, and every text token, is untouched.
CA_block is a per-token map (layer norm and attention with the token as the query), so computing
it on a subset of tokens gives each token what the whole-image computation would.

This module never imports ComfyUI; the host (nodes/host/dit.py) knows where a block's image
tokens are and which CA a block uses.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .ownership import owner_map, ownership_preview, validate_masks

# cross_attention(identity tokens (1, T, C), image tokens (B, n, D)) -> residual (B, n, D)
CrossAttention = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TokenIdentities:
    """N identities' tokens, their faces' masks (on the FACES image), weights and sigma window."""

    def __init__(self, tokens: torch.Tensor, masks: np.ndarray, weights, sigma_range=(math.inf, 0.0)):
        self.masks = validate_masks(masks)
        if len(tokens) != len(self.masks):
            raise ValueError(f"{len(tokens)} identities' tokens for {len(self.masks)} face masks")
        self.tokens = tokens
        self.weights = [float(w) for w in weights]
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self._owned: dict[tuple[int, int], list[torch.Tensor]] = {}
        self._tokens_on: dict[tuple, torch.Tensor] = {}

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
        """
        dtype = self._compute_dtype(cross_attention, source)
        for i, owned in enumerate(self.owned_tokens(height, width)):
            if self.weights[i] == 0 or len(owned) == 0:
                continue
            owned = owned.to(source.device)
            residual = cross_attention(self._identity_tokens(i, source.device, dtype),
                                       source.index_select(1, owned).to(dtype))
            target.index_add_(1, owned, (self.weights[i] * residual).to(target.dtype))

    def preview(self, height: int, width: int) -> np.ndarray:
        """(H, W, 3): each face's mask dimmed, the tokens it owns on a height x width grid bright."""
        return ownership_preview(self.masks, height, width)

    def _identity_tokens(self, i: int, device, dtype) -> torch.Tensor:
        key = (i, str(device), dtype)
        if key not in self._tokens_on:    # moved once per device and dtype, not at every block
            self._tokens_on[key] = self.tokens[i:i + 1].to(device, dtype)
        return self._tokens_on[key]

    @staticmethod
    def _compute_dtype(cross_attention, source: torch.Tensor) -> torch.dtype:
        """The CA's own weight dtype (the host casts it to the model's, as the reference does)."""
        weight = next(iter(cross_attention.parameters()), None) if hasattr(cross_attention, "parameters") else None
        return source.dtype if weight is None else weight.dtype
