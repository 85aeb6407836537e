"""SCRFD, insightface's face detector: anchor-free distance decoding on a feature pyramid.

For each pyramid level with stride s the network predicts, at every cell (and for each
of its anchors), a score, four distances (left, top, right, bottom) and ten keypoint
offsets, all in units of s. A cell's centre is (col * s, row * s):

    box = (cx - l*s, cy - t*s, cx + r*s, cy + b*s)
    keypoint k = (cx + dx_k*s, cy + dy_k*s)

The 5 keypoints come out in insightface order (image-left eye first), which is
``faces.KEYPOINT_NAMES``.

Resizing, decoding, NMS and the ``max_faces`` ranking follow insightface's
``model_zoo/scrfd.py`` step for step (tests/test_insightface_parity.py holds them to it).
Three policies of the pack's own are named settings of :class:`InsightFaceDetector`;
``INSIGHTFACE_SETTINGS`` turns them all to insightface's behaviour:

- ``min_face``: faces whose box is clearly smaller are dropped (insightface keeps all);
- ``det_size``: None grows the model input for small faces (insightface: a fixed 640);
- ``clip_boxes``: boxes are clipped to the image (insightface lets them run past its edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..faces.geometry import DEFAULT_MIN_FACE, MIN_FACE_TOLERANCE
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

# insightface's own choices: the det_size every FaceID / InstantID node prepares, and its thresholds.
INSIGHTFACE_DET_SIZE = 640
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4
# The pack's settings that make InsightFaceDetector compute what insightface computes.
INSIGHTFACE_SETTINGS = {"min_face": 0, "det_size": INSIGHTFACE_DET_SIZE, "clip_boxes": False}


def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """(height * width * num_anchors, 2) x, y centres, row-major, each cell repeated per anchor."""
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, num_anchors, axis=0)


def distances_to_boxes(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, 2) centres and (N, 4) left/top/right/bottom distances (pixels) -> (N, 4) x0, y0, x1, y1."""
    return np.concatenate([centers - distances[:, :2], centers + distances[:, 2:4]], axis=1)


def offsets_to_keypoints(centers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, 2) centres and (N, 2K) x/y offsets (pixels) -> (N, K, 2) keypoints (N may be 0)."""
    return centers[:, None, :] + offsets.reshape(len(offsets), offsets.shape[1] // 2, 2)


# SCRFD's finest anchors (stride 8, 16 px) find faces from about this size at the model's input.
SMALLEST_FACE = 16
# Dynamic-size models get the image at a side in this range (multiples of 32, the coarsest stride).
MIN_INPUT, MAX_INPUT = INSIGHTFACE_DET_SIZE, 1920


def input_side(height: int, width: int, min_face: float) -> int:
    """The square input side for a dynamic-size SCRFD: small enough to be quick, large enough that a
    min_face face keeps SMALLEST_FACE pixels; a multiple of 32 within MIN/MAX_INPUT (like insightface,
    images smaller than MIN_INPUT are enlarged)."""
    side = max(height, width) * min(1.0, SMALLEST_FACE / max(min_face, 1.0))
    return int(np.clip(32 * np.ceil(side / 32), MIN_INPUT, MAX_INPUT))


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize into the top-left of a black (height, width) canvas exactly as insightface does; the canvas and scale.

    insightface fits the side that binds, truncates the other (``int``), takes the scale from the
    height actually used (not min(H/h, W/w): the two differ by up to a pixel's worth) and resizes
    with cv2's default bilinear interpolation, also when shrinking.
    """
    height, width = size
    h, w = image.shape[:2]
    image_ratio = float(h) / w
    if image_ratio > float(height) / width:
        new_h, new_w = height, int(height / image_ratio)
    else:
        new_w, new_h = width, int(width * image_ratio)
    new_w, new_h = max(new_w, 1), max(new_h, 1)   # a 1-pixel sliver instead of a cv2 error
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, float(new_h) / h


def decode_level(scores, box_distances, kps_offsets, stride, num_anchors, grid_hw, threshold):
    """One pyramid level's raw outputs -> (scores (M,), boxes (M, 4), keypoints (M, 5, 2) or None) above
    threshold, in model-input pixels; M may be 0 (no face of this level's size)."""
    height, width = grid_hw
    centers = anchor_centers(height, width, stride, num_anchors)
    scores = scores.reshape(-1)
    if len(scores) != len(centers):
        raise ValueError(f"stride {stride}: {len(scores)} scores for a {height}x{width}x{num_anchors} grid")
    keep = np.flatnonzero(scores >= threshold)
    centers = centers[keep]
    boxes = distances_to_boxes(centers, box_distances.reshape(-1, 4)[keep] * stride)
    kps = None if kps_offsets is None else offsets_to_keypoints(centers, kps_offsets.reshape(-1, 10)[keep] * stride)
    return scores[keep], boxes, kps


def insightface_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by insightface's greedy NMS: best score first (ties: earlier first); a box goes when its
    IoU with a kept one exceeds threshold. Areas count pixels inclusively (+1), as insightface does."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / (areas[i] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)


def rank_for_max_faces(boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """insightface's ``max_num`` order: box area minus twice the squared distance of its centre from the
    image centre, largest first: big faces near the middle win over the most confident ones."""
    centre_y, centre_x = image_hw[0] // 2, image_hw[1] // 2
    offsets = np.vstack([(boxes[:, 0] + boxes[:, 2]) / 2 - centre_x, (boxes[:, 1] + boxes[:, 3]) / 2 - centre_y])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.argsort(area - np.sum(np.power(offsets, 2.0), 0) * 2.0)[::-1]


@dataclass
class SCRFDResult:
    """Detections in image pixels, in insightface's order: boxes (N, 4), scores (N,), keypoints (N, 5, 2)
    or None for a detector without keypoints."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None

    def take(self, index: np.ndarray) -> SCRFDResult:
        return SCRFDResult(self.boxes[index], self.scores[index],
                           None if self.keypoints is None else self.keypoints[index])


class InsightFaceDetector:
    """SCRFD from an insightface pack: ``detect(image) -> list[Detection]`` in image pixels.

    ``min_face`` (px, 0 = off), ``det_size`` (None = grow for small faces, else insightface's fixed
    square side) and ``clip_boxes`` are the pack's policies (see the module docstring);
    ``max_faces`` keeps the faces insightface's ``max_num`` keeps. A detector file without keypoints
    (6 or 10 outputs) is read only with ``need_keypoints=False``, for :meth:`detect_arrays`.
    """

    name = "insightface"

    def __init__(self, pack: InsightFacePack, min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0,
                 score_threshold: float = SCORE_THRESHOLD, nms_threshold: float = NMS_THRESHOLD,
                 det_size: int | None = None, clip_boxes: bool = True, need_keypoints: bool = True):
        self.path = pack.detector
        self.session = load_session(pack.detector)
        outputs = self.session.get_outputs()
        layout = _LAYOUTS.get(len(outputs))
        if layout is None or (need_keypoints and not layout[2]):
            raise InsightFaceModelError(
                f"{self.path} is not an SCRFD face detector with keypoints ({len(outputs)} outputs); "
                f"use the {pack.name} pack's own detector file")
        self.strides, self.num_anchors, self.has_keypoints = layout
        self.output_names = [o.name for o in outputs]
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = [d if isinstance(d, int) and d > 0 else None for d in model_input.shape[2:4]]
        # a model exported with a fixed input size must get exactly that size
        self.fixed_hw = (fixed[0], fixed[1]) if None not in fixed else None
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.det_size = det_size
        self.clip_boxes = clip_boxes

    def input_hw(self, height: int, width: int) -> tuple[int, int]:
        """The model input (height, width) for an image of this size."""
        if self.fixed_hw:
            return self.fixed_hw
        side = self.det_size or input_side(height, width, self.min_face)
        return side, side

    def raw_outputs(self, canvas: np.ndarray) -> list[np.ndarray]:
        """The network's outputs for a letterboxed canvas, batch axis removed, in insightface's order."""
        # insightface normalisation: (pixel - 127.5) / 128, RGB, NCHW
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(self.output_names, {self.input_name: blob})
        return [o[0] if o.ndim == 3 else o for o in outs]   # some exports keep a batch axis

    def _decode(self, outs: list[np.ndarray], input_hw: tuple[int, int]) -> SCRFDResult:
        """All levels above the score threshold, in model-input pixels, best score first."""
        levels = len(self.strides)
        decoded = []
        for i, stride in enumerate(self.strides):
            grid = (input_hw[0] // stride, input_hw[1] // stride)
            kps = outs[i + 2 * levels] if self.has_keypoints else None
            try:
                decoded.append(decode_level(outs[i], outs[i + levels], kps, stride, self.num_anchors, grid,
                                            self.score_threshold))
            except ValueError as e:
                raise InsightFaceModelError(f"{self.path} does not produce SCRFD outputs: {e}") from e
        found = SCRFDResult(np.concatenate([d[1] for d in decoded]), np.concatenate([d[0] for d in decoded]),
                            np.concatenate([d[2] for d in decoded]) if self.has_keypoints else None)
        return found.take(np.argsort(-found.scores, kind="stable"))

    def detect_arrays(self, image) -> SCRFDResult:
        """The detections as arrays, after NMS, the pack's policies and the ``max_faces`` choice."""
        image = to_rgb_uint8(image)
        h, w = image.shape[:2]
        input_hw = self.input_hw(h, w)
        canvas, scale = letterbox(image, input_hw)
        found = self._decode(self.raw_outputs(canvas), input_hw)
        found.boxes = found.boxes / scale
        if found.keypoints is not None:
            found.keypoints = found.keypoints / scale
        found = found.take(insightface_nms(found.boxes, found.scores, self.nms_threshold))
        if self.min_face > 0:
            sides = np.minimum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
            found = found.take(np.flatnonzero(sides >= MIN_FACE_TOLERANCE * self.min_face))
        if 0 < self.max_faces < len(found.scores):
            found = found.take(rank_for_max_faces(found.boxes, (h, w))[:self.max_faces])
        if self.clip_boxes:
            found.boxes = np.clip(found.boxes, 0, np.array([w, h, w, h], np.float32))
        return found

    def detect(self, image) -> list[Detection]:
        if not self.has_keypoints:
            raise InsightFaceModelError(f"{self.path} gives no face keypoints; the pack needs them to align faces")
        found = self.detect_arrays(image)
        return [Detection(box=found.boxes[k].astype(np.float32), score=float(found.scores[k]),
                          keypoints=found.keypoints[k].astype(np.float32), source=self.name)
                for k in range(len(found.scores))]
