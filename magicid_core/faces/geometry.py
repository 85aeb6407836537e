"""Face-box and keypoint geometry shared by every detector backend.

The five InstantID keypoints from the points a backend gives, box overlaps, non-maximum
suppression and the common last step of every detector (``finish``: size floor, best N).
The insightface backend uses these too, so they live apart from the detectors themselves.
"""

from __future__ import annotations

import numpy as np

from .records import Detection

# Smallest face (px, shorter box side) sought by default. For the mediapipe tile pyramid
# each halving of it roughly doubles the tiles (and the time).
DEFAULT_MIN_FACE = 32

# insightface's ArcFace alignment template (112x112): eyes, nose tip, mouth corners.
# Used to place keypoints a backend does not give (mouth corners) from the ones it does.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


# --------------------------------------------------------------------------- keypoints

def five_keypoints(eye_a, eye_b, nose, mouth_center=None) -> np.ndarray:
    """Eyes (any order), nose and optionally the mouth centre -> (5, 2) in InstantID order.

    Mouth corners are estimated: the ArcFace template is fitted to the two eyes by a
    similarity transform p = e_l + z (t - t_l) (complex numbers, z = rotation * scale),
    which places the template's mouth corners; when the mouth centre is known the corners
    are that centre -/+ the template's half mouth width (0.83 x the eye distance).
    """
    eyes = sorted([np.asarray(eye_a, np.float32), np.asarray(eye_b, np.float32)], key=lambda p: p[0])
    el, er = (complex(*p) for p in eyes)
    t = [complex(*p) for p in ARCFACE_TEMPLATE]
    z = (er - el) / (t[1] - t[0])
    placed = [el + z * (tp - t[0]) for tp in t]
    mouth_l, mouth_r = placed[3], placed[4]
    if mouth_center is not None:
        half = (mouth_r - mouth_l) / 2
        c = complex(*np.asarray(mouth_center, np.float32))
        mouth_l, mouth_r = c - half, c + half
    pts = [eyes[0], eyes[1], np.asarray(nose, np.float32)] + [np.array([m.real, m.imag]) for m in (mouth_l, mouth_r)]
    return np.array(pts, np.float32)


# --------------------------------------------------------------------------- merging

def box_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every box in a (N, 4) against every box in b (M, 4): IoU and intersection over
    the smaller box's area, both (N, M)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    iou = inter / np.maximum(area_a + area_b - inter, 1e-6)
    return iou, inter / np.maximum(np.minimum(area_a, area_b), 1e-6)


def nms(dets: list[Detection], iou_threshold: float = 0.3, inside_threshold: float = 0.6) -> list[Detection]:
    """Keep the best-scoring detection of each group of duplicates (ties: earlier first).

    Two boxes are duplicates when their IoU is high, or when one lies mostly inside the
    other: a coarse tile level often boxes a small face together with its hair.
    """
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    kept: list[Detection] = []
    for i in order:
        if kept:
            iou, inside = box_overlaps(dets[i].box[None], np.stack([k.box for k in kept]))
            if iou.max() >= iou_threshold or inside.max() >= inside_threshold:
                continue
        kept.append(dets[i])
    return kept


# Detector boxes of one face vary by +-20% between backends and scales, so a face is
# dropped only when its box is clearly smaller than min_face.
MIN_FACE_TOLERANCE = 0.8


def finish(dets: list[Detection], min_face: float, max_faces: int) -> list[Detection]:
    """Drop faces smaller than min_face (box's shorter side, with tolerance), keep the best max_faces."""
    dets = [d for d in dets if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= MIN_FACE_TOLERANCE * min_face]
    dets.sort(key=lambda d: -d.score)
    return dets[:max_faces] if max_faces > 0 else dets
