"""Bring any picture to the one layout the core works on: HxWx3 RGB (uint8 for analysis)."""

from __future__ import annotations

import numpy as np


def to_rgb(image) -> np.ndarray:
    """Gray (H, W) / (H, W, 1) / gray + alpha -> 3 equal channels; RGBA -> RGB (alpha dropped).

    Values and dtype are kept as they are (no quantisation), so unchanged pixels keep their bits.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[2] in (1, 2):          # gray, or gray + alpha
        return np.repeat(a[:, :, :1], 3, axis=2)
    if a.shape[2] == 4:               # RGBA: drop alpha
        return np.ascontiguousarray(a[:, :, :3])
    return a


def to_rgb_uint8(image) -> np.ndarray:
    """Accept gray (H, W) or (H, W, 1), RGB, RGBA, float 0..1 or uint8; return (H, W, 3) uint8.

    RGBA is composited on black only through dropping alpha: faces are analysed on
    the colour channels as they are.
    """
    a = to_rgb(image)
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        a = (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)
