"""Preview drawing: each face's box, index, keypoints and mesh points over the image."""

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
        if face.mask is not None and mask_tint > 0:
            colour = np.array(PALETTE[face.index % len(PALETTE)], np.float32)
            a = face.mask[..., None] * mask_tint
            out = out * (1 - a) + colour * a
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thick = max(1, round(max(faces.height, faces.width) / 600))
    for face in faces.faces:
        colour = PALETTE[face.index % len(PALETTE)]
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        if show_mesh and face.landmarks is not None:
            for x, y in face.landmarks.astype(int):
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
