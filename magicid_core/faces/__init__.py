"""Faces: where the faces of a picture are, and the pictures drawn from them.

The first layer of the core; it imports nothing from ``identity/`` or ``diffusion/``.

- ``records``: the face record every node passes along (Detection, Face, ImageFaces,
  FaceSet, Identity) and the keypoint orders.
- ``geometry``: boxes, NMS, the 5 InstantID keypoints, ``finish`` (shared by every detector,
  and by the sibling ``magicid_core.insightface`` backend).
- ``detection``: the mediapipe tile pyramid, dlib HOG, and the backend registry (``make_detector``).
- ``mesh`` (478-point face mesh), ``masks`` (face / head / box masks), ``pose`` (COCO-18 skeletons).
- ``crops``: crop boxes with context, zoom to a working size, paste back through a mask.
- ``preview``: the picture FaceDetectMasks shows.
- ``control_maps``: MMF (multi-modal fusion) control maps - OpenPose skeleton, face-mesh
  landmarks, InstantID keypoints - and the regions they belong to. They live here, not in a
  ``control/`` room of their own, because they only read face records and draw: a ControlNet
  map is a picture of the faces, and IDRestore's landmark hint (diffusion/) draws with them.
"""

from .control_maps import SCHEDULES, mmf_maps, mmf_schedule, skeleton_map
from .detection import BACKENDS, FaceDetector, make_detector, register_detector
from .geometry import ARCFACE_TEMPLATE, DEFAULT_MIN_FACE, finish, five_keypoints, nms
from .masks import MASK_MODES, face_masks, head_box
from .mesh import face_mesh
from .pose import PoseEstimator
from .preview import draw_preview
from .records import COCO18_NAMES, KEYPOINT_NAMES, Detection, Face, FaceSet, Identity, ImageFaces

__all__ = [
    "COCO18_NAMES", "KEYPOINT_NAMES", "Detection", "Face", "FaceSet", "Identity", "ImageFaces",
    "ARCFACE_TEMPLATE", "DEFAULT_MIN_FACE", "finish", "five_keypoints", "nms",
    "BACKENDS", "FaceDetector", "make_detector", "register_detector",
    "face_mesh", "MASK_MODES", "face_masks", "head_box", "PoseEstimator", "draw_preview",
    "SCHEDULES", "mmf_maps", "mmf_schedule", "skeleton_map",
]
