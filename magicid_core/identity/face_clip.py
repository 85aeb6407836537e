"""The face's CLIP vision features that IP-Adapter FaceID Plus / Plus v2 read next to the ArcFace vector.

Made as IPAdapter_plus makes them in ``ipadapter_execute`` (its FaceID branch):
1. the image as ``tensor_to_image`` turns it into pixels: x * 255, clamped, truncated to uint8;
2. insightface's ``norm_crop`` on the face's 5 keypoints: 224 px for SD1.5 adapters, 256 px for SDXL
   ones (``align_face``, the same crop to the bit);
3. CLIP vision's penultimate hidden states of the crop (ComfyUI's ``clip_preprocess`` at 224 px);
   the "no identity" input is those of a black 224 px image.

Both crop sizes are encoded when an identity is built, so one identity serves SD1.5 and SDXL
adapters; several reference photos are averaged (IPAdapter_plus's "average" combine). The encoder
is the host's (the node layer wraps ComfyUI's CLIP_VISION); this module never runs a model itself.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..faces.records import FaceCLIPEmbedding
from ..image_io import to_rgb
from ..insightface.arcface import align_face

CROP_SIZES = (224, 256)       # IPAdapter_plus: norm_crop at 256 px when the adapter is SDXL's, else 224
SDXL_CONTEXT = 2048           # how IPAdapter_plus tells an SDXL adapter: its to_k_ip reads 2048-wide tokens
CLIP_VISION_HINT = ("connect a CLIPVisionLoader with CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors "
                    "(models/clip_vision, the one IPAdapter_plus uses for FaceID Plus) to IdentityFromImages' "
                    "clip_vision input and build the identities again")


class FaceCLIPEncoder(Protocol):
    """What the host gives: CLIP vision's penultimate hidden states of uint8 RGB crops."""

    name: str

    def hidden_states(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, tokens, width) float32."""

    def negative(self) -> np.ndarray:
        """(tokens, width) float32 of a black 224 px image."""


def crop_size_for(context_dim: int) -> int:
    """The face crop IPAdapter_plus cuts for an adapter reading ``context_dim``-wide tokens."""
    return 256 if context_dim == SDXL_CONTEXT else 224


def ipadapter_pixels(image) -> np.ndarray:
    """An image (float 0..1 or uint8, any channel layout) as IPAdapter_plus's ``tensor_to_image``
    makes it: x * 255 in float32, clamped to 0..255, truncated (not rounded) to uint8; RGB."""
    a = to_rgb(image)
    if a.dtype == np.uint8:
        return a
    f = np.nan_to_num(np.asarray(a, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(f * np.float32(255), 0, 255).astype(np.uint8)


def face_crops(image, keypoints) -> dict[int, np.ndarray]:
    """The aligned face crops IPAdapter_plus would encode, {224: (224, 224, 3), 256: ...} uint8."""
    pixels = ipadapter_pixels(image)
    kps = np.asarray(keypoints, np.float32)
    return {size: align_face(pixels, kps, size) for size in CROP_SIZES}


def face_clip_embedding(crops: list[dict[int, np.ndarray]], encoder: FaceCLIPEncoder) -> FaceCLIPEmbedding:
    """The identity's CLIP features from the crops of its reference faces (``face_crops`` of each)."""
    if not crops:
        raise ValueError("no face crops to encode with CLIP vision")
    by_crop = {}
    for size in CROP_SIZES:
        states = np.asarray(encoder.hidden_states(np.stack([c[size] for c in crops])), np.float32)
        by_crop[size] = states[0] if len(states) == 1 else states.mean(axis=0)
    return FaceCLIPEmbedding(by_crop=by_crop, negative=np.asarray(encoder.negative(), np.float32),
                             model=getattr(encoder, "name", ""))


def clip_inputs(adapter, identities) -> tuple[np.ndarray, np.ndarray]:
    """(N, tokens, width) CLIP features of each identity's face at ``adapter``'s crop size, and their
    "no identity" counterparts; a clear error for an identity without them or of another width."""
    identities = list(identities) if isinstance(identities, (list, tuple)) else None
    missing = [getattr(i, "name", "?") for i in identities or [] if getattr(i, "face_clip", None) is None]
    if identities is None or missing:
        who = f"identities {missing}" if missing else "hand-made embeddings"
        raise ValueError(f"{adapter.describe()} reads a CLIP vision embedding of each face next to its ArcFace "
                         f"vector, and {who} carry none: {CLIP_VISION_HINT}. (IdentityFromEmbedding and "
                         "KinIDBlend make identities without one: use them with a FaceID or InstantID adapter.)")
    size = crop_size_for(adapter.context_dim)
    for identity in identities:
        clip = identity.face_clip
        if clip.width != adapter.clip_width or size not in clip.by_crop:
            raise ValueError(f"{adapter.describe()} reads {adapter.clip_width}-wide CLIP vision features, but "
                             f"identity {identity.name!r} carries {clip.width}-wide ones"
                             f"{f' from {clip.model}' if clip.model else ''}: {CLIP_VISION_HINT}")
    cond = np.stack([i.face_clip.by_crop[size] for i in identities])
    uncond = np.stack([i.face_clip.negative for i in identities])
    return cond, uncond
