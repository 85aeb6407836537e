"""Body skeletons from controlnet_aux's POSE_KEYPOINT, matched to the faces by position.

POSE_KEYPOINT is the OpenPose-JSON list that controlnet_aux's DWPose / OpenPose
preprocessors pass between nodes, one frame per image of the batch:

    [{"people": [{"pose_keypoints_2d": [x, y, c, ...18 points...],
                  "face_keypoints_2d": [...] or None, "hand_left_keypoints_2d": ..., ...}],
      "canvas_width": W, "canvas_height": H}, ...]

Points are in canvas pixels, or normalised 0..1 (DWPose writes them so); c = 0 marks a
missing point. The 18 body points are OpenPose's COCO-18 order, the order of
``faces.COCO18_NAMES``.

Documented behaviour on every input:

- The canvas is the same picture at another size (controlnet_aux's detect resolution): points
  are scaled by image size / canvas size on each axis. A canvas whose aspect ratio differs by
  more than 2 % from the image's is still scaled per axis, and a note says so.
- Each face takes the person whose head (nose, eyes and ears present) lies closest to the face's
  centre, within the face's box grown by half its size; one person per face, one face per person
  (optimal assignment). More people than faces: the others are left out. Fewer people, no
  people, an empty list or a missing frame: the unmatched faces keep what they had (a head-only
  skeleton), and a note says how many were matched.
- A malformed entry (not a dict, people not a list, wrong number of values, NaN or infinite numbers,
  a canvas size that is not a positive number, a point farther than one canvas size outside the
  canvas) is an error naming the frame, person and point.
- More frames than images: the extra frames are not used, and a note says so.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import validate
from .records import COCO18_NAMES, Face

HEAD_POINTS = (0, 14, 15, 16, 17)  # nose, eyes, ears
MATCH_REACH = 0.5                  # a head may lie this fraction of the face size outside its box
ASPECT_TOLERANCE = 0.02
PLAUSIBLE_REACH = 1.0              # a body point may lie this many canvas sizes outside the canvas


def _person_points(values, frame: int, person: int) -> np.ndarray:
    """pose_keypoints_2d (flat or nested) -> (18, 3) float64, every number finite."""
    where = f"pose_keypoint frame {frame}, person {person}: pose_keypoints_2d"
    arr = validate.numbers(where, values if values is not None else [], 3 * len(COCO18_NAMES),
                           "18 OpenPose body points as x, y, confidence")
    return arr.reshape(len(COCO18_NAMES), 3)


def _canvas_side(frame: dict, key: str, image_side: int, index: int) -> float:
    """canvas_width / canvas_height: a positive number; missing or 0: the image's own side."""
    value = frame.get(key)
    if value is None or (isinstance(value, (int, float)) and value == 0):
        return float(image_side)
    return validate.number(f"pose_keypoint frame {index}: {key}", value, 1.0)


def _check_plausible(pts: np.ndarray, present: np.ndarray, size: tuple[float, float], frame: int,
                     person: int) -> None:
    """Every present point within PLAUSIBLE_REACH canvas sizes of the canvas (``size`` = 1, 1 when normalised)."""
    for axis, side in enumerate(size):
        far = present & ((pts[:, axis] < -PLAUSIBLE_REACH * side) | (pts[:, axis] > (1 + PLAUSIBLE_REACH) * side))
        if far.any():
            k = int(np.flatnonzero(far)[0])
            canvas = "0..1 (normalised)" if size == (1.0, 1.0) else f"{size[0]:.0f}x{size[1]:.0f} canvas"
            raise validate.BadInput(
                f"pose_keypoint frame {frame}, person {person}: point {k} ({COCO18_NAMES[k]}) is at "
                f"({pts[k, 0]:.4g}, {pts[k, 1]:.4g}), far outside the {canvas}: give points in canvas pixels "
                "or 0..1; the node that made this POSE_KEYPOINT is damaged")


def frame_skeletons(frame: dict, height: int, width: int, index: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """One POSE_KEYPOINT frame -> (people's (18, 3) skeletons in image pixels, notes)."""
    if not isinstance(frame, dict):
        raise validate.BadInput(f"pose_keypoint: POSE_KEYPOINT frame {index} is a {type(frame).__name__}, expected a "
                                "dict with 'people', 'canvas_width' and 'canvas_height' (controlnet_aux's OpenPose "
                                "JSON)")
    notes = []
    canvas_w = _canvas_side(frame, "canvas_width", width, index)
    canvas_h = _canvas_side(frame, "canvas_height", height, index)
    if abs((canvas_w / canvas_h) / (width / height) - 1) > ASPECT_TOLERANCE:
        notes.append(f"POSE_KEYPOINT canvas {canvas_w:.0f}x{canvas_h:.0f} has another aspect ratio than the "
                     f"{width}x{height} image; skeletons were stretched to fit")
    people = frame.get("people")
    if people is not None and not isinstance(people, (list, tuple)):
        raise validate.BadInput(f"pose_keypoint frame {index}: people is a {type(people).__name__}, expected a list "
                                "of people (controlnet_aux's OpenPose JSON)")
    skeletons = []
    for p, person in enumerate(people or []):
        if not isinstance(person, dict):
            raise validate.BadInput(f"pose_keypoint: POSE_KEYPOINT frame {index}, person {p} is a "
                                    f"{type(person).__name__}, expected a dict")
        pts = _person_points(person.get("pose_keypoints_2d"), index, p)
        present = pts[:, 2] > 0
        normalised = present.any() and np.all(pts[present, :2] <= 1.0 + 1e-6)
        _check_plausible(pts, present, (1.0, 1.0) if normalised else (canvas_w, canvas_h), index, p)
        scale = (width, height) if normalised else (width / canvas_w, height / canvas_h)
        out = np.zeros((len(COCO18_NAMES), 3), np.float32)
        out[present, 0] = pts[present, 0] * scale[0]
        out[present, 1] = pts[present, 1] * scale[1]
        out[present, 2] = np.clip(pts[present, 2], 0, 1)
        skeletons.append(out)
    return skeletons, notes


def match_people(faces: list[Face], skeletons: list[np.ndarray]) -> list[int | None]:
    """Per face, the index of its person in ``skeletons`` (see the module doc), or None."""
    if not faces or not skeletons:
        return [None] * len(faces)
    cost = np.full((len(faces), len(skeletons)), np.inf)
    for i, face in enumerate(faces):
        size = max(face.width, face.height, 1.0)
        cx, cy = face.center
        for j, sk in enumerate(skeletons):
            head = sk[list(HEAD_POINTS)]
            head = head[head[:, 2] > 0, :2]
            if not len(head):
                continue
            hx, hy = head.mean(axis=0)
            reach_x = face.width / 2 + MATCH_REACH * size
            reach_y = face.height / 2 + MATCH_REACH * size
            if abs(hx - cx) <= reach_x and abs(hy - cy) <= reach_y:
                cost[i, j] = np.hypot(hx - cx, hy - cy) / size
    finite = np.where(np.isfinite(cost), cost, 1e6)
    rows, cols = linear_sum_assignment(finite)
    out: list[int | None] = [None] * len(faces)
    for r, c in zip(rows, cols):
        if np.isfinite(cost[r, c]):
            out[r] = int(c)
    return out


def apply_pose_keypoint(faces: list[Face], frame: dict | None, height: int, width: int,
                        index: int = 0) -> list[str]:
    """Give each face the skeleton of its person from one POSE_KEYPOINT frame; returns notes.

    Matched faces get ``sources["skeleton"] = "pose_keypoint"``; the others keep theirs.
    """
    if frame is None:
        return [f"POSE_KEYPOINT has no frame for image {index}; its faces keep head-only skeletons"] if faces else []
    skeletons, notes = frame_skeletons(frame, height, width, index)
    matched = match_people(faces, skeletons)
    for face, j in zip(faces, matched):
        if j is not None:
            face.skeleton = skeletons[j]
            face.sources["skeleton"] = "pose_keypoint"
    hits = sum(j is not None for j in matched)
    if faces and hits < len(faces):
        notes.append(f"POSE_KEYPOINT image {index}: {len(skeletons)} people for {len(faces)} faces, {hits} matched; "
                     f"the other faces keep head-only skeletons")
    return notes


def _frame_list(pose_keypoint) -> list:
    if isinstance(pose_keypoint, dict):
        return [pose_keypoint]
    if not isinstance(pose_keypoint, (list, tuple)):
        raise validate.BadInput(f"pose_keypoint is a {type(pose_keypoint).__name__}, not a POSE_KEYPOINT: connect "
                                "controlnet_aux's DWPose / OpenPose output (a list of frames)")
    return list(pose_keypoint)


def frames_for_batch(pose_keypoint, batch: int) -> list[dict | None]:
    """POSE_KEYPOINT (a list of frames, or one frame) -> one frame (or None) per image of the batch.

    One frame for a batch of several images is used for every image (a pose reference)."""
    if pose_keypoint is None:
        return [None] * batch
    frames = _frame_list(pose_keypoint)
    if len(frames) == 1:
        return frames * batch
    return [frames[i] if i < len(frames) else None for i in range(batch)]


def batch_notes(pose_keypoint, batch: int, skeletons: bool) -> list[str]:
    """What of a connected POSE_KEYPOINT goes unused: all of it with skeletons off, or the frames
    beyond the batch's images."""
    if pose_keypoint is None:
        return []
    if not skeletons:
        return ["pose_keypoint is connected but skeletons is off: its poses were not used (turn skeletons on)"]
    frames = _frame_list(pose_keypoint)
    if len(frames) > max(batch, 1):
        return [f"pose_keypoint has {len(frames)} frames for {batch} image(s): frames {batch}..{len(frames) - 1} "
                "were not used"]
    return []
