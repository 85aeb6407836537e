"""478-point face mesh per face, from mediapipe FaceMesh run on that face's own crop.

Running the mesh on the whole frame would make mediapipe re-detect faces at 128 px
(losing the small ones) and cap the count; a square crop around each detected box gives
every face the model's full resolution, and the points are mapped back to the image.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

CROP_SCALE = 2.0   # crop side = 2x the detection box side, centred on the box
CROP_SIZE = 256    # the crop is resized to this before FaceMesh (its model runs at 192)

_LOCK = threading.Lock()
_MESH = None


def _face_mesh():
    global _MESH
    if _MESH is None:
        import mediapipe as mp

        _MESH = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                refine_landmarks=True, min_detection_confidence=0.3)
    return _MESH


def crop_square(image: np.ndarray, box: np.ndarray, scale: float, size: int) -> tuple[np.ndarray, float, float, float]:
    """A size x size crop of the square of side scale * max(box sides) around the box centre.

    Returns the crop and (x0, y0, px) with image = (x0, y0) + crop_pixel * px; outside the
    image is black. Cut first, then resize (area averaging when shrinking), so the cost
    follows the face, not the image.
    """
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(int(round(max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0) * scale)), 2)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    cut = image[max(y0, 0):max(min(y0 + side, h), 0), max(x0, 0):max(min(x0 + side, w), 0)]
    top, left = max(-y0, 0), max(-x0, 0)
    cut = cv2.copyMakeBorder(cut, top, side - top - cut.shape[0], left, side - left - cut.shape[1],
                             cv2.BORDER_CONSTANT, value=0)
    crop = cv2.resize(cut, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return crop, float(x0), float(y0), side / size


def face_mesh(image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """(478, 2) mesh points in image pixels for the face in `box`, or None if no mesh was found.

    A mesh whose centre falls outside the box belongs to a neighbour in the crop and is
    rejected.
    """
    crop, x0, y0, px = crop_square(image_rgb, box, CROP_SCALE, CROP_SIZE)
    with _LOCK:
        result = _face_mesh().process(crop)
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    pts = np.array([[p.x, p.y] for p in lm], np.float32) * CROP_SIZE * px + np.array([x0, y0], np.float32)
    cx, cy = pts.mean(axis=0)
    if not (box[0] <= cx <= box[2] and box[1] <= cy <= box[3]):
        return None
    return pts


@functools.cache
def face_oval() -> tuple[int, ...]:
    """Mesh indices of the face outline in order: mediapipe's FACEMESH_FACE_OVAL edges chained."""
    import mediapipe as mp

    nxt = {}
    for a, b in mp.solutions.face_mesh.FACEMESH_FACE_OVAL:
        nxt.setdefault(a, []).append(b)
        nxt.setdefault(b, []).append(a)
    order, prev, cur = [10], None, 10  # 10 = top of the forehead
    while True:
        step = [n for n in nxt[cur] if n != prev][0]
        if step == order[0]:
            return tuple(order)
        order.append(step)
        prev, cur = cur, step


# Mesh points for the 5 InstantID keypoints: iris centres (refined mesh), nose tip, mouth corners.
KEYPOINT_MESH_INDICES = {"eyes": (468, 473), "nose": 1, "mouth": (61, 291)}


def keypoints_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(5, 2) InstantID keypoints measured on the mesh (real mouth corners, iris centres)."""
    eyes = sorted([mesh[i] for i in KEYPOINT_MESH_INDICES["eyes"]], key=lambda p: p[0])
    mouth = sorted([mesh[i] for i in KEYPOINT_MESH_INDICES["mouth"]], key=lambda p: p[0])
    return np.array([eyes[0], eyes[1], mesh[KEYPOINT_MESH_INDICES["nose"]], mouth[0], mouth[1]], np.float32)
