"""Preview drawing: each face's box, index, keypoints and landmark points (mesh or 68) over the image."""

from __future__ import annotations

import cv2
import numpy as np

from .records import ImageFaces

# One colour per face (RGB), cycled; chosen to stay distinct on skin and on dark clothes.
PALETTE = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 90), (255, 100, 220), (255, 150, 40),
           (150, 120, 255), (0, 255, 200)]
KEYPOINT_COLOURS = [(0, 120, 255), (0, 120, 255), (255, 255, 255), (255, 0, 160), (255, 0, 160)]


def draw_preview(image_rgb: np.ndarray, faces: ImageFaces, mask_tint: float = 0.35,
                 show_mesh: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 copy of the image with each face's mask tinted and its box, index,
    5 keypoints and (if present) mesh points drawn. Line widths follow the image size."""
    out = image_rgb.astype(np.float32)
    for face in faces.faces:
        if face.mask is not None and mask_tint > 0:   # tint only the mask's own region
            colour = np.array(PALETTE[face.index % len(PALETTE)], np.float32)
            x0, y0, x1, y1 = face.mask_region(faces.height, faces.width)
            a = face.mask[..., None] * mask_tint
            out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - a) + colour * a
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thick = max(1, round(max(faces.height, faces.width) / 600))
    for face in faces.faces:
        colour = PALETTE[face.index % len(PALETTE)]
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        points = face.landmarks if face.landmarks is not None else face.landmarks68
        if show_mesh and points is not None:
            for x, y in points.astype(int):
                cv2.circle(out, (int(x), int(y)), 0, colour, -1)
        for (x, y), c in zip(face.keypoints, KEYPOINT_COLOURS):
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, c, -1, cv2.LINE_AA)
        label = str(face.index)
        scale = max(0.5, face.height / 90)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick + 1)
        ty = y0 - 4 if y0 - th - 6 > 0 else y1 + th + 4
        cv2.rectangle(out, (x0, ty - th - 3), (x0 + tw + 4, ty + base - 1), colour, -1)
        cv2.putText(out, label, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 1, cv2.LINE_AA)
    return out


def draw_label(image_rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of the image with ``text`` on a dark strip along its bottom edge (one line, shrunk to fit)."""
    out = image_rgb.copy()
    h, w = out.shape[:2]
    thick = max(1, round(w / 800))
    scale = max(0.35, w / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    if tw > w - 8:   # shrink to the width, never below legibility (the rest is cut by the edge)
        scale = max(0.3, scale * (w - 8) / tw)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    strip = min(h, th + base + 8)
    out[h - strip:] = (out[h - strip:].astype(np.float32) * 0.25).astype(np.uint8)
    cv2.putText(out, text, (4, h - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 216, 77), thick, cv2.LINE_AA)
    return out
