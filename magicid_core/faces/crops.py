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
    scale: float                     # working pixels per image pixel (1.0 = not zoomed)
    size: tuple[int, int]            # (h, w) of the zoomed crop before padding
    padded: tuple[int, int]          # (h, w) after padding to a multiple of the latent scale

    @property
    def zoomed(self) -> bool:
        return self.scale > 1.0

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
    smaller (faces at the border get a non-square crop). Crops whose long side is
    below ``zoom_size`` are zoomed up to it; larger ones keep their pixels (scale 1).
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
    scale = max(1.0, zoom_size / max(ch, cw))
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
    if plan.zoomed:   # (cubic overshoots at edges: clip back to the picture's 0..1)
        crop = np.clip(cv2.resize(crop, plan.size[::-1], interpolation=interpolation), 0.0, 1.0)
        crop = crop.reshape(plan.size + image.shape[2:])
    pad = [(0, plan.padded[0] - plan.size[0]), (0, plan.padded[1] - plan.size[1])]
    pad += [(0, 0)] * (crop.ndim - 2)
    return np.pad(crop, pad, mode="edge")


def extract_mask(mask: np.ndarray, plan: CropPlan) -> np.ndarray:
    """The mask under the crop at working size; the padding counts as outside the face."""
    x0, y0, x1, y1 = plan.box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.float32)
    if plan.zoomed:
        crop = cv2.resize(crop, plan.size[::-1], interpolation=cv2.INTER_LINEAR)
    out = np.zeros(plan.padded, np.float32)
    out[: plan.size[0], : plan.size[1]] = np.clip(crop, 0.0, 1.0)
    return out


def shrink(work: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Undo ``extract``: drop the padding and resize back to the crop's pixels."""
    crop = np.ascontiguousarray(work[: plan.size[0], : plan.size[1]], dtype=np.float32)
    if plan.zoomed:
        crop = cv2.resize(crop, plan.crop_hw[::-1], interpolation=cv2.INTER_AREA)
        crop = crop.reshape(plan.crop_hw + work.shape[2:])
    return crop


def to_work(points: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Image-pixel (x, y) points (..., 2) as pixels of the working picture."""
    pts = np.asarray(points, np.float32)
    (ch, cw), (h, w) = plan.crop_hw, plan.size
    origin = np.array(plan.box[:2], np.float32)
    return (pts - origin) * np.array([w / cw, h / ch], np.float32)


def paste(image: np.ndarray, crop: np.ndarray, mask: np.ndarray, plan: CropPlan) -> np.ndarray:
    """``image`` with ``crop`` blended in through ``mask`` (image-sized) inside the plan's box.

    out = image + m * (crop - image) where m > 0, and out = image (the same bits, not a
    float round trip) where m == 0.
    """
    x0, y0, x1, y1 = plan.box
    out = image.copy()
    under = out[y0:y1, x0:x1]
    m = mask[y0:y1, x0:x1, None].astype(under.dtype)
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
