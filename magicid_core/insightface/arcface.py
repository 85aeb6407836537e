"""ArcFace, insightface's recogniser: a 512-d identity vector from a 112x112 aligned face."""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.geometry import ARCFACE_TEMPLATE  # where the 5 keypoints land in the 112x112 crop
from ..image_io import to_rgb_uint8
from .packs import InsightFaceModelError, InsightFacePack, load_session

ARCFACE_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst: a 2x3 matrix.

    Umeyama (1991): with centred points a = src - mean(src), b = dst - mean(dst),
    U S V^T = svd(b^T a / n), R = U diag(1, det(U V^T)) V^T,
    scale = trace(diag(S) diag(1, det)) / var(a), t = mean(dst) - scale R mean(src).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_a = (a ** 2).sum() / len(a)
    if var_a < 1e-12:
        raise ValueError("face keypoints are all at one point; cannot align the face")
    u, s, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.array([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])   # no reflections
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / var_a
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def align_face(image: np.ndarray, keypoints: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The (size, size, 3) crop with the face's 5 keypoints moved onto the ArcFace template."""
    matrix = similarity_transform(keypoints, ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError("the identity model returned an all-zero or non-finite embedding")
    return (vector / norm).astype(np.float32)


class ArcFaceRecognizer:
    """The pack's recogniser: ``embed(image, keypoints) -> (512,)`` L2-normalised float32."""

    def __init__(self, pack: InsightFacePack):
        self.path = pack.recognizer
        self.session = load_session(pack.recognizer)
        model_input = self.session.get_inputs()[0]
        shape = model_input.shape
        if len(shape) != 4 or shape[2:4] != [ARCFACE_SIZE, ARCFACE_SIZE]:
            raise InsightFaceModelError(
                f"{self.path} is not an ArcFace recogniser (input {shape}, expected N x 3 x 112 x 112); "
                f"use the {pack.name} pack's own recognition file")
        self.input_name = model_input.name

    def embed(self, image, keypoints: np.ndarray) -> np.ndarray:
        crop = align_face(to_rgb_uint8(image), np.asarray(keypoints, np.float32))
        # glintr100 and w600k_r50 were exported from PyTorch: RGB, (pixel - 127.5) / 127.5, NCHW
        blob = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
        (features,) = self.session.run(None, {self.input_name: blob})[:1]
        return l2_normalise(np.asarray(features, np.float32).reshape(-1))
