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
- A malformed entry (not a dict, wrong number of values) is an error naming the frame and person.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .records import COCO18_NAMES, Face

HEAD_POINTS = (0, 14, 15, 16, 17)  # nose, eyes, ears
MATCH_REACH = 0.5                  # a head may lie this fraction of the face size outside its box
ASPECT_TOLERANCE = 0.02


def _person_points(values, frame: int, person: int) -> np.ndarray:
    """pose_keypoints_2d (flat or nested) -> (18, 3) float64."""
    arr = np.asarray(values if values is not None else [], np.float64).reshape(-1)
    if arr.size != 3 * len(COCO18_NAMES):
        raise ValueError(f"POSE_KEYPOINT frame {frame}, person {person}: pose_keypoints_2d has {arr.size} values, "
                         f"expected {3 * len(COCO18_NAMES)} (18 OpenPose body points as x, y, confidence)")
    return arr.reshape(len(COCO18_NAMES), 3)


def frame_skeletons(frame: dict, height: int, width: int, index: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """One POSE_KEYPOINT frame -> (people's (18, 3) skeletons in image pixels, notes)."""
    if not isinstance(frame, dict):
        raise ValueError(f"POSE_KEYPOINT frame {index} is a {type(frame).__name__}, expected a dict with "
                         "'people', 'canvas_width' and 'canvas_height' (controlnet_aux's OpenPose JSON)")
    notes = []
    canvas_w = float(frame.get("canvas_width") or width)
    canvas_h = float(frame.get("canvas_height") or height)
    if abs((canvas_w / canvas_h) / (width / height) - 1) > ASPECT_TOLERANCE:
        notes.append(f"POSE_KEYPOINT canvas {canvas_w:.0f}x{canvas_h:.0f} has another aspect ratio than the "
                     f"{width}x{height} image; skeletons were stretched to fit")
    skeletons = []
    for p, person in enumerate(frame.get("people") or []):
        if not isinstance(person, dict):
            raise ValueError(f"POSE_KEYPOINT frame {index}, person {p} is a {type(person).__name__}, expected a dict")
        pts = _person_points(person.get("pose_keypoints_2d"), index, p)
        present = pts[:, 2] > 0
        normalised = present.any() and np.all(pts[present, :2] <= 1.0 + 1e-6)
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


def frames_for_batch(pose_keypoint, batch: int) -> list[dict | None]:
    """POSE_KEYPOINT (a list of frames, or one frame) -> one frame (or None) per image of the batch.

    One frame for a batch of several images is used for every image (a pose reference)."""
    if pose_keypoint is None:
        return [None] * batch
    frames = [pose_keypoint] if isinstance(pose_keypoint, dict) else list(pose_keypoint)
    if len(frames) == 1:
        return frames * batch
    return [frames[i] if i < len(frames) else None for i in range(batch)]
