"""The face stack that installs everywhere: dlib-bin with the weights of ``face_recognition_models``.

That package ships five files, all used here or in ``identity``:

- ``HOG``: dlib's frontal HOG + linear SVM detector (inside dlib itself);
- ``mmod_human_face_detector.dat``: the CNN (MMOD) detector, more robust, ~25x slower on CPU;
- ``shape_predictor_5_face_landmarks.dat``: eye corners and nose base, for the 5 keypoints;
- ``shape_predictor_68_face_landmarks.dat``: the iBUG 68-point layout (jaw, brows, nose, eyes, lips),
  the layout OpenPose's face keypoints use;
- ``dlib_face_recognition_resnet_model_v1.dat``: the 128-d identity descriptor (``identity.DlibEmbedder``).

Both detectors scan a fixed window over an image pyramid that only shrinks, so they cannot
see a face smaller than their window. To keep the ``min_face`` promise the image is
enlarged first, by exactly the factor that brings a ``min_face`` face to the window's size
(continuous, not dlib's 2x steps: the cost grows with the square of the factor).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..optional import MissingPackageError, missing_message, require
from .geometry import finish, five_keypoints, nms
from .records import Detection

HOG_FILE = None   # built into dlib
CNN_FILE = "mmod_human_face_detector.dat"
SHAPE5_FILE = "shape_predictor_5_face_landmarks.dat"
SHAPE68_FILE = "shape_predictor_68_face_landmarks.dat"

# Face height (chin to hairline, px) that each detector finds without enlarging the image:
# measured on tests/face_scenes.py's real portraits (HOG finds 64..72 px faces at scale 1, every
# face of 37..43 px at 2.2, a 31 px one only from 2.6; the CNN finds 38..43 px faces at 1.8, not at 1.56).
HOG_FACE_PX = 80.0
CNN_FACE_PX = 72.0
MAX_UPSCALE = 4.0   # beyond this dlib's time (and memory) is out of proportion


def face_recognition_models_dir() -> Path:
    """The folder of the face_recognition_models package's shipped .dat files.

    The package's own ``__init__`` needs pkg_resources, so it is located, not imported.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(missing_message("face_recognition_models", "the dlib face models"))
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(filename: str) -> Path:
    path = face_recognition_models_dir() / filename
    if not path.is_file():
        raise ValueError(f"dlib model file missing: expected {filename} in {path.parent}; "
                         "reinstall face_recognition_models (pip install --force-reinstall face_recognition_models)")
    return path


def _dlib(purpose: str):
    return require("dlib", purpose)


# One instance of each model per process: loading the 68-point predictor reads 100 MB.
HOG_THREADS = max(1, min(2, os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def hog_pool() -> queue.Queue:
    """HOG detectors for parallel scans: dlib's detector is not safe to share between threads,
    and the built-in one costs nothing to make, so each scan borrows one of its own."""
    pool: queue.Queue = queue.Queue()
    for _ in range(HOG_THREADS):
        pool.put(_dlib("the dlib HOG face detector").get_frontal_face_detector())
    return pool


@functools.lru_cache(maxsize=1)
def cnn_detector():
    return _dlib("the dlib CNN face detector").cnn_face_detection_model_v1(str(model_path(CNN_FILE)))


@functools.lru_cache(maxsize=2)
def shape_predictor(filename: str):
    return _dlib("dlib landmarks").shape_predictor(str(model_path(filename)))


_LOCK = threading.Lock()   # dlib models are not documented as thread-safe


def upscale_for(min_face: float, window_face_px: float) -> float:
    """The factor that makes a min_face face as large as the detector's window finds (0.25..MAX_UPSCALE)."""
    return float(np.clip(window_face_px / max(min_face, 1.0), 0.25, MAX_UPSCALE))


def resized(image: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def shape_points(image: np.ndarray, box: np.ndarray, filename: str) -> np.ndarray:
    """(N, 2) points of a dlib shape predictor run on the face in ``box`` (image pixels)."""
    dlib = _dlib("dlib landmarks")
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    with _LOCK:
        shape = shape_predictor(filename)(image, dlib.rectangle(x0, y0, x1, y1))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def keypoints_from_shape5(points: np.ndarray) -> np.ndarray:
    """dlib's 5 points (two corners of each eye, nose base) -> the 5 InstantID keypoints."""
    return five_keypoints(points[0:2].mean(0), points[2:4].mean(0), points[4])


def _finish(dets: list[Detection], min_face: float, max_faces: int) -> list[Detection]:
    return finish(nms(dets), min_face, max_faces)


# HOG's SVM margin does not separate faces from face-like things (a round mission patch scores
# 0.24, a real face in profile 0.12), so a detection below VERIFY_BELOW must also be found by the
# CNN on a small crop around it: measured on the test scenes, the CNN gives every real face
# ~1.0 there and every such look-alike nothing, at ~0.08 s per crop instead of seconds for the image.
VERIFY_BELOW = 0.6
VERIFY_BELOW_SCORE = 1 / (1 + math.exp(-2 * VERIFY_BELOW))   # the same margin as a detection score
# Measured on the 21 doubtful finds of the small-face set, t1.jpg and the sample (11 faces, 10
# look-alikes): a 1.5x crop with the box at 80 px confirms all 11 faces and none of the others;
# the earlier 2x crop at 64 px lost three small turned or tilted faces, and cost more.
VERIFY_FACE_PX = 80   # the crop is enlarged or shrunk so the box is this big (CNN window: 40 px)
VERIFY_CROP = 1.5     # crop side / box side
# HOG's own threshold (margin 0) drops small turned or low-contrast faces that score a little below
# it (the cameraman at 34..46 px: -0.22..0.02) and that the CNN confirms; below -0.25 come mostly
# look-alikes, each costing a CNN crop (~75 ms).
HOG_THRESHOLD = -0.25
# Those faces score low because HOG sees them enlarged from few pixels, blurred. The lower threshold
# is for finds up to LOW_MARGIN_UP_TO x min_face (box height): the 14 real faces the CNN confirms in
# the small-face set and t1.jpg at 427x295 have boxes of 29 to 41 px (min_face 32), while on the
# full-size group photos the one find below margin 0 is an 81 px look-alike the CNN rejects. A
# larger find needs HOG's own margin, as before the small-face work.
LOW_MARGIN_UP_TO = 1.5


def cnn_confirms(image: np.ndarray, box: np.ndarray, face_px: float = VERIFY_FACE_PX,
                 crop_per_box: float = VERIFY_CROP) -> bool:
    """True when dlib's CNN finds a face in a crop of crop_per_box x ``box`` with the box at face_px."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image.shape[:2]
    half = crop_per_box * side / 2
    crop = image[int(max(0, cy - half)):int(min(h, cy + half)), int(max(0, cx - half)):int(min(w, cx + half))]
    if crop.size == 0:
        return False
    crop = resized(crop, face_px / side)
    with _LOCK:
        return len(cnn_detector()(np.ascontiguousarray(crop), 0)) > 0


# dlib's HOG scan releases the GIL, so on 2+ cores the enlarged image is scanned as two
# overlapping horizontal bands at once. A face up to BAND_OVERLAP of the image height lies whole
# in one band; taller ones, which a band edge may cut, are left to a coarse whole-image scan,
# cheap because it needs little or no enlarging. Finds near a band's inner edge (where HOG's
# border cells differ from the whole image's) are dropped: a face up to half the overlap lies
# clear of that margin in the other band, a taller one is the coarse scan's. Bands start on HOG's
# 8 px cell grid, so the finest level (the smallest faces) sees the whole image's cells.
BAND_OVERLAP = 0.25
BAND_MIN_HEIGHT = 600   # enlarged images lower than this are scanned whole (too little to split)
HOG_CELL = 8
EDGE_MARGIN = 0.25      # of the overlap: finds closer than this to a band's inner edge are dropped
COARSE_FROM = 0.4       # the coarse scan finds faces from 0.4x the overlap, so the scans meet


def hog_bands(height: int) -> list[tuple[int, int]]:
    """Row ranges of an enlarged image of ``height`` rows, one per parallel HOG scan."""
    if HOG_THREADS < 2 or height < BAND_MIN_HEIGHT:
        return [(0, height)]
    overlap, middle = round(height * BAND_OVERLAP), height // 2
    start = (middle - overlap // 2) // HOG_CELL * HOG_CELL
    return [(0, middle + overlap // 2), (start, height)]


def hog_scan(work: np.ndarray, row0: int, row1: int, scale: float, edge: float, threshold: float):
    """(box in image pixels, SVM margin) of each face HOG finds in rows row0..row1 of ``work``
    (the image enlarged by ``scale``), without the finds within ``edge`` rows of an inner edge."""
    pool = hog_pool()
    detector = pool.get()
    try:
        rects, margins, _ = detector.run(np.ascontiguousarray(work[row0:row1]), 0, threshold)
    finally:
        pool.put(detector)
    found = []
    for r, margin in zip(rects, margins):
        top, bottom = r.top() + row0, r.bottom() + row0
        if (row0 > 0 and top <= row0 + edge) or (row1 < work.shape[0] and bottom >= row1 - edge):
            continue
        found.append((np.array([r.left(), top, r.right(), bottom], np.float32) / scale, float(margin)))
    return found


class DlibHogDetector:
    """dlib's frontal HOG detector on the image enlarged for min_face; doubtful finds confirmed by
    the CNN on a crop; keypoints from the 5-point predictor."""

    name = "dlib_hog"

    def __init__(self, min_face: float = 32.0, max_faces: int = 0, threshold: float | None = None,
                 verify: bool = True, verify_face_px: float = VERIFY_FACE_PX, verify_crop: float = VERIFY_CROP):
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        # SVM margin; 0 is dlib's own. None: HOG_THRESHOLD when doubtful finds are verified, else 0.
        self.threshold = float((HOG_THRESHOLD if verify else 0.0) if threshold is None else threshold)
        self.verify = verify
        self.verify_face_px, self.verify_crop = float(verify_face_px), float(verify_crop)   # see cnn_confirms
        self.scale = upscale_for(self.min_face, HOG_FACE_PX)
        hog_pool(), shape_predictor(SHAPE5_FILE)   # load now: a missing file is an error here, not later
        if verify:
            cnn_detector()

    def detect(self, image_rgb: np.ndarray, progress=None) -> list[Detection]:   # progress: see FaceDetector
        # gray: 20 % quicker than RGB at the same recall (the doubtful finds are verified anyway)
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        enlarged = resized(gray, self.scale)
        bands = hog_bands(enlarged.shape[0])
        overlap = bands[0][1] - bands[-1][0]   # enlarged rows; 0 with one band
        scans = [(enlarged, row0, row1, self.scale, EDGE_MARGIN * overlap) for row0, row1 in bands]
        if len(bands) > 1:
            coarse = min(self.scale, HOG_FACE_PX * self.scale / (COARSE_FROM * overlap))
            whole = resized(gray, coarse)
            scans.append((whole, 0, whole.shape[0], coarse, 0.0))
        with ThreadPoolExecutor(max_workers=HOG_THREADS) as threads:
            found = list(threads.map(lambda scan: hog_scan(*scan, threshold=self.threshold), scans))
        # SVM margin -> a 0..1 confidence (margin 0 is the detector's own threshold: 0.5)
        candidates = nms([Detection(box=box, score=1 / (1 + math.exp(-2 * margin)), keypoints=None, source=self.name)
                          for scan in found for box, margin in scan])
        dets = []
        for det in candidates:
            if det.score < 0.5 and det.box[3] - det.box[1] > LOW_MARGIN_UP_TO * self.min_face:
                continue        # below HOG's own margin, and too large to be a blurred small face
            if self.verify and det.score < VERIFY_BELOW_SCORE and not cnn_confirms(
                    image_rgb, det.box, self.verify_face_px, self.verify_crop):
                continue
            det.keypoints = keypoints_from_shape5(shape_points(image_rgb, det.box, SHAPE5_FILE))
            dets.append(det)
        return _finish(dets, self.min_face, self.max_faces)


class DlibCnnDetector:
    """dlib's CNN (MMOD) detector: finds turned and partly hidden faces HOG misses, ~25x slower on CPU."""

    name = "dlib_cnn"

    def __init__(self, min_face: float = 32.0, max_faces: int = 0):
        self.min_face = float(min_face)
        self.max_faces = int(max_faces)
        self.scale = upscale_for(self.min_face, CNN_FACE_PX)
        cnn_detector(), shape_predictor(SHAPE5_FILE)

    def detect(self, image_rgb: np.ndarray, progress=None) -> list[Detection]:   # progress: see FaceDetector
        work = resized(image_rgb, self.scale)
        with _LOCK:
            found = cnn_detector()(work, 0)
        dets = []
        for d in found:
            r = d.rect
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32) / self.scale
            kps = keypoints_from_shape5(shape_points(image_rgb, box, SHAPE5_FILE))
            # MMOD confidence is a margin around 0..1.5; squash it into 0..1 like HOG's
            dets.append(Detection(box=box, score=float(1 / (1 + math.exp(-2 * d.confidence))), keypoints=kps,
                                  source=self.name))
        return _finish(dets, self.min_face, self.max_faces)
