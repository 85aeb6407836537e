"""MMF control maps: the body skeleton and the facial landmarks of the same photo,
drawn in the formats existing ControlNets were trained on.

MMF (multi-mode fusion): the paper's two control modalities, body skeleton and face
landmarks, used together, each masked to its region (see docs/ARCHITECTURE.md, glossary).

- skeleton map: OpenPose COCO-18 body pose, colours and limbs as the OpenPose
  annotator of ControlNet draws them (controlnet_aux ``draw_bodypose``);
- landmark map: the MediaPipe face mesh contours of controlnet_aux's
  ``mediapipe_face`` annotator (oval, eyes, brows, lips, pupils) for faces with a mesh; for
  faces with 68 points only (dlib, insightface 2d106det), OpenPose's face keypoints as
  controlnet_aux's ``draw_facepose`` draws them (white dots), what OpenPose-face ControlNets read;
- kps map: InstantID's 5-keypoint map (``draw_kps``);
- fused map: the skeleton with the landmarks drawn over it.

Every map is an (H, W, 3) RGB picture at the analysed image's size, black where
nothing is drawn: uint8 from the single-map functions, float32 in 0..1 (ComfyUI's IMAGE
values, the same numbers as uint8 / 255) from ``mmf_maps``, which draws straight on its
output batch so black pixels are never written (4096 px maps cost what is drawn on them). Faces without a skeleton (or without a mesh) add nothing
to that map: a documented no-op, so a partial analysis still gives usable maps.
The masks say where each map belongs: the faces (landmarks) and the people (skeleton).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from .. import validate
from ..optional import require_mediapipe
from .records import FaceSet, ImageFaces

# --- OpenPose body (COCO-18 order, see faces.COCO18_NAMES) ---------------------------

# Limbs as 0-based keypoint pairs; limb i is drawn in OPENPOSE_COLORS[i].
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# RGB; keypoint k is drawn in OPENPOSE_COLORS[k] (a hue wheel from red through green to magenta).
OPENPOSE_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
OPENPOSE_STICK_WIDTH = 4      # half-thickness of a limb ellipse, pixels
OPENPOSE_POINT_RADIUS = 4
LIMB_DIM = 0.6                # limbs are drawn at 60 % of their colour, joints at full colour

# --- InstantID 5 keypoints (faces.KEYPOINT_NAMES order) -------------------------------

KPS_COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
KPS_LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))   # every point to the nose, in the first point's colour
KPS_STICK_WIDTH = 4
KPS_POINT_RADIUS = 10

# --- MediaPipe face (controlnet_aux mediapipe_face drawing spec, as RGB) ---------------

# The annotator draws BGR colours on a black canvas and flips it to RGB at the end;
# these are the resulting RGB colours. "left"/"right" are the person's own sides.
FACE_PART_COLORS = {
    "face_oval": (10, 200, 10),
    "left_eye": (10, 200, 180),
    "left_eyebrow": (10, 220, 180),
    "right_eye": (180, 200, 10),
    "right_eyebrow": (180, 220, 10),
    "lips": (10, 180, 10),
}
FACE_LINE_THICKNESS = 2
# Pupils (refined meshes of 478 points only): a 4x4 square at the iris centre.
PUPIL_COLORS = {468: (250, 200, 10), 473: (10, 200, 250)}   # person's right, left iris
PUPIL_HALF = 2


@functools.lru_cache(maxsize=1)
def face_part_edges() -> list[tuple[tuple[int, int], tuple[int, int, int]]]:
    """(edge, colour) for every contour edge, in the annotator's drawing order."""
    fmc = require_mediapipe("the MediaPipe-face landmark map").solutions.face_mesh  # the mesh topology

    parts = {
        "face_oval": fmc.FACEMESH_FACE_OVAL, "left_eye": fmc.FACEMESH_LEFT_EYE,
        "left_eyebrow": fmc.FACEMESH_LEFT_EYEBROW, "right_eye": fmc.FACEMESH_RIGHT_EYE,
        "right_eyebrow": fmc.FACEMESH_RIGHT_EYEBROW, "lips": fmc.FACEMESH_LIPS,
    }
    return [(edge, FACE_PART_COLORS[name]) for name, edges in parts.items() for edge in sorted(edges)]


# --- drawing primitives ---------------------------------------------------------------

def _blank(frame: ImageFaces) -> np.ndarray:
    return np.zeros((frame.height, frame.width, 3), np.uint8)


def _ink(canvas: np.ndarray, color) -> tuple:
    """An RGB colour (0..255) as ``canvas`` holds it: uint8 values, or on a float32 canvas
    the IMAGE value uint8 / 255 (computed in float32, so both canvases give the same picture)."""
    return _float_ink(tuple(color)) if canvas.dtype == np.float32 else tuple(int(c) for c in color)


@functools.lru_cache(maxsize=256)
def _float_ink(color: tuple) -> tuple:
    return tuple(float(np.float32(c) / np.float32(255)) for c in color)


def _draw_stick(canvas: np.ndarray, p0, p1, half_width: int, color) -> None:
    """A limb as a filled ellipse from p0 to p1 (how OpenPose and InstantID draw them)."""
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x0 - x1, y0 - y1)
    angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
    centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
    polygon = cv2.ellipse2Poly(centre, (int(length / 2), half_width), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, _ink(canvas, color))


def _dim(color) -> tuple[int, int, int]:
    return tuple(int(c * LIMB_DIM) for c in color)


# --- the maps -------------------------------------------------------------------------

def draw_skeleton(canvas: np.ndarray, skeleton: np.ndarray, min_confidence: float = 0.0,
                  stick_scale: int = 1) -> np.ndarray:
    """Draw one COCO-18 skeleton ((18, 3) x, y, confidence) in OpenPose style, in place.

    A keypoint with confidence <= ``min_confidence`` is missing: its limbs and point are skipped.
    ``stick_scale`` > 1 thickens limbs (xinsir's SDXL OpenPose ControlNet reads thicker sticks).
    """
    skeleton = np.asarray(skeleton, np.float64)
    if skeleton.shape != (18, 3):
        raise ValueError(f"a skeleton has 18 COCO keypoints of (x, y, confidence), got shape {skeleton.shape}")
    present = np.isfinite(skeleton).all(axis=1) & (skeleton[:, 2] > min_confidence)
    for (a, b), color in zip(OPENPOSE_LIMBS, OPENPOSE_COLORS):
        if present[a] and present[b]:
            _draw_stick(canvas, skeleton[a, :2], skeleton[b, :2], OPENPOSE_STICK_WIDTH * stick_scale, _dim(color))
    for k, color in enumerate(OPENPOSE_COLORS):
        if present[k]:
            cv2.circle(canvas, (int(skeleton[k, 0]), int(skeleton[k, 1])), OPENPOSE_POINT_RADIUS,
                       _ink(canvas, color), thickness=-1)
    return canvas


def draw_face_mesh(canvas: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Draw one face mesh ((468 or 478, 2) pixels) as MediaPipe-face contours, in place."""
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 2 or pts.shape[0] < 468 or pts.shape[1] < 2:
        raise ValueError(f"a face mesh has 468 or 478 (x, y) landmarks, got shape {pts.shape}")
    h, w = canvas.shape[:2]
    # MediaPipe drops points outside the image and floors the rest onto the pixel grid.
    x, y = pts[:, 0], pts[:, 1]
    inside = np.isfinite(pts[:, :2]).all(axis=1) & (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
    px = np.stack([np.minimum(np.floor(pts[:, 0]), w - 1), np.minimum(np.floor(pts[:, 1]), h - 1)], 1)
    px = np.nan_to_num(px).astype(np.int64)
    for (a, b), color in face_part_edges():
        if inside[a] and inside[b]:
            cv2.line(canvas, tuple(map(int, px[a])), tuple(map(int, px[b])), _ink(canvas, color),
                     FACE_LINE_THICKNESS)
    if pts.shape[0] >= 478:
        for idx, color in PUPIL_COLORS.items():
            if inside[idx] and pts[idx, 0] < w and pts[idx, 1] < h:
                x, y = px[idx]
                canvas[max(y - PUPIL_HALF, 0):y + PUPIL_HALF, max(x - PUPIL_HALF, 0):x + PUPIL_HALF] = \
                    _ink(canvas, color)
    return canvas


OPENPOSE_FACE_RADIUS = 3
OPENPOSE_FACE_COLOR = (255, 255, 255)


def draw_face68(canvas: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """Draw one face's 68 points as OpenPose face keypoints (controlnet_aux ``draw_facepose``), in place."""
    pts = np.asarray(points68, np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"OpenPose face keypoints are 68 (x, y) points, got shape {pts.shape}")
    for x, y in pts[np.isfinite(pts).all(axis=1)]:
        if x > 0 and y > 0:   # the annotator skips points at the origin (missing ones)
            cv2.circle(canvas, (int(x), int(y)), OPENPOSE_FACE_RADIUS, _ink(canvas, OPENPOSE_FACE_COLOR),
                       thickness=-1)
    return canvas


def draw_kps(canvas: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Draw one face's 5 keypoints in InstantID's style, in place."""
    kps = np.asarray(keypoints, np.float64)
    if kps.shape != (5, 2) or not np.isfinite(kps).all():
        raise ValueError(f"a face has 5 finite (x, y) keypoints, got shape {kps.shape}")
    for a, b in KPS_LIMBS:
        _draw_stick(canvas, kps[a], kps[b], KPS_STICK_WIDTH, _dim(KPS_COLORS[a]))
    for k, color in enumerate(KPS_COLORS):
        cv2.circle(canvas, (int(kps[k, 0]), int(kps[k, 1])), KPS_POINT_RADIUS, _ink(canvas, color), thickness=-1)
    return canvas


def skeleton_map(frame: ImageFaces, min_confidence: float = 0.0, stick_scale: int = 1,
                 canvas: np.ndarray | None = None) -> np.ndarray:
    """Every face's skeleton, drawn on ``canvas`` (a new black one when None)."""
    canvas = _blank(frame) if canvas is None else canvas
    for face in frame.faces:
        if face.skeleton is not None:
            draw_skeleton(canvas, face.skeleton, min_confidence, stick_scale)
    return canvas


def landmark_map(frame: ImageFaces, canvas: np.ndarray | None = None) -> np.ndarray:
    """Every face's mesh contours, drawn on ``canvas`` (a new black one when None)."""
    canvas = _blank(frame) if canvas is None else canvas
    for face in frame.faces:
        if face.landmarks is not None:
            draw_face_mesh(canvas, face.landmarks)
        elif face.landmarks68 is not None:
            draw_face68(canvas, face.landmarks68)
    return canvas


def kps_map(frame: ImageFaces, canvas: np.ndarray | None = None) -> np.ndarray:
    canvas = _blank(frame) if canvas is None else canvas
    for face in frame.faces:
        draw_kps(canvas, face.keypoints)
    return canvas


def fuse_maps(skeleton: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The skeleton map with every drawn landmark pixel laid over it."""
    drawn = landmarks.any(axis=-1, keepdims=True)
    return np.where(drawn, landmarks, skeleton)


# --- where each map belongs -----------------------------------------------------------

def face_region(frame: ImageFaces, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32: the faces' masks together; a face without a mask counts with its head box.
    ``out``: a zeroed (H, W) float32 canvas to draw on instead of a new one."""
    region = frame.union_mask(out)
    for face in frame.faces:
        if face.mask is None:
            _fill_box(region, face.head_box)
    return region


def person_region(frame: ImageFaces, min_confidence: float = 0.0, margin: float = 0.15,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32: each skeleton's convex hull with its head box, grown by ``margin``
    of the hull's larger side (limbs have width; hands and feet extend past the joints).

    Each person costs its own rectangle: the hull is drawn in its bounding box and grown
    row by row (see ``_grow_rows``), never by morphology over the whole canvas.
    ``out``: a zeroed (H, W) float32 canvas to draw on instead of a new one."""
    region = np.zeros((frame.height, frame.width), np.float32) if out is None else out
    for face in frame.faces:
        if face.skeleton is None:
            continue
        sk = np.asarray(face.skeleton, np.float64)
        pts = sk[np.isfinite(sk).all(axis=1) & (sk[:, 2] > min_confidence), :2]
        hb = np.asarray(face.head_box, np.float64)
        pts = np.concatenate([pts, [[hb[0], hb[1]], [hb[2], hb[1]], [hb[2], hb[3]], [hb[0], hb[3]]]])
        if not np.isfinite(pts).all():
            continue    # a head box without numbers has no place in the picture
        extent = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
        grow = max(1, int(round(margin * extent)))
        _paint_grown_hull(region, np.round(pts).astype(np.int32), grow)
    return region


def _paint_grown_hull(region: np.ndarray, pts: np.ndarray, grow: int) -> None:
    """Set to 1 the hull of ``pts`` dilated by OpenCV's elliptical (2 grow + 1)^2 kernel,
    exactly as cv2.dilate would on the full canvas, working inside the hull's box only."""
    h, w = region.shape
    hull = cv2.convexHull(pts)
    x0, y0 = np.maximum(hull.reshape(-1, 2).min(axis=0), 0)
    x1, y1 = np.minimum(hull.reshape(-1, 2).max(axis=0) + 1, (w, h))
    if x0 >= x1 or y0 >= y1:
        return      # the hull lies outside the picture: nothing drawn, nothing grown
    drawn = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(drawn, hull - (x0, y0), 1)
    rows = np.flatnonzero(drawn.any(axis=1))
    if len(rows) == 0:
        return
    drawn = drawn[rows[0]:rows[-1] + 1]     # a filled convex polygon: one run of rows, one run per row
    first = drawn.argmax(axis=1)
    last = drawn.shape[1] - 1 - drawn[:, ::-1].argmax(axis=1)
    top = y0 + rows[0]
    out_top, out_bottom = max(top - grow, 0), min(top + len(drawn) + grow, h)
    lo, hi = _grow_rows(x0 + first, x0 + last, grow, out_top - top, out_bottom - top)
    for y, a, b in zip(range(out_top, out_bottom), np.maximum(lo, 0).tolist(), np.minimum(hi + 1, w).tolist()):
        region[y, a:b] = 1.0


@functools.lru_cache(maxsize=32)
def _kernel_runs(grow: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row offset -grow..grow, the column offsets (from, to) of OpenCV's elliptical kernel."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)).astype(bool)
    first = kernel.argmax(axis=1)
    last = kernel.shape[1] - 1 - kernel[:, ::-1].argmax(axis=1)
    return first - grow, last - grow


def _grow_rows(left: np.ndarray, right: np.ndarray, grow: int, start: int, stop: int):
    """Dilate a shape given as one run [left, right] per row (rows 0..n-1, all non-empty and
    8-connected, as a filled convex polygon is) by the elliptical kernel; rows start..stop-1.

    Output row y is the union over kernel rows dy of run y+dy widened by that kernel row;
    runs of neighbouring rows touch, so the union is the single run [min, max]."""
    dfrom, dto = _kernel_runs(grow)
    big = np.iinfo(np.int64).max // 4      # rows outside the shape: never the min / max

    def windows(runs: np.ndarray, fill: int) -> np.ndarray:
        # windows(...)[y + grow] is runs[y - grow .. y + grow], without copying (y from -grow)
        padded = np.full(len(runs) + 4 * grow, fill, np.int64)
        padded[2 * grow:2 * grow + len(runs)] = runs
        return np.lib.stride_tricks.sliding_window_view(padded, 2 * grow + 1)[start + grow:stop + grow]

    lo = (windows(left, big) - dto).min(axis=1)
    hi = (windows(right, -big) - dfrom).max(axis=1)
    return lo, hi


def _fill_box(region: np.ndarray, box) -> None:
    h, w = region.shape
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    x0, y0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
    x1, y1 = min(int(math.ceil(x1)), w), min(int(math.ceil(y1)), h)
    region[y0:y1, x0:x1] = 1.0


# --- a whole batch --------------------------------------------------------------------

def mmf_maps(faces: FaceSet, min_confidence: float = 0.0, stick_scale: int = 1) -> dict[str, np.ndarray]:
    """Every map and mask for every image of a batch.

    Returns ``skeleton``, ``landmarks``, ``kps``, ``fused`` as (B, H, W, 3) float32 in 0..1
    (IMAGE values: the single-map functions' uint8 / 255) and ``face_mask``, ``person_mask``
    as (B, H, W) float32. The images of one batch must share one size (ComfyUI's IMAGE is one
    tensor); an image without faces gives black maps. Everything is drawn straight on zeroed
    output batches: no full-size copy is made, and pages left black are never written.
    """
    min_confidence = validate.number("min_confidence", min_confidence, 0.0, 1.0)
    stick_scale = validate.number("stick_scale", stick_scale, 1, integer=True)
    if len(faces) == 0:
        raise ValueError("FACES holds no images: run FaceDetectMasks on an image first")
    sizes = {(im.height, im.width) for im in faces.images}
    if len(sizes) > 1:
        raise ValueError(f"the images of one batch must share one size to make one map batch, "
                         f"got sizes {sorted(sizes)}")
    height, width = sizes.pop()
    out = {name: np.zeros((len(faces), height, width, 3), np.float32)
           for name in ("skeleton", "landmarks", "kps", "fused")}
    for b, frame in enumerate(faces.images):
        skeleton_map(frame, min_confidence, stick_scale, canvas=out["skeleton"][b])
        landmark_map(frame, canvas=out["landmarks"][b])
        kps_map(frame, canvas=out["kps"][b])
        # Landmark colours are never black, so drawing the skeleton again and the landmarks over it
        # is fuse_maps, without copying a whole map.
        skeleton_map(frame, min_confidence, stick_scale, canvas=out["fused"][b])
        landmark_map(frame, canvas=out["fused"][b])
    out["face_mask"] = np.zeros((len(faces), height, width), np.float32)
    out["person_mask"] = np.zeros((len(faces), height, width), np.float32)
    for b, frame in enumerate(faces.images):
        face_region(frame, out=out["face_mask"][b])
        person_region(frame, min_confidence, out=out["person_mask"][b])
    return out


# --- when each map acts ---------------------------------------------------------------

SCHEDULES = ("together", "skeleton_then_face")


def mmf_schedule(schedule: str, start: float, end: float, switch: float = 0.5) -> dict[str, tuple[float, float]]:
    """The (start, end) fraction of sampling during which each control acts.

    "together": both over start..end. "skeleton_then_face": the paper's two modalities
    used in turn: the skeleton lays out the bodies early (start..switch), the face
    landmarks shape the faces late (switch..end). A range of zero length means that
    control is left out.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    start = validate.number("start_percent", start, 0.0, 1.0)
    end = validate.number("end_percent", end, 0.0, 1.0)
    switch = validate.number("switch_percent", switch, 0.0, 1.0)
    validate.ordered("start_percent", start, "end_percent", end)
    if schedule == "together":
        return {"skeleton": (start, end), "face": (start, end)}
    cut = min(max(switch, start), end)
    return {"skeleton": (start, cut), "face": (cut, end)}
