"""Which identity owns which cell of an attention layer.

Face masks live in image pixels; attention layers see the picture on coarse grids
(SD1.5 at 1024 px: 128, 64, 32 and 16 cells a side). Shrinking masks bilinearly, as
peer packs do, lets a small face fall between cells and lets neighbours share a cell.
The rule here keeps ownership instead:

1. coverage[i, cell] = fraction of the cell's area inside mask i (an area average);
2. a cell belongs to the face covering it most, if that face covers at least half of it;
3. a face left without any cell takes its best-covered cell that is free or whose owner
   keeps another one (nearest to its centre when it covers nothing at all).

So every face owns at least one cell at every size and no cell has two owners.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAJORITY = 0.5  # a cell goes to a face that covers at least this fraction of it


def validate_masks(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks in 0..1 -> float32 copy; rejects NaN and empty masks."""
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3:
        raise ValueError(f"face masks must be a stack (N, H, W); got shape {masks.shape}")
    if not np.isfinite(masks).all():
        raise ValueError("a face mask holds NaN or infinite values")
    empty = [i for i, m in enumerate(masks) if not (m > 0).any()]
    if empty:
        raise ValueError(f"face mask(s) {empty} are empty: every assigned face needs a mask "
                         "(run FaceDetectMasks, or leave that identity unassigned)")
    return np.clip(masks, 0.0, 1.0)


def coverage(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, H, W) image masks -> (N, height, width) fraction of each cell covered by each mask."""
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    # adaptive average pooling averages every pixel that falls in a cell: the area fraction.
    return F.adaptive_avg_pool2d(t, (height, width))[:, 0].numpy()


def owner_map(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) int64 map: index of the owning face per cell, -1 where nobody owns it."""
    n = len(masks)
    if n > height * width:
        raise ValueError(f"{n} faces cannot each own a cell of a {height}x{width} attention layer")
    cov = coverage(masks, height, width).reshape(n, -1)
    owner = np.where(cov.max(axis=0) >= MAJORITY, cov.argmax(axis=0), -1)
    # Smallest faces choose first, so a big face gives up a shared cell rather than a small one.
    for i in np.argsort(cov.sum(axis=1), kind="stable"):
        if (owner == i).any():
            continue
        owner[_free_or_spare_cell(i, cov, owner, masks, height, width)] = i
    return owner.reshape(height, width)


def _free_or_spare_cell(i, cov, owner, masks, height, width) -> int:
    """The cell face i should take: best covered, then nearest its centre; never another's last."""
    counts = np.bincount(owner[owner >= 0], minlength=len(cov))
    takeable = (owner < 0) | (counts[np.maximum(owner, 0)] > 1)
    cy, cx = _centre(masks[i], height, width)
    ys, xs = np.divmod(np.arange(height * width), width)
    distance = (ys + 0.5 - cy) ** 2 + (xs + 0.5 - cx) ** 2
    order = np.lexsort((distance, -cov[i]))  # primary key: coverage (descending)
    return int(order[takeable[order]][0])


def _centre(mask: np.ndarray, height: int, width: int) -> tuple[float, float]:
    """Mask centre of mass in layer cell units."""
    ys, xs = np.nonzero(mask > 0)
    weights = mask[ys, xs]
    scale_y, scale_x = height / mask.shape[0], width / mask.shape[1]
    return (float(np.average(ys + 0.5, weights=weights)) * scale_y,
            float(np.average(xs + 0.5, weights=weights)) * scale_x)


def ownership_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, height, width) float32 one-hot ownership: 1 where face i owns the cell, else 0."""
    owner = owner_map(masks, height, width)
    return (owner[None] == np.arange(len(masks))[:, None, None]).astype(np.float32)


def bilinear_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """What peer packs do (for comparison only): bilinear shrinking of each mask."""
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[:, 0].numpy()


def crop_and_resize(masks: np.ndarray, box_xyxy, out_hw: tuple[int, int]) -> np.ndarray:
    """Masks cut to a box of the image (pixels, x0 y0 x1 y1) and resized to out_hw (area / bilinear)."""
    h, w = masks.shape[1:]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box_xyxy)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop box {list(box_xyxy)} lies outside the {w}x{h} image")
    t = torch.from_numpy(np.ascontiguousarray(masks[:, y0:y1, x0:x1], dtype=np.float32))[:, None]
    shrinking = out_hw[0] < (y1 - y0)
    mode = "area" if shrinking else "bilinear"
    kwargs = {} if shrinking else {"align_corners": False}
    return F.interpolate(t, size=tuple(out_hw), mode=mode, **kwargs)[:, 0].numpy()


# Distinct colours for up to 8 identities (then they repeat), RGB in 0..1.
PALETTE = np.array([[0.90, 0.25, 0.20], [0.20, 0.55, 0.90], [0.25, 0.75, 0.30], [0.95, 0.75, 0.15],
                    [0.65, 0.35, 0.85], [0.10, 0.80, 0.80], [0.95, 0.45, 0.70], [0.60, 0.45, 0.25]],
                   np.float32)


def ownership_preview(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) picture: each identity's mask dimmed, the cells it owns at a height x width layer bright."""
    h, w = masks.shape[1:]
    colours = PALETTE[np.arange(len(masks)) % len(PALETTE)]
    picture = 0.35 * np.einsum("nhw,nc->hwc", np.clip(masks, 0, 1), colours)
    owner = owner_map(masks, height, width)
    rows = np.minimum(np.arange(h) * height // h, height - 1)      # nearest cell of every pixel
    cols = np.minimum(np.arange(w) * width // w, width - 1)
    cell_owner = owner[rows[:, None], cols[None, :]]
    owned = cell_owner >= 0
    picture[owned] = colours[cell_owner[owned]]
    return np.clip(picture, 0, 1).astype(np.float32)
