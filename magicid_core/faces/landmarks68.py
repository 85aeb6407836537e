"""The 68-point face layout (iBUG 300-W, dlib, OpenPose face) and the maps into it.

Every dense-landmark backend is brought to this one layout, so masks, keypoints and the
OpenPose-face control map work the same whichever backend ran:

    0-16 jaw (image-left to image-right)   17-21, 22-26 brows    27-30 nose bridge, 31-35 nose base
    36-41, 42-47 eyes (outer corner first) 48-59 outer lips      60-67 inner lips

(For a face looking at the camera the image-left eye, 36-41, is the person's right eye.)

- mediapipe's 468/478-point mesh -> 68: one mesh vertex per point (``MESH_TO_68``, the
  correspondence widely used to compare mesh and dlib; checked against dlib's own 68 points on
  real faces in the tests).
- insightface's 2d106det (106 points) -> 68: the mean of a pair of 106-points per 68-point
  (``I106_TO_68``); its contour has 33 points, the 68 layout's jaw 17, so every other one.
"""

from __future__ import annotations

import numpy as np

JAW = slice(0, 17)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)   # image-left, image-right for a frontal face
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT, CHIN = 30, 48, 54, 8

MESH_TO_68 = np.array([
    127, 234, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 454, 356,   # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,                                        # brows
    168, 197, 5, 4, 98, 97, 2, 326, 327,                                                  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                            # eyes
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,                                   # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,                                                    # inner lips
])

# insightface 2d106det output order -> 68: the two 106-indices averaged for each 68-point.
# The 106 contour has 33 points (0 = chin, 1-16 and 17-32 the two sides, each out of order):
# the jaw takes every other contour point. The rest follows the 106 mark-up's parts; where
# the 68 layout has a point between two of the 106 (eye lids, nose), it is their mean.
I106_TO_68 = np.array([
    (1, 1), (10, 10), (12, 12), (14, 14), (16, 16), (3, 3), (5, 5), (7, 7), (0, 0),
    (23, 23), (21, 21), (19, 19), (32, 32), (30, 30), (28, 28), (26, 26), (17, 17),      # jaw
    (43, 43), (48, 48), (49, 49), (51, 51), (50, 50),                                    # brow, image left
    (102, 102), (103, 103), (104, 104), (105, 105), (101, 101),                          # brow, image right
    (72, 73), (73, 74), (74, 86), (86, 80), (78, 79), (79, 80), (80, 80), (80, 85), (85, 84),   # nose
    (35, 35), (41, 40), (40, 42), (39, 39), (37, 33), (33, 36),                          # eye, image left
    (89, 89), (95, 94), (94, 96), (93, 93), (91, 87), (87, 90),                          # eye, image right
    (52, 52), (64, 64), (63, 63), (71, 71), (67, 67), (68, 68), (61, 61),                # outer lips
    (58, 58), (59, 59), (53, 53), (56, 56), (55, 55),
    (65, 65), (66, 66), (62, 62), (70, 70), (69, 69), (57, 57), (60, 60), (54, 54),      # inner lips
])
# 106-indices of the two pupils (not in the 68 layout; the 5 keypoints' eyes when present).
I106_PUPILS = (38, 88)

# The 68 points have no forehead: above the jaw's two top points the outline is the upper half
# of an ellipse through them, as high as this fraction of the jaw's depth (the distance from
# the line between the jaw's top points down to the chin). Fitted on real portraits: it
# gives the best IoU against the known face region (see tests/test_landmarks68.py).
FOREHEAD_RATIO = 0.6
FOREHEAD_POINTS = 15


def from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(468 or 478, 2) mediapipe mesh -> (68, 2)."""
    mesh = np.asarray(mesh, np.float32)
    if mesh.ndim != 2 or mesh.shape[0] < 468:
        raise ValueError(f"a face mesh has 468 or 478 points, got shape {mesh.shape}")
    return mesh[MESH_TO_68, :2].copy()


def from_106(points: np.ndarray) -> np.ndarray:
    """(106, 2) insightface 2d106det points -> (68, 2)."""
    points = np.asarray(points, np.float32)
    if points.shape[0] != 106:
        raise ValueError(f"insightface's 2d106det gives 106 points, got shape {points.shape}")
    return points[I106_TO_68, :2].mean(axis=1).astype(np.float32)


def keypoints(points68: np.ndarray) -> np.ndarray:
    """(68, 2) -> the 5 InstantID keypoints: eye centres, nose tip, mouth corners, image-left first."""
    p = np.asarray(points68, np.float32)
    eyes = sorted([p[RIGHT_EYE].mean(0), p[LEFT_EYE].mean(0)], key=lambda q: q[0])
    mouth = sorted([p[MOUTH_LEFT], p[MOUTH_RIGHT]], key=lambda q: q[0])
    return np.array([eyes[0], eyes[1], p[NOSE_TIP], mouth[0], mouth[1]], np.float32)


def face_outline(points68: np.ndarray) -> np.ndarray:
    """(17 + FOREHEAD_POINTS, 2) polygon around the whole face: the jaw, then the forehead arc back.

    The arc is the upper half of an ellipse centred between the jaw's top points, its axes along
    and across the line joining them, so it follows a tilted head.
    """
    p = np.asarray(points68, np.float64)
    jaw = p[JAW]
    left, right = jaw[0], jaw[-1]
    centre = (left + right) / 2
    across = (right - left) / 2                           # semi-axis along the jaw's top line
    half_width = float(np.hypot(*across))
    if half_width < 1e-6:
        return jaw.astype(np.float32)
    down = np.array([-across[1], across[0]]) / half_width  # perpendicular, towards the chin
    if np.dot(p[CHIN] - centre, down) < 0:
        down = -down
    depth = max(float(np.dot(p[CHIN] - centre, down)), 1e-6)
    up = -down * FOREHEAD_RATIO * depth
    t = np.linspace(0, np.pi, FOREHEAD_POINTS + 2)[1:-1]   # right -> top -> left, ends excluded
    arc = centre + np.cos(t)[:, None] * across + np.sin(t)[:, None] * up
    return np.concatenate([jaw, arc]).astype(np.float32)
