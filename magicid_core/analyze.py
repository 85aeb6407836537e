"""Face analysis of an image or a batch: detect, landmarks, order, mask, skeleton, embed -> ImageFaces / FaceSet.

Detection runs on a copy whose longer side is at most ``max_side`` px (so an 8k image
costs about what a 2k image does); boxes and keypoints are mapped back to the input's
pixels, and the landmarks and masks are computed at full resolution inside each face's region
(each face keeps its mask at that region's size, see ``Face.mask_box``).

Each part comes from the best backend that is really installed (``auto``) and the face
record says which (``Face.sources``): detection (insightface > mediapipe > dlib), dense
landmarks (insightface 2d106det > mediapipe mesh > dlib 68), the 5 keypoints (measured on
the landmarks when there are any), the skeleton (controlnet_aux POSE_KEYPOINT when given, else
mediapipe Pose, else head-only with a note), the embedding (ArcFace > dlib).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from .faces.detection import BACKENDS, DEFAULT_MIN_FACE, FaceDetector, make_detector
from .faces.geometry import ARCFACE_TEMPLATE
from .faces.landmarks import LANDMARK_BACKENDS, make_landmarker
from .faces.masks import MASK_MODES, face_mask_crops, head_box
from .faces.pose import PoseEstimator, head_only_skeleton
from .faces.pose_keypoint import apply_pose_keypoint, frames_for_batch
from .faces.records import Detection, Face, FaceSet, ImageFaces
from .identity.embedders import BACKENDS as IDENTITY_BACKENDS
from .identity.embedders import make_embedder
from .identity.embedding_models import DLIB
from .insightface import find_pack_or_reason
from .image_io import to_rgb_uint8
from .optional import mediapipe_available, missing_message
from .progress import Progress

log = logging.getLogger("magicid")

ORDERS = ("left_to_right", "size")
# Below this many pixels (in the analysed copy) no detector finds a face reliably.
SMALLEST_DETECTABLE = 16
# The mediapipe mesh is a second opinion: real faces down to ~24 px get one, so a detection the
# mesh rejects is kept only when the detector was sure of it (e.g. a face seen from the side).
UNMESHED_MIN_SCORE = 0.8
# The start of the note that says what ``auto`` used for want of an insightface pack (see fallback_notes).
FALLBACK_NOTE_START = "no insightface pack found, so auto used "
HEAD_ONLY_NOTE = ("body skeletons: " + missing_message("mediapipe", "mediapipe Pose")
                  + " Faces got head-only skeletons (nose and eyes); connect a DWPose or OpenPose "
                  "POSE_KEYPOINT for full bodies.")


@dataclass
class AnalysisSettings:
    backend: str = "auto"           # see faces.detection.BACKENDS
    min_face: float = DEFAULT_MIN_FACE  # px in the input image; smaller faces are not sought
    mask_mode: str = "face"         # face | head | box
    dilation: float = 4.0           # px the mask grows (negative shrinks)
    feather: float = 8.0            # px of soft edge outside the grown shape
    max_faces: int = 0              # keep the most confident N faces; 0 = all
    order: str = "left_to_right"    # left_to_right | size (largest first)
    mesh: bool = True               # dense landmarks on each face (see landmark_backend)
    landmark_backend: str = "auto"  # see faces.landmarks.LANDMARK_BACKENDS
    max_side: int = 2048            # detection sees at most this long a side
    skeletons: bool = True          # a COCO-18 body skeleton per face (POSE_KEYPOINT, mediapipe Pose or head-only)
    embeddings: bool = True         # an identity embedding per face
    identity_backend: str = "auto"  # see identity.embedders.BACKENDS: auto = ArcFace when insightface models exist, else dlib
    insightface_roots: tuple[str, ...] | None = None  # folder(s) of insightface packs; None = $MAGICID_INSIGHTFACE_DIR

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot be used."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown face detector backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if self.identity_backend not in IDENTITY_BACKENDS:
            raise ValueError(f"unknown identity backend {self.identity_backend!r}; "
                             f"choose one of {', '.join(IDENTITY_BACKENDS)}")
        if self.landmark_backend not in LANDMARK_BACKENDS:
            raise ValueError(f"unknown landmark backend {self.landmark_backend!r}; "
                             f"choose one of {', '.join(LANDMARK_BACKENDS)}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown face order {self.order!r}; choose one of {', '.join(ORDERS)}")
        if not self.min_face > 0:   # (the "not" also refuses NaN)
            raise ValueError(f"min_face must be > 0 px, got {self.min_face}")
        for name, value, low in (("max_side", self.max_side, 64), ("feather", self.feather, 0),
                                 ("max_faces", self.max_faces, 0)):
            if not value >= low:
                raise ValueError(f"{name} must be >= {low}, got {value}")


@functools.lru_cache(maxsize=8)
def _cached_detector(backend: str, min_face: float, max_faces: int, insightface_roots, pack_folder) -> FaceDetector:
    """Detectors are reused across the images of a batch (dlib loads its landmark model once). ``pack_folder``
    (the insightface pack found now) is part of the key: a pack put in place while ComfyUI runs is used at once."""
    return make_detector(backend, min_face=min_face, max_faces=max_faces, insightface_roots=insightface_roots)


def fallback_notes(settings: AnalysisSettings, detector_name: str | None, no_pack: str) -> list[str]:
    """What ``auto`` used instead of the insightface pack, and why: ``no_pack`` is find_pack's reason (the
    folders searched, the files expected), "" when a pack was found; ``detector_name`` None: the faces were
    given, not detected. The nodes show the note, the log says it once."""
    if not no_pack:
        return []
    used = []
    if settings.backend == "auto" and detector_name is not None:
        used.append(f"{detector_name} to find the faces")
    if settings.embeddings and settings.identity_backend == "auto":
        used.append(DLIB_IDENTITIES)
    return [fallback_note(used, no_pack)] if used else []


DLIB_IDENTITIES = (f"dlib for the identity embeddings ({DLIB.family}, which IP-Adapter FaceID and InstantID "
                   "cannot use: they need ArcFace's)")


def fallback_note(used: list[str], no_pack: str) -> str:
    """"no insightface pack found, so auto used <used>. <where it looked, what it expects>"."""
    return f"{FALLBACK_NOTE_START}{' and '.join(used)}. {no_pack[0].upper()}{no_pack[1:]}"


@functools.lru_cache(maxsize=1)
def _pose_estimator() -> PoseEstimator:
    """One mediapipe Pose graph for the process (building one costs ~100 ms)."""
    return PoseEstimator()


def add_skeletons(rgb: np.ndarray, faces: list[Face]) -> list[str]:
    """A skeleton per face: mediapipe Pose where it is installed, else head-only (and a note)."""
    if mediapipe_available():
        for face, skeleton in zip(faces, _pose_estimator().skeletons(rgb, faces)):
            face.skeleton = skeleton
            face.sources["skeleton"] = "mediapipe_pose" if skeleton[1:14, 2].any() else "head_only"
        return []
    for face in faces:
        face.skeleton = head_only_skeleton(face.keypoints, face.score)
        face.sources["skeleton"] = "head_only"
    return [HEAD_ONLY_NOTE] if faces else []


def add_embeddings(rgb: np.ndarray, faces: list[Face], settings: AnalysisSettings) -> None:
    if not faces:
        return
    embedder = make_embedder(settings.identity_backend, settings.insightface_roots)
    if hasattr(embedder, "embed_many"):
        vectors = embedder.embed_many(rgb, [face.box for face in faces])
    else:
        vectors = [embedder.embed(rgb, face.box, face.keypoints) for face in faces]
    for face, vector in zip(faces, vectors):
        face.embedding = vector
        face.embedding_model = embedder.model_name
        face.sources["embedding"] = embedder.model_name


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


@functools.lru_cache(maxsize=4)
def _cached_landmarker(backend: str, insightface_roots, pack_folder):
    return make_landmarker(backend, insightface_roots)


def _pack_now(roots) -> tuple[str | None, str]:
    """(the folder of the insightface pack found now, or None; why there is none)."""
    pack, no_pack = find_pack_or_reason(roots)
    return (str(pack.folder) if pack else None), no_pack


def _to_face(det: Detection, scale: float, rgb: np.ndarray, landmarker) -> Face:
    """A detection on the analysed copy -> a Face in input pixels, with landmarks and keypoints."""
    h, w = rgb.shape[:2]
    box = np.clip(det.box / scale, 0, [w, h, w, h]).astype(np.float32)
    face = Face(index=0, box=box, score=det.score, keypoints=(det.keypoints / scale).astype(np.float32),
                head_box=head_box(box, h, w), detector=det.source,
                sources={"detection": det.source, "keypoints": det.source})
    found = landmarker.locate(rgb, box) if landmarker is not None else None
    if found is not None:
        face.landmarks, face.landmarks68 = found.mesh, found.points68
        face.keypoints = found.keypoints   # measured mouth corners beat estimated ones
        face.sources["landmarks"] = face.sources["keypoints"] = found.backend
    return face


def analyze_image(image, settings: AnalysisSettings | None = None, detector: FaceDetector | None = None,
                  pose_frame: dict | None = None, pose_index: int = 0, pose_given: bool = False,
                  progress: Progress | None = None) -> ImageFaces:
    """All faces of one image (gray, RGB, RGBA; float 0..1 or uint8), ordered and masked.

    No face gives an ImageFaces with an empty list. ``detector`` overrides the backend of
    the settings (it then also keeps its own min_face). ``pose_frame``: this image's frame of a
    controlnet_aux POSE_KEYPOINT, whose people become the faces' skeletons (see pose_keypoint);
    ``pose_given`` says a POSE_KEYPOINT is connected even when this image has no frame (None).
    ``progress(done, total)`` follows the detector's model runs (tiles), then each face's landmarks.
    """
    settings = settings or AnalysisSettings()
    settings.validate()
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = analysis_scale(h, w, settings.max_side)
    min_face = max(settings.min_face * scale, SMALLEST_DETECTABLE)
    if min(h, w) * scale < SMALLEST_DETECTABLE:   # too small to hold a face
        return ImageFaces(h, w, [])
    roots = None if settings.insightface_roots is None else tuple(settings.insightface_roots)
    pack_folder, no_pack = _pack_now(roots)
    small = rgb if scale == 1 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                              interpolation=cv2.INTER_AREA)
    if detector is None:
        detector = _cached_detector(settings.backend, round(min_face, 2), settings.max_faces, roots, pack_folder)
    detections = detector.detect(small, progress)
    if settings.max_faces:
        detections = sorted(detections, key=lambda d: -d.score)[:settings.max_faces]
    landmarker = _cached_landmarker(settings.landmark_backend, roots, pack_folder) if settings.mesh else None
    faces = []
    for done, detection in enumerate(detections, start=1):
        faces.append(_to_face(detection, scale, rgb, landmarker))
        if progress is not None:
            progress(done, len(detections))
    if getattr(landmarker, "name", "") == "mediapipe_mesh":   # drop what only a doubtful detection calls a face
        faces = [f for f in faces if f.landmarks is not None or f.score >= UNMESHED_MIN_SCORE]
    faces = order_faces(faces, settings.order)
    crops = face_mask_crops(faces, h, w, settings.mask_mode, settings.dilation, settings.feather)
    for face, (mask, box) in zip(faces, crops):
        face.mask, face.mask_box = mask, box
    notes = []
    if settings.skeletons and (pose_given or pose_frame is not None):
        for face in faces:   # faces no person matches keep a head-only skeleton
            face.skeleton = head_only_skeleton(face.keypoints, face.score)
            face.sources["skeleton"] = "head_only"
        notes += apply_pose_keypoint(faces, pose_frame, h, w, pose_index)
    elif settings.skeletons:
        notes += add_skeletons(rgb, faces)
    if settings.embeddings:
        add_embeddings(rgb, faces, settings)
    notes += fallback_notes(settings, detector.name, no_pack)
    return ImageFaces(h, w, faces, notes)


def find_faces(image) -> ImageFaces:
    """The faces of an image with mesh and masks but no skeletons or embeddings (IDSimilarity
    without FACES: the embeddings are then made by the identities' own model)."""
    return analyze_image(image, AnalysisSettings(skeletons=False, embeddings=False))


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
    settings.validate()
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if masks is not None and (len(masks) != len(boxes) or any(m.shape != (h, w) for m in masks)):
        raise ValueError(f"{len(boxes)} boxes need {len(boxes)} masks of {w}x{h}")
    roots = None if settings.insightface_roots is None else tuple(settings.insightface_roots)
    pack_folder, no_pack = _pack_now(roots)
    landmarker = _cached_landmarker(settings.landmark_backend, roots, pack_folder) if settings.mesh else None
    faces = []
    for i, (box, score) in enumerate(zip(boxes, scores)):
        detection = Detection(box, float(score), template_keypoints(box), source)
        face = _to_face(detection, 1.0, rgb, landmarker)
        face.index = i
        faces.append(face)
    if masks is None:
        for face, (mask, region) in zip(faces, face_mask_crops(faces, h, w, settings.mask_mode,
                                                               settings.dilation, settings.feather)):
            face.mask, face.mask_box = mask, region
    else:   # given whole-image masks: each face keeps the part under its non-zero pixels
        for face, mask in zip(faces, masks):
            face.mask, face.mask_box = _crop_to_content(np.asarray(mask, np.float32))
    notes = add_skeletons(rgb, faces) if settings.skeletons else []
    if settings.embeddings:
        add_embeddings(rgb, faces, settings)
    notes += fallback_notes(settings, None, no_pack)   # the faces were found elsewhere
    return ImageFaces(h, w, faces, notes)


def _crop_to_content(mask: np.ndarray):
    """(crop, region) of a whole-image mask: its non-zero pixels' bounding box (an empty mask: 0x0)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros((0, 0), np.float32), (0, 0, 0, 0)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return np.ascontiguousarray(mask[y0:y1, x0:x1]), (x0, y0, x1, y1)


def analyze_batch(images: Iterable, settings: AnalysisSettings | None = None,
                  progress: Progress | None = None, pose_keypoint=None) -> FaceSet:
    """analyze_image on every image of a batch ((B, H, W, C) array or a list); progress(images done,
    images), also called (count unchanged) between the model runs inside an image.

    ``pose_keypoint``: controlnet_aux's POSE_KEYPOINT for the batch (see pose_keypoint.frames_for_batch).
    Each note of the analysis (e.g. head-only skeletons) is logged once.
    """
    images = list(images)
    settings = settings or AnalysisSettings()
    frames = frames_for_batch(pose_keypoint, len(images))
    out = []
    for i, image in enumerate(images):
        inside = None if progress is None else (lambda _done, _total, i=i: progress(i, len(images)))
        out.append(analyze_image(image, settings, pose_frame=frames[i], pose_index=i,
                                 pose_given=pose_keypoint is not None, progress=inside))
        if progress is not None:
            progress(i + 1, len(images))
    faces = FaceSet(out)
    for note in faces.notes:
        log_once(note)
    return faces


_LOGGED: set[str] = set()


def log_once(note: str) -> None:
    """Log a note the first time this process meets it (a batch of 100 images says it once)."""
    if note not in _LOGGED:
        _LOGGED.add(note)
        log.warning("MagicID: %s", note)
