"""SCRFD, insightface's face detector: anchor-free distance decoding on a feature pyramid.

For each pyramid level with stride s the network predicts, at every cell (and for each
of its anchors), a score, four distances (left, top, right, bottom) and ten keypoint
offsets, all in units of s. A cell's centre is (col * s, row * s):

    box = (cx - l*s, cy - t*s, cx + r*s, cy + b*s)
    keypoint k = (cx + dx_k*s, cy + dy_k*s)

The 5 keypoints come out in insightface order (image-left eye first), which is
``faces.KEYPOINT_NAMES``.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.geometry import DEFAULT_MIN_FACE, finish, nms
from ..faces.records import Detection
from ..image_io import to_rgb_uint8
from .packs import InsightFaceModelError, InsightFacePack, load_session

# number of ONNX outputs -> (strides, anchors per cell, has keypoints); as in insightface's SCRFD.
_LAYOUTS = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """(height * width * num_anchors, 2) x, y centres, row-major, each cell repeated per anchor."""
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, num_anchors, axis=0)


def distances_to_boxes(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, 2) centres and (N, 4) left/top/right/bottom distances (pixels) -> (N, 4) x0, y0, x1, y1."""
    return np.concatenate([centers - distances[:, :2], centers + distances[:, 2:4]], axis=1)


def offsets_to_keypoints(centers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, 2) centres and (N, 2K) x/y offsets (pixels) -> (N, K, 2) keypoints."""
    return centers[:, None, :] + offsets.reshape(len(offsets), -1, 2)


# SCRFD's finest anchors (stride 8, 16 px) find faces from about this size at the model's input.
SMALLEST_FACE = 16
# Dynamic-size models get the image at a side in this range (multiples of 32, the coarsest stride).
MIN_INPUT, MAX_INPUT = 640, 1920


def input_side(height: int, width: int, min_face: float) -> int:
    """The square input side for a dynamic-size SCRFD: small enough to be quick, large enough that a
    min_face face keeps SMALLEST_FACE pixels; a multiple of 32 within MIN/MAX_INPUT (like insightface,
    images smaller than MIN_INPUT are enlarged)."""
    side = max(height, width) * min(1.0, SMALLEST_FACE / max(min_face, 1.0))
    return int(np.clip(32 * np.ceil(side / 32), MIN_INPUT, MAX_INPUT))


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into the top-left of a black (height, width) canvas; return it and the scale."""
    height, width = size
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return canvas, scale


def decode_level(scores, box_distances, kps_offsets, stride, num_anchors, grid_hw, threshold):
    """One pyramid level's raw outputs -> (scores (M,), boxes (M, 4), keypoints (M, 5, 2)) above threshold."""
    height, width = grid_hw
    centers = anchor_centers(height, width, stride, num_anchors)
    scores = scores.reshape(-1)
    if len(scores) != len(centers):
        raise ValueError(f"stride {stride}: {len(scores)} scores for a {height}x{width}x{num_anchors} grid")
    keep = np.flatnonzero(scores >= threshold)
    centers = centers[keep]
    boxes = distances_to_boxes(centers, box_distances.reshape(-1, 4)[keep] * stride)
    kps = offsets_to_keypoints(centers, kps_offsets.reshape(-1, 10)[keep] * stride)
    return scores[keep], boxes, kps


class InsightFaceDetector:
    """SCRFD from an insightface pack: ``detect(image) -> list[Detection]`` in image pixels."""

    name = "insightface"

    def __init__(self, pack: InsightFacePack, min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0,
                 score_threshold: float = 0.5, nms_threshold: float = 0.4):
        self.path = pack.detector
        self.session = load_session(pack.detector)
        outputs = self.session.get_outputs()
        layout = _LAYOUTS.get(len(outputs))
        if layout is None or not layout[2]:
            raise InsightFaceModelError(
                f"{self.path} is not an SCRFD face detector with keypoints ({len(outputs)} outputs); "
                f"use the {pack.name} pack's own detector file")
        self.strides, self.num_anchors, _ = layout
        self.output_names = [o.name for o in outputs]
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = [d if isinstance(d, int) else None for d in model_input.shape[2:4]]
        # a model exported with a fixed input size must get exactly that size
        self.fixed_hw = (fixed[0], fixed[1]) if None not in fixed else None
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def _run(self, canvas: np.ndarray) -> list[np.ndarray]:
        # insightface normalisation: (pixel - 127.5) / 128, RGB, NCHW
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(self.output_names, {self.input_name: blob})
        return [o[0] if o.ndim == 3 else o for o in outs]   # some exports keep a batch axis

    def detect(self, image) -> list[Detection]:
        image = to_rgb_uint8(image)
        h, w = image.shape[:2]
        input_hw = self.fixed_hw or (input_side(h, w, self.min_face),) * 2
        canvas, scale = letterbox(image, input_hw)
        outs = self._run(canvas)
        levels = len(self.strides)
        decoded = []
        for i, stride in enumerate(self.strides):
            grid = (input_hw[0] // stride, input_hw[1] // stride)
            try:
                decoded.append(decode_level(outs[i], outs[i + levels], outs[i + 2 * levels], stride,
                                          self.num_anchors, grid, self.score_threshold))
            except ValueError as e:
                raise InsightFaceModelError(f"{self.path} does not produce SCRFD outputs: {e}") from e
        scores = np.concatenate([d[0] for d in decoded])
        boxes = np.concatenate([d[1] for d in decoded]) / scale
        kps = np.concatenate([d[2] for d in decoded]) / scale
        boxes = np.clip(boxes, 0, [w, h, w, h])
        found = [Detection(box=boxes[k].astype(np.float32), score=float(scores[k]),
                           keypoints=kps[k].astype(np.float32), source=self.name) for k in range(len(scores))]
        return finish(nms(found, self.nms_threshold), self.min_face, self.max_faces)
