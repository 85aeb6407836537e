"""Per-face masks (face / head / box) with dilation and feather, exclusive between faces.

Each face's soft mask is 1 on its (dilated) shape and falls to 0 over ``feather`` pixels
outside it. Where masks of several faces would overlap, each pixel goes to one face only:
the one whose centre is nearest, measured in units of each face's size
(d_i(p) = |p - c_i| / size_i; ties go to the lower index). So masks never overlap, before
or after feathering, and the seam between two touching faces is a clean cut.

Work is done inside each face's own region of interest, so time and memory per face
follow the face's size, not the image's (the full-size masks are only pasted at the end).
"""

from __future__ import annotations

import cv2
import numpy as np

from .records import Face
from .mesh import face_oval

MASK_MODES = ("face", "head", "box")

# Face shape without a mesh: an ellipse over the detection box. Measured on the full-range
# mediapipe box, the mesh's face oval spans x 4..93 % and y 3..102 % of the box.
FACE_ELLIPSE = dict(cx=0.49, cy=0.52, rx=0.45, ry=0.5)
# Head box around the face box: hair and hat reach half a face height above the box.
HEAD_GROW = dict(side=0.7, top=0.5, bottom=0.1)

SUBPIXEL = 4  # cv2.fillPoly fixed-point bits


def head_box(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """The face box grown to take in hair, hat and chin, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    grown = [cx - HEAD_GROW["side"] * w, y0 - HEAD_GROW["top"] * h, cx + HEAD_GROW["side"] * w,
             y1 + HEAD_GROW["bottom"] * h]
    return np.clip(np.array(grown, np.float32), 0, [width, height, width, height]).astype(np.float32)


def _ellipse_polygon(cx: float, cy: float, rx: float, ry: float, n: int = 72) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1).astype(np.float32)


def _box_ellipse(box: np.ndarray, spec: dict) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return _ellipse_polygon(box[0] + spec["cx"] * w, box[1] + spec["cy"] * h, spec["rx"] * w, spec["ry"] * h)


def shape_polygons(face: Face, mode: str) -> list[np.ndarray]:
    """The polygons (image pixels) whose union is the face's hard shape in this mode."""
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    if mode == "box":
        x0, y0, x1, y1 = face.box
        return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)]
    if face.landmarks is not None:
        polys = [face.landmarks[list(face_oval())].astype(np.float32)]
    else:
        polys = [_box_ellipse(face.box, FACE_ELLIPSE)]
    if mode == "head":
        polys.append(_box_ellipse(face.head_box, dict(cx=0.5, cy=0.5, rx=0.5, ry=0.5)))
    return polys


def _roi(polys: list[np.ndarray], pad: float, height: int, width: int) -> tuple[int, int, int, int]:
    pts = np.concatenate(polys)
    x0, y0 = np.floor(pts.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + pad).astype(int) + 1
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _fill(hard: np.ndarray, poly: np.ndarray) -> None:
    """Set the pixels whose centres lie in the polygon (continuous coordinates: pixel i spans [i, i+1))."""
    xs, ys = poly[:, 0], poly[:, 1]
    if len(poly) == 4 and len(set(xs.tolist())) == 2 and len(set(ys.tolist())) == 2:  # axis-aligned box: exact
        c0, c1 = (int(np.ceil(v - 0.5)) for v in (xs.min(), xs.max()))
        r0, r1 = (int(np.ceil(v - 0.5)) for v in (ys.min(), ys.max()))
        hard[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = 1
        return
    pts = np.round((poly - 0.5) * (1 << SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(hard, [pts], 1, lineType=cv2.LINE_8, shift=SUBPIXEL)


def _soft(polys: list[np.ndarray], roi: tuple[int, int, int, int], dilation: float, feather: float) -> np.ndarray:
    """Soft mask on the roi: 1 where the signed distance s to the shape is <= dilation,
    smoothstep down to 0 at s = dilation + feather (s > 0 outside, < 0 inside)."""
    x0, y0, x1, y1 = roi
    hard = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p in polys:  # one call per polygon: fillPoly fills several polygons even-odd
        _fill(hard, p - (x0, y0))
    if dilation == 0 and feather == 0:
        return hard.astype(np.float32)
    outside = cv2.distanceTransform(1 - hard, cv2.DIST_L2, 5)
    inside = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
    # Distances between pixel centres; the shape's edge lies half a pixel inside either one.
    signed = np.where(hard > 0, 0.5 - inside, outside - 0.5)
    if feather <= 0:
        return (signed <= dilation).astype(np.float32)
    t = np.clip((dilation + feather - signed) / feather, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _relative_distance(face: Face, roi: tuple[int, int, int, int]) -> np.ndarray:
    """|p - c| / size over the roi, c the box centre and size the box's longer side."""
    x0, y0, x1, y1 = roi
    cx, cy = face.center
    size = max(face.width, face.height, 1.0)
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / size
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / size
    return np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)


def _intersect(a, b):
    r = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return r if r[0] < r[2] and r[1] < r[3] else None


def face_masks(faces: list[Face], height: int, width: int, mode: str = "face",
               dilation: float = 0.0, feather: float = 0.0) -> list[np.ndarray]:
    """One (height, width) float32 mask per face, in the faces' order; no two overlap."""
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")
    pad = max(dilation, 0.0) + feather + 2
    polys = [shape_polygons(f, mode) for f in faces]
    rois = [_roi(p, pad, height, width) for p in polys]
    softs = [_soft(p, r, dilation, feather) if r[0] < r[2] and r[1] < r[3] else None
             for p, r in zip(polys, rois)]
    out = []
    for i, face in enumerate(faces):
        mask = np.zeros((height, width), np.float32)
        if softs[i] is None:
            out.append(mask)
            continue
        own = softs[i].copy()
        ri = rois[i]
        dist_i = _relative_distance(face, ri)
        for j, other in enumerate(faces):
            common = _intersect(ri, rois[j]) if j != i and softs[j] is not None else None
            if common is None:
                continue
            # Views of face i's and face j's roi arrays over the common rectangle.
            si = (slice(common[1] - ri[1], common[3] - ri[1]), slice(common[0] - ri[0], common[2] - ri[0]))
            rj = rois[j]
            sj = (slice(common[1] - rj[1], common[3] - rj[1]), slice(common[0] - rj[0], common[2] - rj[0]))
            dist_j = _relative_distance(other, common)
            closer = (dist_j < dist_i[si]) | ((dist_j == dist_i[si]) & (j < i))
            own[si][(softs[j][sj] > 0) & closer] = 0.0
        mask[ri[1]:ri[3], ri[0]:ri[2]] = own
        out.append(mask)
    return out
