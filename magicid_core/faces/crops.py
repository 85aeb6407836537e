"""Face crops for restoration: pick a box with context, zoom it to the working size, and back.

A :class:`CropPlan` is the geometry of one face crop: the box in the image, the zoom
factor and the padding that makes the working picture a multiple of the latent scale.
``extract`` and ``shrink`` are each other's inverse on geometry; ``paste`` writes a
crop back through a mask so that pixels where the mask is 0 are the input's own bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropPlan:
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 in image pixels (x1, y1 exclusive)
    scale: float                     # working pixels per image pixel (> 1 zoomed, < 1 shrunk, 1.0 as is)
    size: tuple[int, int]            # (h, w) of the zoomed crop before padding
    padded: tuple[int, int]          # (h, w) after padding to a multiple of the latent scale

    @property
    def zoomed(self) -> bool:
        return self.scale > 1.0

    @property
    def shrunk(self) -> bool:
        return self.scale < 1.0

    @property
    def resized(self) -> bool:
        return self.scale != 1.0

    @property
    def crop_hw(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


def support_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Smallest x0, y0, x1, y1 (exclusive) holding every pixel where mask > 0; None if empty."""
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def plan_crop(region: tuple[float, float, float, float], image_hw: tuple[int, int],
              context: float, zoom_size: int, multiple: int = 8) -> CropPlan:
    """A square crop around ``region`` grown by ``context`` x its long side on every side.

    The square is shifted to stay inside the image and clipped where the image is
    smaller (faces at the border get a non-square crop). The crop's long side is brought
    to ``zoom_size``: small crops are zoomed up, larger ones shrunk, so the work per face
    is bounded by the working size however large the face.
    """
    height, width = image_hw
    x0, y0, x1, y1 = (float(v) for v in region)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * context)
    side = int(np.ceil(side))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx0 = _fit(int(round(cx - side / 2)), side, width)
    by0 = _fit(int(round(cy - side / 2)), side, height)
    box = (bx0, by0, min(bx0 + side, width), min(by0 + side, height))
    ch, cw = box[3] - box[1], box[2] - box[0]
    scale = zoom_size / max(ch, cw)
    size = (max(1, int(round(ch * scale))), max(1, int(round(cw * scale))))
    padded = tuple(-(-s // multiple) * multiple for s in size)
    return CropPlan(box, scale, size, padded)


def _fit(start: int, side: int, limit: int) -> int:
    """Shift a [start, start + side) window inside [0, limit) where it fits."""
    return max(0, min(start, limit - side)) if side <= limit else 0


def extract(image: np.ndarray, plan: CropPlan, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """The crop of ``image`` (H, W, C) or (H, W) in 0..1, zoomed and edge-padded to ``plan.padded``."""
    x0, y0, x1, y1 = plan.box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    if plan.resized:   # (cubic overshoots at edges: clip back to the picture's 0..1)
        how = interpolation if plan.zoomed else cv2.INTER_AREA
        crop = np.clip(cv2.resize(crop, plan.size[::-1], interpolation=how), 0.0, 1.0)
        crop = crop.reshape(plan.size + image.shape[2:])
    pad = [(0, plan.padded[0] - plan.size[0]), (0, plan.padded[1] - plan.size[1])]
    pad += [(0, 0)] * (crop.ndim - 2)
    return np.pad(crop, pad, mode="edge")


def under_box(mask: np.ndarray, plan: CropPlan, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The part of ``mask`` under the plan's box: the mask itself when it is already the box's
    size (a crop-sized paste mask), else a slice of a whole-image mask."""
    if mask.shape[:2] == plan.crop_hw:
        return mask
    if image_hw is not None and mask.shape[:2] != tuple(image_hw):
        raise ValueError(f"a {mask.shape[1]}x{mask.shape[0]} mask fits neither the {image_hw[1]}x{image_hw[0]} "
                         f"image nor the crop box {plan.box}")
    x0, y0, x1, y1 = plan.box
    return mask[y0:y1, x0:x1]


def extract_mask(mask: np.ndarray, plan: CropPlan) -> np.ndarray:
    """The mask (under the crop box, or whole-image) at working size; the padding counts as outside the face."""
    crop = np.ascontiguousarray(under_box(mask, plan), dtype=np.float32)
    if plan.resized:
        how = cv2.INTER_LINEAR if plan.zoomed else cv2.INTER_AREA
        crop = cv2.resize(crop, plan.size[::-1], interpolation=how)
    out = np.zeros(plan.padded, np.float32)
    out[: plan.size[0], : plan.size[1]] = np.clip(crop, 0.0, 1.0)
    return out


def shrink(work: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Undo ``extract``: drop the padding and resize back to the crop's pixels."""
    crop = np.ascontiguousarray(work[: plan.size[0], : plan.size[1]], dtype=np.float32)
    if plan.resized:
        how = cv2.INTER_AREA if plan.zoomed else cv2.INTER_CUBIC
        crop = cv2.resize(crop, plan.crop_hw[::-1], interpolation=how)
        crop = crop.reshape(plan.crop_hw + work.shape[2:])
    return crop


def to_work(points: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Image-pixel (x, y) points (..., 2) as pixels of the working picture."""
    pts = np.asarray(points, np.float32)
    (ch, cw), (h, w) = plan.crop_hw, plan.size
    origin = np.array(plan.box[:2], np.float32)
    return (pts - origin) * np.array([w / cw, h / ch], np.float32)


def paste(image: np.ndarray, crop: np.ndarray, mask: np.ndarray, plan: CropPlan) -> np.ndarray:
    """``image`` with ``crop`` blended in through ``mask`` (under the plan's box, or image-sized).

    out = image + m * (crop - image) where m > 0, and out = image (the same bits, not a
    float round trip) where m == 0.
    """
    x0, y0, x1, y1 = plan.box
    out = image.copy()
    under = out[y0:y1, x0:x1]
    m = under_box(mask, plan, image.shape[:2])[..., None].astype(under.dtype)
    blended = under + m * (crop.astype(under.dtype) - under)
    out[y0:y1, x0:x1] = np.where(m > 0, blended, under)
    return out


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soften a mask's edge with a Gaussian of ``radius`` px (the support grows by at most radius)."""
    mask = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    if radius <= 0:
        return mask
    k = 2 * int(radius) + 1
    return np.clip(cv2.GaussianBlur(mask, (k, k), sigmaX=radius / 2.0, borderType=cv2.BORDER_CONSTANT), 0.0, 1.0)
