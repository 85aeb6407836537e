"""Draw COCO-18 skeletons the way OpenPose ControlNets saw them in training.

Black canvas, one colour per limb (drawn as a filled ellipse at 60% brightness) and
per joint (a filled circle), in OpenPose's order: the picture an OpenPose ControlNet reads.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Limbs as pairs of COCO-18 indices (OpenPose's limbSeq, 0-based; the two ear-shoulder links are not drawn).
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
          (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
          (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


def draw_openpose(height: int, width: int, skeletons, min_confidence: float = 0.3,
                  stick_width: int = 4, canvas: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB with every (18, 3) skeleton drawn; points under ``min_confidence`` are skipped."""
    out = np.zeros((height, width, 3), np.uint8) if canvas is None else canvas.copy()
    for skeleton in skeletons:
        if skeleton is None:
            continue
        seen = np.asarray(skeleton)[:, 2] >= min_confidence
        for n, (a, b) in enumerate(LIMBS):
            if not (seen[a] and seen[b]):
                continue
            (xa, ya), (xb, yb) = skeleton[a, :2], skeleton[b, :2]
            length = math.hypot(xb - xa, yb - ya)
            angle = math.degrees(math.atan2(yb - ya, xb - xa))
            polygon = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)),
                                       (int(length / 2), stick_width), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(out, polygon, [int(c * 0.6) for c in COLORS[n]])
        for k in np.flatnonzero(seen):
            cv2.circle(out, (int(skeleton[k, 0]), int(skeleton[k, 1])), stick_width, COLORS[k], thickness=-1)
    return out
