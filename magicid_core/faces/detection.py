"""Face detectors: image in, ``list[Detection]`` out (box, score, 5 InstantID keypoints).

Backends:
- ``mediapipe``: mediapipe's full-range BlazeFace run on overlapping square tiles at
  several scales, merged by non-maximum suppression. On the whole frame the model sees a
  192x192 copy, so a 40 px face in a 1200 px group photo shrinks to 6 px and is lost;
  each tile instead brings faces of one size band to 1/9..1/4 (small pictures: 1/7..) of the model's input.
- ``dlib_hog`` / ``dlib_cnn``: dlib's HOG and CNN (MMOD) detectors on the image enlarged for
  min_face (``faces.dlib_stack``); installs on every Python.
- ``insightface``: SCRFD from an insightface model pack (``magicid_core.insightface``), when
  its files are found.

``make_detector(name, min_face=..., max_faces=...)`` picks one; ``"auto"`` takes the first of
insightface (models found), mediapipe (0.10.21 importable), dlib_hog that loads.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol

import cv2
import numpy as np

from ..optional import require_mediapipe
from .dlib_stack import DlibCnnDetector, DlibHogDetector
from ..progress import Progress
from .geometry import DEFAULT_MIN_FACE, finish, five_keypoints, nms
from .records import Detection


class FaceDetector(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray, progress: Progress | None = None) -> list[Detection]:
        """(H, W, 3) uint8 RGB -> detections, best first; progress(done, total) over its model runs."""


# --------------------------------------------------------------------------- mediapipe tiles

@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    side: int
    interior: bool = True  # False for the whole-frame pass, which has no inner edges


MODEL_INPUT = 192     # the full-range BlazeFace input side
# A tile is 7 to 9x the smallest face it must find. Measured on real faces (insightface's t1.jpg,
# the cameraman, the sample's portraits) placed at 25 places of a tile: at side/7 nearly every face
# is found at every place; at side/9 most are, but a face low in the tile can be lost; at side/12
# (the old setting, which lost one of t1.jpg's six faces at 427x295) many are found at only some
# places. Whether a small face is found depends on where it falls on the model's grid, so a picture
# gets as many of the 7x, 8x and 9x plans (each its own scales and places) as fit in MAX_RUNS model
# runs, finest first: a 640x400 picture all three (29 runs), a 1200x600 one the 8x plan (30), a
# 1280x886 one the 9x plan (31; it had 16 with the old 12x tiles in 3x levels).
TILE_PER_FACE = (7, 8, 9)   # tried finest first
MAX_RUNS = 32
LEVEL_RATIO = 2       # each level's tiles are 2x the previous level's (3x needs more overlap: more tiles)
HOLD_MARGIN = 1.25    # a level holds whole faces up to 1.25x the next level's smallest
NEAR_WHOLE = 0.8      # tiles at least this fraction of the image side are left to the whole-frame pass


def _axis_starts(length: int, side: int, stride: int) -> list[int]:
    if length <= side:
        return [0]
    n = math.ceil((length - side) / stride) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def tile_plan(height: int, width: int, min_face: float, tile_per_face=TILE_PER_FACE,
              level_ratio: float = LEVEL_RATIO, max_runs: int = MAX_RUNS) -> list[Tile]:
    """Square tiles, finest first, ending with the whole frame (letterboxed): the plans of
    ``tile_per_face`` (a number, or several tried finest first) that fit together in max_runs
    tiles, or the last plan alone when none fits."""
    choices = [tile_per_face] if isinstance(tile_per_face, (int, float)) else list(tile_per_face)
    tiles: list[Tile] = []
    for per_face in choices:
        plan = [t for t in _plan(height, width, min_face, per_face, level_ratio) if t not in tiles]
        if len(tiles) + len(plan) <= max_runs:
            tiles += plan
    if not tiles:
        tiles = _plan(height, width, min_face, choices[-1], level_ratio)
    return sorted(tiles, key=lambda t: (not t.interior, t.side))   # the plans share one whole-frame tile


def _plan(height: int, width: int, min_face: float, tile_per_face: float, level_ratio: float) -> list[Tile]:
    """Level k has side T_k = p * min_face * r^k (p = tile_per_face, r = level_ratio) and finds faces
    from T_k / p up; faces from T_{k+1} / p up are also the next level's job, so the stride
    T_k - 1.25 T_{k+1} / p only has to leave every face below that size whole in at least one tile.
    """
    big = max(height, width)
    sides = [max(int(round(tile_per_face * min_face)), MODEL_INPUT)]
    while sides[-1] * level_ratio < big:
        sides.append(int(round(sides[-1] * level_ratio)))
    # A level this close to the whole frame adds nothing, unless the whole frame cannot find a
    # min_face face (it finds faces from big / p up): then the finest level stays, even if its
    # tiles nearly cover the image (a 320 px image with 32 px faces needs its 288 px tiles at 9x).
    finest = sides[0]
    sides = [t for t in sides if t < NEAR_WHOLE * big]
    if not sides and big > tile_per_face * min_face:
        sides = [finest]
    tiles: list[Tile] = []
    for k, side in enumerate(sides):
        next_side = sides[k + 1] if k + 1 < len(sides) else big
        stride = max(side - int(HOLD_MARGIN * next_side / tile_per_face), side // 4)
        tiles += [Tile(x0, y0, side) for y0 in _axis_starts(height, side, stride)
                  for x0 in _axis_starts(width, side, stride)]
    tiles.append(Tile(0, 0, big, interior=False))
    return tiles


# The tiles are independent and mediapipe's graph runs without the GIL, so on 2+ cores they run
# two at a time, each thread on a graph of its own (a graph takes one image at a time): a 1280x886
# photo's 31 tile runs take about the wall time of 16.
TILE_THREADS = max(1, min(2, os.cpu_count() or 1))
_MEDIAPIPE_LOCK = threading.Lock()
_MEDIAPIPE_POOLS: dict = {}


def _mediapipe_graphs(model_selection: int, min_score: float, count: int) -> queue.Queue:
    """A pool of at least ``count`` mediapipe FaceDetection graphs per setting, built once (~50 ms
    each); a thread takes one out for a tile and puts it back."""
    key = (model_selection, round(min_score, 3))
    with _MEDIAPIPE_LOCK:
        pool, built = _MEDIAPIPE_POOLS.get(key, (queue.Queue(), 0))
        for _ in range(count - built):
            pool.put(require_mediapipe("the mediapipe face detector").solutions.face_detection.FaceDetection(
                model_selection=model_selection, min_detection_confidence=min_score))
        _MEDIAPIPE_POOLS[key] = pool, max(built, count)
        return pool


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
                 tiled: bool = True, tile_per_face=TILE_PER_FACE, level_ratio: float = LEVEL_RATIO,
                 tile_threads: int | None = None):
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        self.min_score = float(min_score)
        self.tiled = tiled
        self.tile_per_face, self.level_ratio = tile_per_face, float(level_ratio)   # see tile_plan
        self.tile_threads = tile_threads      # tiles run at once; None: TILE_THREADS
        require_mediapipe("the mediapipe face detector")   # fail here, where "auto" can move on
        self.calls = 0  # model runs of the last detect(), for benchmarks and tests

    def detect(self, image_rgb: np.ndarray, progress: Progress | None = None) -> list[Detection]:
        h, w = image_rgb.shape[:2]
        tiles = (tile_plan(h, w, self.min_face, self.tile_per_face, self.level_ratio) if self.tiled
                 else [Tile(0, 0, max(h, w), interior=False)])
        n_threads = self.tile_threads or TILE_THREADS
        graphs = _mediapipe_graphs(1, self.min_score, n_threads)
        levels = {}
        for side in sorted({t.side for t in tiles}):
            # One resize per level: the image at the scale where this level's tiles are 192 px.
            scale = MODEL_INPUT / side
            levels[side] = scale, image_rgb if scale == 1 else cv2.resize(
                image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

        ran: list[Tile] = []

        def run(tile: Tile) -> list[Detection]:
            graph = graphs.get()
            try:
                ran.append(tile)
                return self._detect_tile(graph, levels[tile.side][1], levels[tile.side][0], tile, (h, w))
            finally:
                graphs.put(graph)

        found: list[Detection] = []
        threads = ThreadPoolExecutor(max_workers=n_threads)
        try:
            for done, dets in enumerate(threads.map(run, tiles), 1):   # in order; progress on this thread
                found += dets
                if progress is not None:
                    progress(done, len(tiles))
        finally:   # a cancel (progress raising) drops the tiles not yet started
            threads.shutdown(wait=True, cancel_futures=True)
            self.calls = len(ran)
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
    "dlib_cnn": DlibCnnDetector,
}
# Backends tried in order by "auto"; a factory that raises (models or package missing) is skipped.
AUTO_ORDER: list[str] = ["insightface", "mediapipe", "dlib_hog"]
BACKENDS = ("auto", "mediapipe", "dlib_hog", "dlib_cnn", "insightface")
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
