"""insightface (PyPI, >= 2.1) as the reference, and ours beside it, for the parity tests and bench.

insightface takes BGR images, ours RGB: every call here hands insightface the same pixels with the
channels swapped. It is a test-only reference and is not in requirements-test.txt: its wheel
requires opencv-python, which would overwrite the cv2 the pack uses (opencv-contrib-python from
mediapipe, or opencv-python-headless). Install it with REFERENCE_INSTALL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.face_scenes import group6
from magicid_core.insightface import InsightFaceDetector, InsightFacePack
from magicid_core.insightface.scrfd import INSIGHTFACE_SETTINGS
from tests.support.people import astronaut, grace_hopper

REFERENCE_INSTALL = "pip install --no-deps 'insightface>=2.1' && pip install tqdm requests"


def reference_missing() -> str | None:
    """Why the reference cannot be used here (naming the missing import), or None when it can."""
    try:
        import insightface
    except ImportError as e:   # insightface itself, or one of its own imports
        return f"the reference, insightface >= 2.1, is not importable ({e}): {REFERENCE_INSTALL}"
    if tuple(int(p) for p in insightface.__version__.split(".")[:2]) < (2, 1):
        return f"insightface {insightface.__version__} is older than the reference 2.1: {REFERENCE_INSTALL}"
    return None


def group_photo() -> np.ndarray:
    return group6()[0]   # the shipped sample's six faces, 1200x600 (cached: do not modify)


def parity_images() -> dict[str, np.ndarray]:
    """Square, portrait, landscape, and a dark picture with no face."""
    return {
        "astronaut 512x512": astronaut(),
        "hopper 512x600": grace_hopper(),
        "group 1200x600": group_photo(),
        "no face 451x300": np.full((300, 451, 3), 20, np.uint8),
    }


def bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


def pack_of(detector: Path | None = None, recognizer: Path | None = None) -> InsightFacePack:
    return InsightFacePack("buffalo_l", Path(detector or recognizer).parent, detector, recognizer)


def our_detector(path: Path, **settings) -> InsightFaceDetector:
    """Ours with insightface's settings, unless ``settings`` turns a pack policy back on."""
    return InsightFaceDetector(pack_of(detector=path), need_keypoints=False, **{**INSIGHTFACE_SETTINGS, **settings})


def reference_detector(path: Path, det_size: int = 640):
    from insightface.model_zoo.scrfd import SCRFD

    ref = SCRFD(str(path))
    ref.prepare(-1, input_size=(det_size, det_size))   # what FaceAnalysis.prepare(det_size=...) does
    return ref


def reference_detect(ref, image: np.ndarray, max_num: int = 0):
    """insightface's (boxes (N, 4), scores (N,), keypoints (N, 5, 2) or None) for an RGB image."""
    det, kps = ref.detect(bgr(image), max_num=max_num)
    return det[:, :4], det[:, 4], kps


class _Canvas(Exception):
    """Carries the letterboxed image insightface was about to hand its network."""


def reference_canvas(ref, image: np.ndarray) -> np.ndarray:
    """insightface's letterboxed canvas for an RGB image, as RGB: its own resize code runs, and the
    run stops where the canvas reaches the network."""
    def capture(canvas, threshold):
        raise _Canvas(canvas.copy())
    ref.forward = capture
    try:
        ref.detect(bgr(image))
    except _Canvas as stop:
        return stop.args[0][..., ::-1]
    finally:
        del ref.forward
    raise AssertionError("insightface never reached its network")


def reference_embedding(path: Path, image: np.ndarray, keypoints: np.ndarray, recogniser=None):
    """insightface's Face after ``ArcFaceONNX.get``: ``.embedding`` raw, ``.embedding_norm``, ``.normed_embedding``."""
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    face = Face(kps=np.asarray(keypoints, np.float32))
    (recogniser or ArcFaceONNX(str(path))).get(bgr(image), face)
    return face


def reference_crop(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``face_align.norm_crop`` of an RGB image, as RGB."""
    from insightface.utils import face_align

    return face_align.norm_crop(bgr(image), np.asarray(keypoints, np.float32))[..., ::-1]


def detection_differences(ours, reference) -> dict[str, float]:
    """Face counts and the largest absolute differences (boxes, keypoints in px; scores)."""
    boxes, scores, kps = reference
    found = {"faces": len(ours.scores), "reference faces": len(scores)}
    if len(ours.scores) != len(scores) or not len(scores):
        return found

    def worst(a, b):
        return float(np.abs(np.asarray(a, np.float64) - b).max())
    found.update(box=worst(ours.boxes, boxes), score=worst(ours.scores, scores))
    if kps is not None and ours.keypoints is not None:
        found["keypoints"] = worst(ours.keypoints, kps)
    return found


def keypoint_sets(detector: InsightFaceDetector, image: np.ndarray) -> list[np.ndarray]:
    """Keypoints to align: the detector's best three on this image, and insightface's ArcFace template
    moved by three known similarities (upright, turned -30 degrees, turned 45 degrees and shrunk)."""
    from magicid_core.insightface import ARCFACE_TEMPLATE

    sets = list(detector.detect_arrays(image).keypoints[:3])
    for angle, scale, shift in ((0.0, 1.6, (150, 120)), (-30.0, 2.3, (260, 200)), (45.0, 0.8, (40, 60))):
        a = np.deg2rad(angle)
        rotation = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        sets.append((ARCFACE_TEMPLATE.astype(np.float64) @ rotation.T + shift).astype(np.float32))
    return sets
