"""Body skeletons per person: mediapipe Pose on a crop around each face, as OpenPose COCO-18.

mediapipe Pose (BlazePose, ``model_complexity=1``, shipped in the 0.10.21 wheel) finds one
person per image, so in a group photo it runs once per face on a person crop built around
that face: the face box grown sideways and, mostly, downwards where the body is, with
the other people's heads greyed out so that Pose takes the right person.

Result per face: an (18, 3) array in ``faces.COCO18_NAMES`` order, x, y in image pixels
and a confidence (BlazePose visibility; 0 = missing, e.g. outside the image). The neck,
which BlazePose lacks, is the mid-point of the shoulders.

Documented choice: a face always gets a skeleton, never None. When the body is out of
frame, or Pose finds nobody in the crop, or the person it finds is not the one of this
face (its nose falls outside the face's box), the skeleton holds only the head points
(nose and eyes from the face's 5 keypoints, with the face's detector score) and every
body point has confidence 0.
"""

from __future__ import annotations

import threading

import numpy as np

from .records import COCO18_NAMES
from ..image_io import to_rgb_uint8

# COCO-18 index -> BlazePose landmark index (BlazePose "left" is the subject's left, as in COCO).
_BLAZEPOSE_OF_COCO = {
    0: 0,                      # nose
    2: 12, 3: 14, 4: 16,       # right shoulder, elbow, wrist
    5: 11, 6: 13, 7: 15,       # left shoulder, elbow, wrist
    8: 24, 9: 26, 10: 28,      # right hip, knee, ankle
    11: 23, 12: 25, 13: 27,    # left hip, knee, ankle
    14: 5, 15: 2,              # right eye, left eye
    16: 8, 17: 7,              # right ear, left ear
}
NECK, R_SHOULDER, L_SHOULDER = 1, 2, 5

# Person crop around a face of size s (the larger box side): sideways for the arms, down for the body.
CROP_SIDE, CROP_ABOVE, CROP_BELOW = 2.5, 1.0, 7.0


def person_crop(face_box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the region where the face's body should be, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    s = max(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2
    box = (cx - CROP_SIDE * s, y0 - CROP_ABOVE * s, cx + CROP_SIDE * s, y1 + CROP_BELOW * s)
    return (int(max(0, box[0])), int(max(0, box[1])), int(min(width, np.ceil(box[2]))), int(min(height, np.ceil(box[3]))))


def blazepose_to_coco18(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(33, 3) BlazePose x, y (image pixels), visibility -> (18, 3) COCO-18; points outside the image get 0."""
    out = np.zeros((len(COCO18_NAMES), 3), np.float32)
    for coco, blaze in _BLAZEPOSE_OF_COCO.items():
        out[coco] = landmarks[blaze]
    inside = (out[:, 0] >= 0) & (out[:, 0] < width) & (out[:, 1] >= 0) & (out[:, 1] < height)
    out[~inside, 2] = 0.0
    r, l = out[R_SHOULDER], out[L_SHOULDER]
    if r[2] > 0 and l[2] > 0:
        out[NECK] = [(r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2])]
    out[out[:, 2] <= 0] = 0.0   # a missing point carries no position either
    return out


def head_only_skeleton(keypoints: np.ndarray, score: float) -> np.ndarray:
    """COCO-18 with only nose and eyes, from the face's 5 keypoints (image-left eye = subject's right eye)."""
    out = np.zeros((len(COCO18_NAMES), 3), np.float32)
    conf = float(np.clip(score, 1e-3, 1.0))
    out[0] = [*keypoints[2], conf]     # nose
    out[14] = [*keypoints[0], conf]    # r_eye
    out[15] = [*keypoints[1], conf]    # l_eye
    return out


def _inside(point, box, grow: float) -> bool:
    x0, y0, x1, y1 = box
    gx, gy = grow * (x1 - x0), grow * (y1 - y0)
    return x0 - gx <= point[0] <= x1 + gx and y0 - gy <= point[1] <= y1 + gy


class PoseEstimator:
    """One mediapipe Pose graph, reused for every face; call ``close()`` (or use ``with``) to free it."""

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5):
        import mediapipe as mp
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                            enable_segmentation=False,
                                            min_detection_confidence=min_detection_confidence)
        self._lock = threading.Lock()   # a mediapipe graph runs one image at a time

    def close(self):
        self._pose.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """(33, 3) x, y in crop pixels and visibility, or None when no person is found."""
        # pad to a square (bottom/right, black): mediapipe projects landmarks exactly only for square input
        side = max(crop.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        square[:crop.shape[0], :crop.shape[1]] = crop
        with self._lock:
            result = self._pose.process(square)
        if result.pose_landmarks is None:
            return None
        h = w = side
        return np.array([[p.x * w, p.y * h, p.visibility] for p in result.pose_landmarks.landmark], np.float32)

    def skeleton(self, image: np.ndarray, face_box: np.ndarray, keypoints: np.ndarray, score: float = 1.0,
                 other_heads=()) -> np.ndarray:
        """The (18, 3) COCO-18 skeleton of the person whose face is at ``face_box`` (see module doc).

        ``other_heads``: head boxes of the other people; they are greyed out in the crop, because
        BlazePose finds a person by their face and would otherwise often pick a neighbour.
        """
        image = to_rgb_uint8(image)
        height, width = image.shape[:2]
        x0, y0, x1, y1 = person_crop(face_box, height, width)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return head_only_skeleton(keypoints, score)
        crop = image[y0:y1, x0:x1].copy()
        for hx0, hy0, hx1, hy1 in (np.round(np.asarray(b, np.float64)).astype(int) for b in other_heads):
            crop[max(0, hy0 - y0):max(0, hy1 - y0), max(0, hx0 - x0):max(0, hx1 - x0)] = 128
        landmarks = self._landmarks(crop)
        if landmarks is None:
            return head_only_skeleton(keypoints, score)
        landmarks[:, :2] += (x0, y0)
        skeleton = blazepose_to_coco18(landmarks, height, width)
        if skeleton[0, 2] <= 0 or not _inside(skeleton[0], face_box, grow=0.25):
            return head_only_skeleton(keypoints, score)   # Pose still locked onto someone else
        return skeleton

    def skeletons(self, image: np.ndarray, faces) -> list[np.ndarray]:
        """One skeleton per face (Face records, or anything with ``box``, ``keypoints``, ``score``)."""
        image = to_rgb_uint8(image)
        heads = [getattr(f, "head_box", None) if getattr(f, "head_box", None) is not None else f.box for f in faces]
        return [self.skeleton(image, f.box, f.keypoints, f.score, heads[:i] + heads[i + 1:])
                for i, f in enumerate(faces)]
