"""Person words on a DiT: each person's own prompt inside one joint attention (Flux).

A DiT has no cross-attention: text and image tokens attend to each other in one attention per
block. The people's words are extra text tokens placed before the main prompt's (Flux gives every
text token the same position, so the order of text tokens changes nothing),

    sequence = [words of person 1 ; ... ; words of person n ; main prompt (T0) ; image tokens]

and the attention is masked so that a person's words and the image tokens of everyone else do not
attend to each other:

    query \\ key        main   words_i          image token t
    main prompt         yes    log w_i          yes
    words_i             yes    own words only   t owned by i
    image t of i        yes    log w_i          yes
    other image t       yes    no               yes

(log w_i: the words' weight as an additive logit; 1 = as if the prompts were concatenated, 0 = no
effect.) With one person owning every image token this is plain concatenation of the prompts.
An image token nobody owns never sees a word, and its row is computed by the very attention call
the model makes without words (``split_rows``), so at every block its output is the same to the bit.

Ownership is ownership.py's owner map at the token grid: a token belongs to the face covering at
least half of it, and every face keeps at least one token. Nothing here imports ComfyUI; the
host (nodes/host/dit_words.py) puts the words into the text and runs the attention in two calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .ownership import crop_and_resize, owner_map, ownership_preview, validate_masks


class TokenWords:
    """N people's words (one (T_i, C) tensor each), their faces' masks (on the FACES image) and weights."""

    def __init__(self, words: list[torch.Tensor], masks: np.ndarray, weights):
        self.masks = validate_masks(masks)
        if len(words) != len(self.masks):
            raise ValueError(f"{len(words)} people's words for {len(self.masks)} face masks")
        self.words = [w.float() for w in words]
        self.weights = [float(w) for w in weights]
        self._layouts: dict[tuple, "JointLayout"] = {}

    @property
    def width(self) -> int:
        return self.words[0].shape[-1]

    def tokens(self) -> torch.Tensor:
        """(W, C): every person's words one after the other, as they precede the main prompt."""
        return torch.cat(self.words)

    def layout(self, main: int, height: int, width: int, extra_image: int = 0) -> "JointLayout":
        """Where everything sits in the joint sequence, and the mask, for a main prompt of ``main``
        tokens and a height x width token grid (+ ``extra_image`` reference tokens nobody owns)."""
        key = (main, height, width, extra_image)
        if key not in self._layouts:
            owner = owner_map(self.masks, height, width).reshape(-1)
            owned = [torch.from_numpy(np.flatnonzero(owner == i)) for i in range(len(self.words))]
            self._layouts[key] = JointLayout.build(main, [len(w) for w in self.words], owned,
                                                   height * width + extra_image, self.weights)
        return self._layouts[key]

    def cropped(self, box_xyxy, out_hw: tuple[int, int]) -> "TokenWords | None":
        """The same words on a zoomed crop: masks cut to box (FACES pixels), resized to out_hw.
        People whose face lies outside the box are dropped; None when nobody is left."""
        masks = crop_and_resize(self.masks, box_xyxy, out_hw)
        keep = [i for i, m in enumerate(masks) if (m > 0).any()]
        if not keep:
            return None
        return TokenWords([self.words[i] for i in keep], masks[keep], [self.weights[i] for i in keep])

    def preview(self, height: int, width: int) -> np.ndarray:
        return ownership_preview(self.masks, height, width)


@dataclass
class JointLayout:
    """The joint sequence [words ; main ; image] of one model call, and its two attention calls.

    The words come first: every text token of Flux has RoPE position zero, so their place among the
    text tokens changes nothing, and the call without words, [main ; image], is one slice of the
    sequence (views of q, k, v: no copies). ``special``: the rows that see words (words, main prompt,
    owned image tokens), attending to every key under ``bias`` (len(special), L), an additive mask
    (0, log w, or -inf).
    """

    words: int
    main: int
    length: int
    special: torch.Tensor
    bias: torch.Tensor

    def __post_init__(self):
        self._on: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}    # (device, dtype) -> (special, bias)

    @staticmethod
    def build(main: int, lengths: list[int], owned: list[torch.Tensor], image: int, weights) -> "JointLayout":
        words = sum(lengths)
        length = words + main + image
        first_image = words + main
        word_of = torch.arange(len(lengths)).repeat_interleave(torch.tensor(lengths))   # person of each word token
        image_of = torch.full((image,), -1, dtype=torch.long)           # person owning each image token
        for i, tokens in enumerate(owned):
            image_of[tokens] = i
        owned_rows = torch.cat(owned).sort().values + first_image
        special = torch.cat([torch.arange(first_image), owned_rows])
        # the person of each special row: i for words_i and image tokens of i, -1 for the main prompt
        row_person = torch.cat([word_of, torch.full((main,), -1, dtype=torch.long), image_of[owned_rows - first_image]])
        is_word_row = torch.zeros(len(special), dtype=torch.bool)
        is_word_row[:words] = True

        log_w = torch.tensor([math.log(w) if w > 0 else -math.inf for w in weights])
        bias = torch.zeros(len(special), length)
        # word columns: a word row sees its own person's words only; other rows see every word at log w
        same = row_person[:, None] == word_of[None, :]
        bias[:, :words] = torch.where(is_word_row[:, None], torch.where(same, 0.0, -math.inf), log_w[word_of][None, :])
        # image columns: a word row sees its own person's image tokens only
        image_cols = bias[:, first_image:]
        image_cols[is_word_row] = torch.where(row_person[is_word_row][:, None] == image_of[None, :], 0.0, -math.inf)
        return JointLayout(words, main, length, special, bias)

    def attend(self, attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, acting):
        """The joint attention of [words ; main ; image] tokens, q/k/v (B, heads, L, d) -> (B, L, heads*d).

        ``attention(q, k, v, bias)`` is the host's (bias None: unmasked). Two calls: the rows and keys
        without words exactly as the model computes them without words, then the rows that see words
        over every key. ``acting``: the batch rows whose words act (``slice(None)``: all, a (n,) index,
        None: none); the others (uncond) keep the first call's rows, so their words act nowhere.
        """
        words, first_image = self.words, self.words + self.main
        rows_plain = attention(q[:, :, words:], k[:, :, words:], v[:, :, words:], None)
        if acting is None:                                    # the words' own rows: nobody reads them
            return torch.cat([rows_plain.new_zeros(len(q), words, rows_plain.shape[2]), rows_plain], dim=1)
        special, bias = self._on_device(q.device, q.dtype)
        if not isinstance(acting, slice):
            acting = acting.to(q.device)                      # indexes with ``special`` below: one device
        q_act, k_act, v_act = (q, k, v) if isinstance(acting, slice) else (q[acting], k[acting], v[acting])
        rows_special = attention(q_act.index_select(2, special), k_act, v_act, bias.expand(q_act.shape[0], 1, -1, -1))
        owned = special[first_image:]
        if isinstance(acting, slice):
            out = torch.cat([rows_special[:, :first_image], rows_plain[:, self.main:]], dim=1)
            return out.index_copy_(1, owned, rows_special[:, first_image:])
        out = torch.cat([rows_plain.new_zeros(len(q), words, rows_plain.shape[2]), rows_plain], dim=1)
        out[acting, :first_image] = rows_special[:, :first_image]
        out[acting[:, None], owned[None, :]] = rows_special[:, first_image:]
        return out

    def _on_device(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``special`` and ``bias`` (1, 1, S, L) on the call's device and dtype, moved once."""
        key = (str(device), dtype)
        if key not in self._on:
            self._on[key] = (self.special.to(device), self.bias.to(device, dtype)[None, None])
        return self._on[key]


def words_patch(prompts, image_faces, identity_faces: list[int] | None, context_dim: int) -> TokenWords | None:
    """PersonPrompt list -> TokenWords on the faces they go to (placement.prompt_faces' rules: a prompt
    follows the identity at its position, or names its face). None = no words on any face."""
    from .placement import face_mask, prompt_faces    # placement imports this package's token modules

    if prompts and not image_faces.faces:
        raise ValueError("no faces found to give the person prompts to: check FaceDetectMasks' image")
    faces = prompt_faces(list(prompts), identity_faces, len(image_faces.faces), context_dim)
    placed = [(f, p) for f, p in zip(faces, prompts) if f >= 0 and float(p.weight) > 0]
    if not placed:
        return None
    masks = np.stack([face_mask(image_faces.faces[f], image_faces.height, image_faces.width) for f, _ in placed])
    return TokenWords([p.tokens for _, p in placed], masks, [p.weight for _, p in placed])
