"""ArcFace, insightface's recogniser: a 512-d identity vector from a 112x112 aligned face."""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.geometry import ARCFACE_TEMPLATE  # where the 5 keypoints land in the 112x112 crop
from ..image_io import to_rgb_uint8
from .onnx_graph import first_node_names
from .packs import InsightFaceModelError, InsightFacePack, load_session

ARCFACE_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst: a 2x3
    float64 matrix, as insightface's ``face_align.estimate_norm`` gets it from scikit-image.

    Umeyama (1991): with centred points a = src - mean(src), b = dst - mean(dst),
    U S V^T = svd(b^T a / n), R = U diag(1, sign det(b^T a)) V^T,
    scale = trace(diag(S) diag(1, det)) / var(a), t = mean(dst) - scale R mean(src).
    """
    # Sums in the points' own precision (float32 keypoints stay float32), as scikit-image's estimate
    # does: warpAffine samples at 1/32 px, so even float32's 1e-5 matrix error shows at sharp edges.
    src, dst = (np.asarray(p) if np.asarray(p).dtype.kind == "f" else np.asarray(p, np.float64) for p in (src, dst))
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_a = a.var(axis=0).sum()
    if var_a < 1e-12:
        raise ValueError("face keypoints are all at one point; cannot align the face")
    covariance = b.T @ a / len(a)
    d = np.array([1.0, -1.0 if np.linalg.det(covariance) < 0 else 1.0])   # no reflections
    u, s, vt = np.linalg.svd(covariance)
    rotation = u @ np.diag(d) @ vt
    scale = 1.0 / var_a * (s @ d)
    translation = mu_d - scale * (rotation @ mu_s)
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float64)


def arcface_template(size: int) -> np.ndarray:
    """Where the 5 keypoints land in a size x size crop, as insightface's ``estimate_norm`` puts them:
    the 112 px template scaled by size / 112, or, for a multiple of 128 (IPAdapter_plus's 256 px SDXL
    face crop), scaled by size / 128 and moved 8 * size / 128 px right."""
    if size % ARCFACE_SIZE and not size % 128:
        template = ARCFACE_TEMPLATE * (float(size) / 128.0)
        template[:, 0] += 8.0 * float(size) / 128.0
        return template
    return ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)


def align_face(image: np.ndarray, keypoints: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The (size, size, 3) crop with the face's 5 keypoints moved onto the ArcFace template
    (insightface's ``face_align.norm_crop``)."""
    matrix = similarity_transform(keypoints, arcface_template(size))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError("the identity model returned an all-zero or non-finite embedding")
    return (vector / norm).astype(np.float32)


def builtin_normalisation(node_names: list[str]) -> bool:
    """insightface's test for a recogniser that normalises inside its graph (an mxnet export): among
    the first nodes, one named like a subtraction and one like a multiplication. It then feeds raw pixels."""
    subtracts = any(n.startswith(("Sub", "_minus")) for n in node_names)
    multiplies = any(n.startswith(("Mul", "_mul")) for n in node_names)
    return subtracts and multiplies


class ArcFaceRecognizer:
    """The pack's recogniser: ``embed(image, keypoints) -> (512,)`` L2-normalised float32;
    ``raw_embedding`` gives the model's output as it is (insightface's ``Face.embedding``)."""

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
        # glintr100 and w600k_r50 were exported from PyTorch: (pixel - 127.5) / 127.5;
        # mxnet exports subtract and scale inside the graph and get raw pixels.
        try:
            raw_pixels = builtin_normalisation(first_node_names(self.path))
        except (ValueError, IndexError) as e:
            raise InsightFaceModelError(f"{self.path} is not a readable ONNX graph ({e}); download it again") from e
        self.input_mean, self.input_std = (0.0, 1.0) if raw_pixels else (127.5, 127.5)

    def raw_embedding(self, image, keypoints: np.ndarray) -> np.ndarray:
        """The model's (D,) output for the face whose 5 keypoints are given, not normalised."""
        crop = align_face(to_rgb_uint8(image), np.asarray(keypoints, np.float32))
        blob = ((crop.astype(np.float32) - self.input_mean) / self.input_std).transpose(2, 0, 1)[None]   # RGB, NCHW
        (features,) = self.session.run(None, {self.input_name: blob})[:1]
        return np.asarray(features, np.float32).reshape(-1)

    def embed(self, image, keypoints: np.ndarray) -> np.ndarray:
        return l2_normalise(self.raw_embedding(image, keypoints))
