"""Face detectors: image in, ``list[Detection]`` out (box, score, 5 InstantID keypoints).

Backends:
- ``mediapipe``: mediapipe's full-range BlazeFace run on overlapping square tiles at
  several scales, merged by non-maximum suppression. On the whole frame the model sees a
  192x192 copy, so a 40 px face in a 1200 px group photo shrinks to 6 px and is lost;
  each tile instead brings faces of one size band to 1/12..1/3 of the model's input.
- ``dlib_hog``: dlib's HOG + linear SVM frontal detector, 5-point landmarks for the eyes.
- ``insightface``: SCRFD from an insightface model pack (``magicid_core.insightface``), when
  its files are found.

``make_detector(name, min_face=..., max_faces=...)`` picks one; ``"auto"`` prefers
insightface when it is registered and its models are found, else mediapipe.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from .records import Detection
from .geometry import DEFAULT_MIN_FACE, finish, five_keypoints, nms

class FaceDetector(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 RGB -> detections, best first."""


# --------------------------------------------------------------------------- mediapipe tiles

@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    side: int
    interior: bool = True  # False for the whole-frame pass, which has no inner edges


MODEL_INPUT = 192     # the full-range BlazeFace input side
TILE_PER_FACE = 12    # a tile is 12x the smallest face it must find (measured: found down to side/14)
LEVEL_RATIO = 3       # each level's tiles are 3x the previous level's
HOLD_MARGIN = 1.25    # a level holds whole faces up to 1.25x the next level's smallest
NEAR_WHOLE = 0.8      # tiles at least this fraction of the image side are left to the whole-frame pass


def _axis_starts(length: int, side: int, stride: int) -> list[int]:
    if length <= side:
        return [0]
    n = math.ceil((length - side) / stride) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def tile_plan(height: int, width: int, min_face: float) -> list[Tile]:
    """Square tiles, finest level first, ending with the whole frame (letterboxed).

    Level k has side T_k = 12 * min_face * 3^k and finds faces from T_k / 12 up; faces from
    T_{k+1} / 12 up are also the next level's job, so the stride T_k - 1.25 T_{k+1} / 12
    only has to leave every face below that size whole in at least one tile.
    """
    big = max(height, width)
    sides = [max(int(round(TILE_PER_FACE * min_face)), MODEL_INPUT)]
    while sides[-1] * LEVEL_RATIO < big:
        sides.append(sides[-1] * LEVEL_RATIO)
    sides = [t for t in sides if t < NEAR_WHOLE * big]  # a level this close to the whole frame adds nothing
    tiles: list[Tile] = []
    for k, side in enumerate(sides):
        next_side = sides[k + 1] if k + 1 < len(sides) else big
        stride = max(side - int(HOLD_MARGIN * next_side / TILE_PER_FACE), side // 4)
        tiles += [Tile(x0, y0, side) for y0 in _axis_starts(height, side, stride)
                  for x0 in _axis_starts(width, side, stride)]
    tiles.append(Tile(0, 0, big, interior=False))
    return tiles


_MEDIAPIPE_LOCK = threading.Lock()
_MEDIAPIPE_MODELS: dict = {}


def _mediapipe_face_detection(model_selection: int, min_score: float):
    """One shared mediapipe FaceDetection graph per setting (building one costs ~50 ms)."""
    key = (model_selection, round(min_score, 3))
    if key not in _MEDIAPIPE_MODELS:
        import mediapipe as mp

        _MEDIAPIPE_MODELS[key] = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_score)
    return _MEDIAPIPE_MODELS[key]


def _mediapipe_to_detection(det, x0: float, y0: float, scale: float) -> Detection:
    """A mediapipe detection on a square crop at (x0, y0) of `scale` px per unit -> image pixels."""
    bb = det.location_data.relative_bounding_box
    box = np.array([bb.xmin, bb.ymin, bb.xmin + bb.width, bb.ymin + bb.height], np.float32) * scale
    box += np.array([x0, y0, x0, y0], np.float32)
    # mediapipe's 6 keypoints: eye, eye, nose tip, mouth centre, ear, ear.
    kp = np.array([[k.x, k.y] for k in det.location_data.relative_keypoints], np.float32) * scale + (x0, y0)
    return Detection(box=box, score=float(det.score[0]), keypoints=five_keypoints(kp[0], kp[1], kp[2], kp[3]),
                     source="mediapipe")


class TiledMediapipeDetector:
    """mediapipe face detection over a pyramid of overlapping tiles, merged by NMS."""

    name = "mediapipe"

    def __init__(self, min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0, min_score: float = 0.5,
                 tiled: bool = True):
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        self.min_score = float(min_score)
        self.tiled = tiled
        self.calls = 0  # model runs of the last detect(), for benchmarks and tests

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        h, w = image_rgb.shape[:2]
        tiles = tile_plan(h, w, self.min_face) if self.tiled else [Tile(0, 0, max(h, w), interior=False)]
        found: list[Detection] = []
        with _MEDIAPIPE_LOCK:
            model = _mediapipe_face_detection(1, self.min_score)
            for side in sorted({t.side for t in tiles}):
                # One resize per level: the image at the scale where this level's tiles are 192 px.
                scale = MODEL_INPUT / side
                level = image_rgb if scale == 1 else cv2.resize(
                    image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                    interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
                for tile in (t for t in tiles if t.side == side):
                    found += self._detect_tile(model, level, scale, tile, (h, w))
        self.calls = len(tiles)
        return finish(nms(found), self.min_face, self.max_faces)

    @staticmethod
    def _detect_tile(model, level: np.ndarray, scale: float, tile: Tile, size: tuple[int, int]) -> list[Detection]:
        """Run the model on one tile of the level image; detections in full-image pixels."""
        x0, y0 = round(tile.x0 * scale), round(tile.y0 * scale)
        crop = level[y0:y0 + MODEL_INPUT, x0:x0 + MODEL_INPUT]
        if crop.shape[:2] != (MODEL_INPUT, MODEL_INPUT):  # pad to the model's square (black)
            crop = cv2.copyMakeBorder(crop, 0, MODEL_INPUT - crop.shape[0], 0, MODEL_INPUT - crop.shape[1],
                                      cv2.BORDER_CONSTANT, value=0)
        result = model.process(np.ascontiguousarray(crop))
        # The crop starts at the rounded level pixel (x0, y0): map from there, not from the tile.
        dets = [_mediapipe_to_detection(d, x0 / scale, y0 / scale, MODEL_INPUT / scale)
                for d in (result.detections or [])]
        if not tile.interior:
            return dets
        # Faces touching an inner tile edge are cut; a neighbour tile holds them whole.
        h, w = size
        margin = 0.02 * tile.side
        inner = (tile.x0 > 0, tile.y0 > 0, tile.x0 + tile.side < w, tile.y0 + tile.side < h)
        edges = (tile.x0 + margin, tile.y0 + margin, tile.x0 + tile.side - margin, tile.y0 + tile.side - margin)

        def whole(d: Detection) -> bool:
            b = d.box
            return not ((inner[0] and b[0] < edges[0]) or (inner[1] and b[1] < edges[1])
                        or (inner[2] and b[2] > edges[2]) or (inner[3] and b[3] > edges[3]))

        return [d for d in dets if whole(d)]


# --------------------------------------------------------------------------- dlib HOG

def face_recognition_models_dir() -> Path:
    """The folder of the face_recognition_models package's shipped .dat files.

    The package's own ``__init__`` needs pkg_resources, so it is located, not imported.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the package face_recognition_models is not installed: pip install face_recognition_models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibHogDetector:
    """dlib's frontal HOG detector; eyes and nose from the 5-point shape predictor."""

    name = "dlib_hog"
    SMALLEST = 80  # dlib's HOG window finds faces from ~80 px; each upsampling halves that

    def __init__(self, min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0):
        import dlib

        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        # Upsample the image until faces of min_face px reach the HOG window (at most 4x).
        self.upsample = int(min(2, max(0, math.ceil(math.log2(self.SMALLEST / max(self.min_face, 1.0))))))
        path = face_recognition_models_dir() / "shape_predictor_5_face_landmarks.dat"
        if not path.is_file():
            raise ValueError(f"dlib landmarks file missing: expected {path.name} in {path.parent}")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self._rect = dlib.rectangle

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(image_rgb, self.upsample, 0.0)
        dets = []
        for r, s in zip(rects, scores):
            shape = self._predictor(image_rgb, r)
            p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32)
            # 5-point model: two corners of each eye (0-1, 2-3) and the base of the nose (4).
            kps = five_keypoints(p[0:2].mean(0), p[2:4].mean(0), p[4])
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32)
            # HOG margin -> a 0..1 confidence (margin 0 is the detector's own threshold).
            dets.append(Detection(box=box, score=float(1 / (1 + math.exp(-2 * s))), keypoints=kps, source=self.name))
        return finish(nms(dets), self.min_face, self.max_faces)


# --------------------------------------------------------------------------- registry

def _insightface_detector(min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0, insightface_roots=None):
    """SCRFD from the first insightface pack found (see magicid_core.insightface.find_pack)."""
    from ..insightface import InsightFaceDetector, find_pack

    return InsightFaceDetector(find_pack(insightface_roots), min_face=min_face, max_faces=max_faces)


# name -> factory(min_face=..., max_faces=...) returning a FaceDetector.
DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "insightface": _insightface_detector,
    "mediapipe": TiledMediapipeDetector,
    "dlib_hog": DlibHogDetector,
}
# Backends tried in order by "auto"; a factory that raises (e.g. models missing) is skipped.
AUTO_ORDER: list[str] = ["insightface", "mediapipe"]
BACKENDS = ("auto", "mediapipe", "dlib_hog", "insightface")
# Backends that read model files from a folder the caller names (ComfyUI's models/insightface).
_TAKES_INSIGHTFACE_ROOTS = {"insightface"}


def register_detector(name: str, factory: Callable[..., FaceDetector], prefer_in_auto: bool = False) -> None:
    """REGISTRATION POINT for further backends.

    ``factory(min_face=..., max_faces=...)`` returns an object with ``.name`` and
    ``.detect(image_rgb_uint8) -> list[Detection]``; it raises ValueError (naming the folder
    and the files expected) when its model files are missing, so "auto" moves on to the next
    backend. prefer_in_auto puts it first in "auto"'s order.
    """
    DETECTORS[name] = factory
    if prefer_in_auto and name not in AUTO_ORDER:
        AUTO_ORDER.insert(0, name)


def _build(name: str, min_face: float, max_faces: int, insightface_roots) -> FaceDetector:
    options = {"insightface_roots": insightface_roots} if name in _TAKES_INSIGHTFACE_ROOTS else {}
    return DETECTORS[name](min_face=min_face, max_faces=max_faces, **options)


def make_detector(name: str = "auto", min_face: float = DEFAULT_MIN_FACE, max_faces: int = 0,
                  insightface_roots=None) -> FaceDetector:
    """A detector by backend name; see BACKENDS. ``insightface_roots``: folder(s) holding the
    insightface packs (None = $MAGICID_INSIGHTFACE_DIR)."""
    if name == "auto":
        errors = []
        for candidate in AUTO_ORDER:
            try:
                return _build(candidate, min_face, max_faces, insightface_roots)
            except (ValueError, FileNotFoundError, ImportError) as e:  # models missing: try the next one
                errors.append(f"{candidate}: {e}")
        raise ValueError("no face detector backend is usable: " + "; ".join(errors))
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return _build(name, min_face, max_faces, insightface_roots)
