"""MGMICA: mask-guided multi-identity cross-attention, as one attn2 replacement patch.

At every cross-attention layer the text attention runs as usual, then each identity's
image-prompt tokens add a decoupled IP-Adapter residual, confined to the cells its face owns:

    out = Attn(q, K_text, V_text) + sum_j  w_j * M_j(layer) * Attn(q, K_j, V_j)

with K_j = tokens_j W_k^T, V_j = tokens_j W_v^T of the adapter's layer. The ownership masks
M_j (see ownership.py) never overlap, so a cell attends to its owner's tokens only: each
identity's cells, gathered, attend to its tokens alone through the host's attention (one call per
identity over its own cells, as a lone IP-Adapter computes each of them), and the results are
added on those cells. Six identities thus cost about what one does. A row of attention does not
depend on the other rows, so this agrees with a lone IP-Adapter over the whole layer within
float32 rounding (the pack's parity rule: 1e-5 of the largest latent), not necessarily to the
bit. The patch reads as: gather tokens -> attend per identity on its cells -> add.

Each person may also carry their own words (PersonText): CLIP tokens of the model's context
width, projected by the layer's own to_k / to_v. In the cells person i owns, the text attention
becomes attention over [global prompt ; person i's prompt], exactly what ComfyUI computes for
the concatenated conditioning (ConditioningConcat), blended by the person's weight w_i:

    out += w_i * M_i * (Attn(q, [K_text; K_i], [V_text; V_i]) - Attn(q, K_text, V_text))   (cond rows)

so w_i = 1 is the concatenation, 0 is the global prompt alone, and a cell person i does not own
gets exactly nothing. Uncond rows get nothing either: the negative prompt stays as it is.

The patch is a plain callable ``patch(q, k, v, extra_options) -> out`` (ComfyUI's attn2
replacement protocol); this module never imports ComfyUI. Which identity goes to which
face, and building a patch from identities and FACES, is placement.py's job.

Ownership: which identity owns which cell of an attention layer (ownership.py); both words
are in the glossary of docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

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


@dataclass
class PersonText:
    """Every person's own prompt: CLIP tokens of the model's context width, one weight per person.

    ``project(block_key, tokens (1, T, C)) -> (K, V)`` is the layer's own to_k / to_v (the host's
    modules, so LoRA and weight casting apply as to the global prompt).
    """

    tokens: torch.Tensor          # (T, C) all people's prompt tokens, one after the other
    owner: torch.Tensor           # (T,) int64: the person (mask index) each token belongs to
    weights: torch.Tensor         # (P,) per person; 0 for a person without words
    project: Callable
    _placed: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see on()
    _indices: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see tokens_of()

    def subset(self, keep: list[int]) -> "PersonText":
        """Only the people in ``keep`` (renumbered 0..len(keep)-1)."""
        new_index = torch.full((len(self.weights),), -1, dtype=torch.long)
        new_index[torch.as_tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
        kept = new_index[self.owner] >= 0
        return replace(self, tokens=self.tokens[kept], owner=new_index[self.owner][kept],
                       weights=self.weights[keep])

    def on(self, device, dtype) -> torch.Tensor:
        """(1, T, C) tokens on the layer's device and dtype, kept (one tensor per place, so a
        projection may cache what it computed from it)."""
        if (device, dtype) not in self._placed:
            self._placed[(device, dtype)] = self.tokens[None].to(device, dtype)
        return self._placed[(device, dtype)]

    def tokens_of(self, person: int, device) -> torch.Tensor:
        """Indices of ``person``'s tokens, on ``device``; kept (no host-to-device copy at every layer)."""
        if (person, device) not in self._indices:
            self._indices[(person, device)] = torch.nonzero(self.owner == person)[:, 0].to(device)
        return self._indices[(person, device)]

    def speakers(self) -> torch.Tensor:
        """(P,) bool: people with words and a non-zero weight."""
        has_tokens = torch.bincount(self.owner, minlength=len(self.weights)) > 0
        return has_tokens & (self.weights != 0)


class MultiIDAttention:
    """One attn2 replacement serving every person (identity and/or words) on every cross-attention layer.

    ``masks`` holds one mask per person; ``tokens`` one identity per person (None: nobody has one)
    and ``weights`` their identity weights (0 for a person without identity); ``text`` the people's
    own words, if any.
    """

    def __init__(self, tokens: IdentityTokens | None, masks: np.ndarray, weights, layer_of: dict,
                 sigma_range=(math.inf, 0.0), attention=sdpa_attention, previous=None,
                 text: PersonText | None = None):
        self.tokens = tokens
        self.masks = validate_masks(masks) if len(masks) else np.zeros((0, 1, 1), np.float32)
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float32).reshape(-1))
        n_identities = len(self.masks) if tokens is None else len(tokens.cond)
        if not (len(self.masks) == n_identities == len(self.weights)):
            raise ValueError(f"{n_identities} identities need as many masks and weights; got "
                             f"{len(self.masks)} masks and {len(self.weights)} weights")
        if tokens is None and bool((self.weights != 0).any()):
            raise ValueError("identity weights were given but no identity tokens")
        if not torch.isfinite(self.weights).all():
            raise ValueError("identity weights must be finite numbers")
        if text is not None and len(text.weights) != len(self.masks):
            raise ValueError(f"{len(text.weights)} text weights for {len(self.masks)} people")
        if text is not None and not torch.isfinite(text.weights).all():
            raise ValueError("person prompt weights must be finite numbers")
        self.text = text
        self.layer_of = dict(layer_of)            # ComfyUI block key -> adapter layer number
        self.sigma_start, self.sigma_end = sigma_range
        self.attention = attention                # the host's text attention
        self.previous = dict(previous or {})      # patches this one wraps, by block key
        self._owners: dict = {}
        self._kv: dict = {}
        self._rows: dict = {}

    # -- the patch ---------------------------------------------------------------------
    def __call__(self, q, k, v, extra_options):
        key = block_key(extra_options)
        out = self._base(key, q, k, v, extra_options)
        if not self._acts(key, extra_options):
            return out
        for rows, added in self._owned_residuals(q, k, v, extra_options):
            out = out.index_add(1, rows, added)               # owned cells only; the rest untouched
        return out

    def is_inert(self) -> bool:
        """No identity and no words with a non-zero weight: the layer's output, bit for bit."""
        speaks = self.text is not None and bool(self.text.speakers().any())
        return not bool((self.weights != 0).any()) and not speaks

    def residual(self, q: torch.Tensor, extra_options: dict, k=None, v=None) -> torch.Tensor:
        """What the people add to the layer in extra_options, (B, N, width): the identities'
        sum_j w_j M_j Attn(q, K_j, V_j), and with the text keys k, v given, the people's words."""
        out = torch.zeros_like(q)
        for rows, added in self._owned_residuals(q, k, v, extra_options):
            out.index_add_(1, rows, added)                    # ours: added in place, no layer-sized copies
        return out

    def _owned_residuals(self, q, k, v, extra_options):
        """(rows, added) of the identities, then of the words (when k, v are known)."""
        if self.tokens is not None and bool((self.weights != 0).any()):
            yield self._owned_residual(q, extra_options)
        if k is not None and self.text is not None and bool(self.text.speakers().any()):
            yield self._text_residual(q, k, v, extra_options)

    def _owned_residual(self, q: torch.Tensor, extra_options: dict):
        """gather tokens -> attend per identity on its cells: the identities' residual on owned cells (rows).

        Each identity's cells attend to its own tokens through the host's attention, as a lone
        IP-Adapter does (IPAdapter_plus: ``optimized_attention(q, ip_k, ip_v) * weight``), but only
        the cells it owns are computed (see attend_per_owner).
        """
        keys, values = self._gather_tokens(self.layer_of[block_key(extra_options)], q, extra_options)
        owned = self._ownership(layer_size(q, extra_options, self.masks.shape[1:]), q)
        n_tokens, heads = self.tokens.cond.shape[1], extra_options["n_heads"]

        def attend(j, q_j):
            own = slice(j * n_tokens, (j + 1) * n_tokens)
            return self.attention(q_j, keys[:, own], values[:, own], heads, extra_options) * float(self.weights[j])
        return owned.rows, attend_per_owner(q, owned, attend)

    def _text_residual(self, q, k, v, extra_options):
        """w_i (Attn over [global; person i's words] - Attn over global) on cells of speakers, cond rows.

        Person i's cells attend over the global prompt and i's words only (gathered per person, as
        the identities are): the same numbers as one attention over everyone's words with the others
        masked out, at a fraction of the keys. The prompt alone is the same keys for everyone: one
        attention over all the owned cells.
        """
        size = layer_size(q, extra_options, self.masks.shape[1:])
        owned = self._text_cells(size, q)
        _, cond = self._batch_rows(q, extra_options)
        added = q.new_zeros(len(q), len(owned.rows), q.shape[-1])
        if len(cond) == 0 or len(owned.rows) == 0:
            return owned.rows, added
        k_words, v_words = self.text.project(block_key(extra_options), self.text.on(q.device, q.dtype))  # (1, T, width)
        q_cond, k_cond, v_cond = q[cond], k[cond], v[cond]
        heads, batch = extra_options["n_heads"], len(cond)

        def joint(j, q_j):
            mine = self.text.tokens_of(j, q.device)
            return multi_head_attention(q_j, torch.cat([k_cond, k_words[:, mine].to(k.dtype).expand(batch, -1, -1)], 1),
                                        torch.cat([v_cond, v_words[:, mine].to(v.dtype).expand(batch, -1, -1)], 1),
                                        heads) * float(self.text.weights[j])
        alone = multi_head_attention(q_cond[:, owned.rows], k_cond, v_cond, heads)
        added[cond] = attend_per_owner(q_cond, owned, joint) - alone * self._row_weights(size, owned, q)
        return owned.rows, added

    def _row_weights(self, size, owned: "OwnedPositions", q: torch.Tensor) -> torch.Tensor:
        """(M, 1) the text weight of each owned cell's person, in owned.rows order (kept per layer size)."""
        cache_key = ("text weights", size, q.device, q.dtype)
        if cache_key not in self._owners:
            weights = torch.zeros(len(owned.rows), 1)
            for j, members in owned.groups:
                weights[members.cpu()] = float(self.text.weights[j])
            self._owners[cache_key] = weights.to(q.device, q.dtype)
        return self._owners[cache_key]

    # -- the steps -----------------------------------------------------------------------
    def _base(self, key, q, k, v, extra_options):
        """Text attention, or the attn2 patch this one was stacked on."""
        previous = self.previous.get(key) or self.previous.get(key[:2])
        if previous is not None:
            return previous(q, k, v, extra_options)
        return self.attention(q, k, v, extra_options["n_heads"], extra_options)

    def _acts(self, key, extra_options) -> bool:
        """Any identity or words with a weight, a known layer, and the sigma inside [end, start]."""
        if self.is_inert() or key not in self.layer_of:
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
            # F.linear on one identity's tokens at a time, as the references' to_k_ip / to_v_ip Linear
            # layers compute it (a product over all identities at once may round differently)
            def project(tokens, w):
                return torch.cat([F.linear(t[None], w)[0] for t in tokens])      # (N*T, width)

            self._kv[cache_key] = tuple(
                torch.stack([project(self.tokens.cond, w), project(self.tokens.uncond, w)]).to(q.device, q.dtype)
                for w in (self.tokens.to_k[layer], self.tokens.to_v[layer]))    # (2, N*T, width)
        k_all, v_all = self._kv[cache_key]
        is_uncond, _ = self._batch_rows(q, extra_options)
        return k_all[is_uncond], v_all[is_uncond]                        # (B, N*T, width)

    def _batch_rows(self, q: torch.Tensor, extra_options: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """((B,) 0 / 1 per batch row, 1 for uncond; the cond rows' indices), on q's device and kept
        per batch layout, so that a GPU gets no host-to-device copy at every layer."""
        chunks = tuple(extra_options.get("cond_or_uncond") or [0])
        cache_key = (len(q), chunks, q.device)
        if cache_key not in self._rows:
            is_uncond = batch_is_uncond(len(q), extra_options)
            self._rows[cache_key] = (is_uncond.long().to(q.device), torch.nonzero(~is_uncond)[:, 0].to(q.device))
        return self._rows[cache_key]

    def _ownership(self, size: tuple[int, int], q: torch.Tensor) -> "OwnedPositions":
        """Cells of the people with a non-zero identity weight, grouped by owner."""
        return self._cells("identity", size, q, self.weights)

    def _text_cells(self, size: tuple[int, int], q: torch.Tensor) -> "OwnedPositions":
        """Cells of the people with words and a non-zero text weight, grouped by owner."""
        return self._cells("text", size, q, self.text.speakers())

    def _cells(self, what, size, q, acting) -> "OwnedPositions":
        """Owned cells of the acting people (see OwnedPositions), cached per layer size.
        Identities and words share one owner map."""
        cache_key = (what, size, q.device)
        if cache_key not in self._owners:
            owner = torch.from_numpy(owner_map(self.masks, *size).reshape(-1))
            self._owners[cache_key] = OwnedPositions.of(owner, acting != 0).to(q.device)
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
        copy = MultiIDAttention(None if self.tokens is None else self.tokens.subset(keep), masks[keep],
                                self.weights.numpy()[keep], self.layer_of, (self.sigma_start, self.sigma_end),
                                self.attention, previous, None if self.text is None else self.text.subset(keep))
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
                                (self.sigma_start, self.sigma_end), self.attention, previous, self.text)


class OwnedPositions(NamedTuple):
    """Which positions of a layer's query sequence (UNet cells, DiT image tokens: only their
    index matters) belong to an acting person, grouped by person."""

    rows: torch.Tensor        # (M,) owned positions in the flattened sequence, ascending
    groups: list              # [(person j, (M_j,) indices into rows of j's positions)]

    @classmethod
    def of(cls, owner_of_position: torch.Tensor, acting: torch.Tensor) -> "OwnedPositions":
        """From the owner of every position (-1: nobody) and which people act ((P,) bool)."""
        acting = torch.cat([acting.bool(), torch.zeros(1, dtype=torch.bool)])   # index -1: nobody
        rows = torch.nonzero(acting[owner_of_position])[:, 0]
        owner = owner_of_position[rows]
        return cls(rows, [(j, torch.nonzero(owner == j)[:, 0]) for j in torch.unique(owner).tolist()])

    def to(self, device) -> "OwnedPositions":
        return OwnedPositions(self.rows.to(device), [(j, i.to(device)) for j, i in self.groups])


def attend_per_owner(q: torch.Tensor, owned: OwnedPositions, attend) -> torch.Tensor:
    """What each person adds at the positions they own: (B, M, width), rows as owned.rows.

    Person j's positions are gathered and ``attend(j, q_j)`` computes j's contribution there (its
    own keys and values, its weight): the cost is one attention over the owned positions, however
    many people there are. Nothing here knows the layer's layout (cells of a UNet, tokens of a DiT).
    """
    added = q.new_zeros(len(q), len(owned.rows), q.shape[-1])
    for j, members in owned.groups:
        positions = owned.rows[members]
        q_j = q if len(positions) == q.shape[1] else q[:, positions]     # one person owning all: no copy
        added[:, members] = attend(j, q_j)
    return added


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


# How far (relative) a picture's aspect ratio may be from the FACES picture's and still take its
# masks, stretched to fit: SDXL's trained sizes are up to ~3 % off a photo's (1216x832 for a 3:2
# photo), and a 5 % stretch moves a face mask's edge by at most 5 % of the face's size.
ASPECT_TOLERANCE = 0.05


def same_aspect(hw, reference_hw, slack: float = 0.0) -> bool:
    """Whether (h, w) has the aspect ratio of ``reference_hw`` within ASPECT_TOLERANCE, plus
    ``slack`` (an attention layer's sides are rounded to whole cells)."""
    (h, w), (rh, rw) = hw, reference_hw
    return abs(h / w - rh / rw) <= ASPECT_TOLERANCE * (rh / rw) + slack


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
    if len(image_hw) and not same_aspect((h, w), (ih, iw), slack=1.0 / min(h, w)):
        raise ValueError(f"the face masks are {iw}x{ih} but the picture being generated has the "
                         f"aspect ratio of a {w}x{h} layer: generate at the size of the image the "
                         "faces were found in (or an exact multiple of it)")
    return h, w
