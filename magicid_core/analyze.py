"""Face analysis of an image or a batch: detect, mesh, order, mask, skeleton, embed -> ImageFaces / FaceSet.

Detection runs on a copy whose longer side is at most ``max_side`` px (so an 8k image
costs about what a 2k image does); boxes and keypoints are mapped back to the input's
pixels, and the mesh and masks are computed at full resolution inside each face's region.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Iterable

import cv2
import numpy as np

from .faces.detection import BACKENDS, DEFAULT_MIN_FACE, FaceDetector, make_detector
from .faces.geometry import ARCFACE_TEMPLATE
from .faces.records import Detection, Face, FaceSet, ImageFaces
from .identity.embedders import BACKENDS as IDENTITY_BACKENDS
from .identity.embedders import make_embedder
from .image_io import to_rgb_uint8
from .faces.masks import MASK_MODES, face_masks, head_box
from .faces.mesh import face_mesh, keypoints_from_mesh
from .faces.pose import PoseEstimator

ORDERS = ("left_to_right", "size")
# Below this many pixels (in the analysed copy) no detector finds a face reliably.
SMALLEST_DETECTABLE = 16
# The mesh is a second opinion: real faces down to ~24 px get one, so a detection the mesh
# rejects is kept only when the detector was sure of it (e.g. a face seen from the side).
UNMESHED_MIN_SCORE = 0.8


@dataclass
class AnalysisSettings:
    backend: str = "auto"           # see detection.BACKENDS
    min_face: float = DEFAULT_MIN_FACE  # px in the input image; smaller faces are not sought
    mask_mode: str = "face"         # face | head | box
    dilation: float = 4.0           # px the mask grows (negative shrinks)
    feather: float = 8.0            # px of soft edge outside the grown shape
    max_faces: int = 0              # keep the most confident N faces; 0 = all
    order: str = "left_to_right"    # left_to_right | size (largest first)
    mesh: bool = True               # run the 478-point face mesh on each face
    max_side: int = 2048            # detection sees at most this long a side
    skeletons: bool = True          # a COCO-18 body skeleton per face (mediapipe Pose on a person crop)
    embeddings: bool = True         # an identity embedding per face
    identity_backend: str = "auto"  # see identity.BACKENDS: auto = ArcFace when insightface models exist, else dlib
    insightface_roots: tuple[str, ...] | None = None  # folder(s) of insightface packs; None = $MAGICID_INSIGHTFACE_DIR

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown face detector backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if self.identity_backend not in IDENTITY_BACKENDS:
            raise ValueError(f"unknown identity backend {self.identity_backend!r}; "
                             f"choose one of {', '.join(IDENTITY_BACKENDS)}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown face order {self.order!r}; choose one of {', '.join(ORDERS)}")
        if self.min_face <= 0 or self.max_side < 64 or self.feather < 0 or self.max_faces < 0:
            raise ValueError("min_face must be > 0, max_side >= 64, feather >= 0 and max_faces >= 0")


@functools.lru_cache(maxsize=8)
def _cached_detector(backend: str, min_face: float, max_faces: int, insightface_roots) -> FaceDetector:
    """Detectors are reused across the images of a batch (dlib loads its landmark model once)."""
    return make_detector(backend, min_face=min_face, max_faces=max_faces, insightface_roots=insightface_roots)


@functools.lru_cache(maxsize=1)
def _pose_estimator() -> PoseEstimator:
    """One mediapipe Pose graph for the process (building one costs ~100 ms)."""
    return PoseEstimator()


def add_skeletons_and_embeddings(rgb: np.ndarray, faces: list[Face], settings: AnalysisSettings) -> None:
    """Fill each face's skeleton and identity embedding, as the settings ask."""
    if settings.skeletons:
        for face, skeleton in zip(faces, _pose_estimator().skeletons(rgb, faces)):
            face.skeleton = skeleton
    if settings.embeddings and faces:
        embedder = make_embedder(settings.identity_backend, settings.insightface_roots)
        for face in faces:
            face.embedding = embedder.embed(rgb, face.box, face.keypoints)
            face.embedding_model = embedder.model_name


def analysis_scale(height: int, width: int, max_side: int) -> float:
    """The factor (<= 1) that brings the longer side down to max_side."""
    return min(1.0, max_side / max(height, width, 1))


def order_faces(faces: list[Face], order: str) -> list[Face]:
    """Stable order with deterministic tie-breaks; re-numbers the faces' index."""
    if order == "size":
        key = lambda f: (-round(f.width * f.height, 3), round(f.center[0], 3), round(f.center[1], 3))  # noqa: E731
    else:
        key = lambda f: (round(f.center[0], 3), round(f.center[1], 3), -round(f.width * f.height, 3))  # noqa: E731
    ranked = sorted(faces, key=key)
    for i, f in enumerate(ranked):
        f.index = i
    return ranked


def _to_face(det: Detection, scale: float, rgb: np.ndarray, with_mesh: bool) -> Face:
    """A detection on the analysed copy -> a Face in input pixels, with mesh and keypoints."""
    h, w = rgb.shape[:2]
    box = np.clip(det.box / scale, 0, [w, h, w, h]).astype(np.float32)
    keypoints = (det.keypoints / scale).astype(np.float32)
    landmarks = face_mesh(rgb, box) if with_mesh else None
    if landmarks is not None:
        keypoints = keypoints_from_mesh(landmarks)  # measured mouth corners beat estimated ones
    return Face(index=0, box=box, score=det.score, keypoints=keypoints, head_box=head_box(box, h, w),
                detector=det.source, landmarks=landmarks)


def analyze_image(image, settings: AnalysisSettings | None = None, detector: FaceDetector | None = None) -> ImageFaces:
    """All faces of one image (gray, RGB, RGBA; float 0..1 or uint8), ordered and masked.

    No face gives an ImageFaces with an empty list. ``detector`` overrides the backend of
    the settings (it then also keeps its own min_face).
    """
    settings = settings or AnalysisSettings()
    settings.check()
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = analysis_scale(h, w, settings.max_side)
    min_face = max(settings.min_face * scale, SMALLEST_DETECTABLE)
    if min(h, w) * scale < SMALLEST_DETECTABLE:   # too small to hold a face
        return ImageFaces(h, w, [])
    small = rgb if scale == 1 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                              interpolation=cv2.INTER_AREA)
    if detector is None:
        roots = None if settings.insightface_roots is None else tuple(settings.insightface_roots)
        detector = _cached_detector(settings.backend, round(min_face, 2), settings.max_faces, roots)
    detections = detector.detect(small)
    if settings.max_faces:
        detections = sorted(detections, key=lambda d: -d.score)[:settings.max_faces]
    faces = [_to_face(d, scale, rgb, settings.mesh) for d in detections]
    if settings.mesh:   # drop what only a doubtful detection and no mesh call a face
        faces = [f for f in faces if f.landmarks is not None or f.score >= UNMESHED_MIN_SCORE]
    faces = order_faces(faces, settings.order)
    for face, mask in zip(faces, face_masks(faces, h, w, settings.mask_mode, settings.dilation, settings.feather)):
        face.mask = mask
    add_skeletons_and_embeddings(rgb, faces, settings)
    return ImageFaces(h, w, faces)


def template_keypoints(box) -> np.ndarray:
    """The 5 keypoints where ArcFace's alignment template puts them in a face box: a stand-in
    for a box that came without keypoints, replaced by the mesh's when the mesh finds the face."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (np.array([x0, y0], np.float32) + ARCFACE_TEMPLATE / 112.0 * np.array([x1 - x0, y1 - y0], np.float32))


def analyze_boxes(image, boxes, scores, settings: AnalysisSettings | None = None, masks=None,
                  source: str = "given") -> ImageFaces:
    """Faces found elsewhere (e.g. Impact Pack's detectors), analysed without detecting again:
    mesh, keypoints, skeletons and embeddings as ``analyze_image`` makes them, in the given order.

    ``masks``: (N, H, W) masks to keep as they are; None makes ours (exclusive, settings' mode).
    """
    settings = settings or AnalysisSettings()
    settings.check()
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if masks is not None and (len(masks) != len(boxes) or any(m.shape != (h, w) for m in masks)):
        raise ValueError(f"{len(boxes)} boxes need {len(boxes)} masks of {w}x{h}")
    faces = []
    for i, (box, score) in enumerate(zip(boxes, scores)):
        detection = Detection(box, float(score), template_keypoints(box), source)
        face = _to_face(detection, 1.0, rgb, settings.mesh)
        face.index = i
        faces.append(face)
    computed = face_masks(faces, h, w, settings.mask_mode, settings.dilation, settings.feather) if masks is None \
        else [np.asarray(m, np.float32) for m in masks]
    for face, mask in zip(faces, computed):
        face.mask = mask
    add_skeletons_and_embeddings(rgb, faces, settings)
    return ImageFaces(h, w, faces)


def analyze_batch(images: Iterable, settings: AnalysisSettings | None = None,
                  progress: Callable[[int, int], None] | None = None) -> FaceSet:
    """analyze_image on every image of a batch ((B, H, W, C) array or a list); progress(done, total)."""
    images = list(images)
    settings = settings or AnalysisSettings()
    out = []
    for i, image in enumerate(images):
        out.append(analyze_image(image, settings))
        if progress is not None:
            progress(i + 1, len(images))
    return FaceSet(out)
