"""Dense face landmarks per detected face, from whichever backend is really installed.

Backends (``LANDMARK_BACKENDS``), each bringing its points to the 68-point layout
(``landmarks68``) for masks, keypoints and the OpenPose-face map:

- ``insightface_106``: insightface's 2d106det.onnx from an antelopev2 / buffalo_l pack;
- ``mediapipe_mesh``: mediapipe's 478-point FaceMesh (kept as the face's ``landmarks`` too, for the
  MediaPipe-face control map), where mediapipe 0.10.21 installs;
- ``dlib_68``: dlib's 68-point shape predictor from face_recognition_models: everywhere.

``auto`` takes the first of that order that loads. A backend may find no landmarks for a
box (the mesh rejects what is no face): then ``locate`` returns None.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..insightface.landmark106 import Landmark106, find_landmark_model
from ..optional import MissingPackageError, mediapipe_available, require_mediapipe
from . import landmarks68
from .dlib_stack import SHAPE68_FILE, shape_points, shape_predictor
from .mesh import face_mesh, keypoints_from_mesh


@dataclass
class DenseLandmarks:
    points68: np.ndarray            # (68, 2) image pixels, landmarks68 layout
    keypoints: np.ndarray           # (5, 2) InstantID keypoints measured on the landmarks
    backend: str                    # which backend made them
    mesh: np.ndarray | None = None  # (478, 2) when the backend is mediapipe's mesh


class MeshLandmarker:
    name = "mediapipe_mesh"

    def __init__(self):
        require_mediapipe("the 478-point face mesh")

    def locate(self, image: np.ndarray, box: np.ndarray) -> DenseLandmarks | None:
        mesh = face_mesh(image, box)
        if mesh is None:
            return None
        # iris centres and measured mouth corners: the mesh's own keypoints beat the 68-point means
        return DenseLandmarks(landmarks68.from_mesh(mesh), keypoints_from_mesh(mesh), self.name, mesh)


class Insightface106Landmarker:
    name = "insightface_106"

    def __init__(self, insightface_roots=None):
        self.model = _landmark106(str(find_landmark_model(insightface_roots)), Landmark106)

    def locate(self, image: np.ndarray, box: np.ndarray) -> DenseLandmarks:
        points = self.model.points(image, box)
        points68 = landmarks68.from_106(points)
        kps = landmarks68.keypoints(points68)
        pupils = sorted(points[list(landmarks68.I106_PUPILS)], key=lambda p: p[0])
        kps[0], kps[1] = pupils   # the model's pupils are better eye centres than the lid means
        return DenseLandmarks(points68, kps, self.name)


@functools.lru_cache(maxsize=2)
def _landmark106(path: str, factory):
    return factory(path)


class Dlib68Landmarker:
    name = "dlib_68"

    def __init__(self):
        shape_predictor(SHAPE68_FILE)

    def locate(self, image: np.ndarray, box: np.ndarray) -> DenseLandmarks:
        first = shape_points(image, dlib_box(box), SHAPE68_FILE)
        # a second pass on the box dlib's training would have drawn around these points:
        # the predictor is sensitive to its box, and detectors' boxes vary by +-20 %
        points68 = shape_points(image, box_from_points68(first), SHAPE68_FILE)
        return DenseLandmarks(points68, landmarks68.keypoints(points68), self.name)


# dlib's predictors were trained on HOG boxes, which are tighter than other detectors' boxes
# (eyebrows to lower lip): a box taller than wide is shrunk to a centred square of its width.
def dlib_box(box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if h <= w * 1.05:
        return np.asarray(box, np.float32)
    cy = y0 + 0.56 * h   # the face's centre sits a little below the box centre when the box holds the forehead
    return np.array([x0, cy - w / 2, x1, cy + w / 2], np.float32)


# dlib's HOG box around a face, in units of the face's size s = mean(eye distance, eyes-to-mouth
# distance): side 2.29 s, centred 0.06 s below the middle of eyes and mouth (measured on 20 HOG
# detections of the test photos; spread 9 %).
HOG_BOX_SIDE, HOG_BOX_DROP = 2.29, 0.06


def box_from_points68(points68: np.ndarray) -> np.ndarray:
    p = np.asarray(points68, np.float64)
    eyes = (p[landmarks68.RIGHT_EYE].mean(0) + p[landmarks68.LEFT_EYE].mean(0)) / 2
    mouth = (p[landmarks68.MOUTH_LEFT] + p[landmarks68.MOUTH_RIGHT]) / 2
    eye_gap = float(np.hypot(*(p[landmarks68.LEFT_EYE].mean(0) - p[landmarks68.RIGHT_EYE].mean(0))))
    size = (eye_gap + float(np.hypot(*(mouth - eyes)))) / 2
    cx, cy = (eyes + mouth) / 2 + (0.0, HOG_BOX_DROP * size)
    half = HOG_BOX_SIDE * size / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


LANDMARK_BACKENDS = ("auto", "insightface_106", "mediapipe_mesh", "dlib_68", "none")
AUTO_ORDER = ("insightface_106", "mediapipe_mesh", "dlib_68")


def _build(name: str, insightface_roots):
    if name == "insightface_106":
        return Insightface106Landmarker(insightface_roots)
    if name == "mediapipe_mesh":
        return MeshLandmarker()
    return Dlib68Landmarker()


def make_landmarker(name: str = "auto", insightface_roots=None):
    """A landmark backend by name (see LANDMARK_BACKENDS); ``none`` gives None."""
    if name not in LANDMARK_BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; choose one of {', '.join(LANDMARK_BACKENDS)}")
    if name == "none":
        return None
    if name != "auto":
        return _build(name, insightface_roots)
    errors = []
    for candidate in AUTO_ORDER:
        if candidate == "mediapipe_mesh" and not mediapipe_available():
            errors.append("mediapipe_mesh: mediapipe 0.10.21 is not installed")
            continue
        try:
            return _build(candidate, insightface_roots)
        except (ValueError, ImportError, MissingPackageError) as e:
            errors.append(f"{candidate}: {e}")
    raise ValueError("no face landmark backend is usable: " + "; ".join(errors))
