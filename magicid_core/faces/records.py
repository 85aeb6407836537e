"""The face record: one source of truth that every node passes along.

``FaceDetectMasks`` creates a :class:`FaceSet` once; later steps read it and
never re-detect unless asked. All coordinates are pixels of the analysed image,
``x`` to the right and ``y`` down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# The 5 keypoints in InstantID / insightface order, named as seen in the image:
# the eye on the image's left comes first.
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# OpenPose COCO-18 body keypoint order (what OpenPose ControlNets were trained on).
COCO18_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)


@dataclass
class Detection:
    """What a face detector backend returns, before mesh, masks and identity."""

    box: np.ndarray            # (4,) float32 x0, y0, x1, y1
    score: float               # confidence in 0..1
    keypoints: np.ndarray      # (5, 2) float32, KEYPOINT_NAMES order
    source: str = ""           # backend name, e.g. "mediapipe", "insightface", "dlib_hog"


@dataclass
class Identity:
    """A reference identity: who should appear (the IDENTITIES type is a list of these)."""

    name: str
    embedding: np.ndarray      # (D,) float32, L2-normalised
    embedding_model: str       # must match the faces' embedding_model to be compared
    reference_count: int = 1   # how many reference faces were averaged into it
    hint: str = ""             # optional prompt text (e.g. "a young girl" from kin blend)
    # the recogniser's raw vector norm (insightface's Face.embedding_norm; InstantID reads raw vectors),
    # averaged over the references; None when the backend has no raw vector
    embedding_norm: float | None = None


@dataclass
class Face:
    """One detected face in one image."""

    index: int                 # position in the image's ordered face list
    box: np.ndarray            # (4,) float32 x0, y0, x1, y1
    score: float               # detector confidence in 0..1
    keypoints: np.ndarray      # (5, 2) float32, KEYPOINT_NAMES order
    head_box: np.ndarray       # (4,) float32, the box grown to take in hair and chin
    detector: str = ""         # which backend found it
    landmarks: np.ndarray | None = None   # (468 or 478, 2) face mesh, or None
    mask: np.ndarray | None = None        # (H, W) float32 0..1, exclusive to this face
    skeleton: np.ndarray | None = None    # (18, 3) COCO-18 x, y, confidence (0 = missing)
    embedding: np.ndarray | None = None   # (D,) float32, L2-normalised identity vector
    embedding_model: str | None = None    # e.g. "arcface:antelopev2" or "dlib_resnet_v1"

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    def to_dict(self) -> dict:
        """JSON-ready summary (masks are left out: they are images, not numbers)."""
        def listed(a):
            return None if a is None else np.round(np.asarray(a, dtype=np.float64), 2).tolist()

        return {
            "index": self.index,
            "box": listed(self.box),
            "score": round(float(self.score), 4),
            "keypoints": dict(zip(KEYPOINT_NAMES, listed(self.keypoints))),
            "head_box": listed(self.head_box),
            "detector": self.detector,
            "landmarks": listed(self.landmarks),
            "skeleton": None if self.skeleton is None else dict(zip(COCO18_NAMES, listed(self.skeleton))),
            "embedding_model": self.embedding_model,
            "embedding": listed(self.embedding),
            "mask_area": None if self.mask is None else int((self.mask > 0.5).sum()),
        }


@dataclass
class ImageFaces:
    """The faces of one image, in their stable order."""

    height: int
    width: int
    faces: list[Face] = field(default_factory=list)

    def masks(self) -> np.ndarray:
        """(N, H, W) float32 per-face masks, zeros where a face has none."""
        out = np.zeros((len(self.faces), self.height, self.width), np.float32)
        for i, face in enumerate(self.faces):
            if face.mask is not None:
                out[i] = face.mask
        return out

    def union_mask(self) -> np.ndarray:
        """(H, W) float32: every face's mask together."""
        if not self.faces:
            return np.zeros((self.height, self.width), np.float32)
        return self.masks().max(axis=0)

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "faces": [f.to_dict() for f in self.faces]}


@dataclass
class FaceSet:
    """The FACES value: the faces of every image of a batch."""

    images: list[ImageFaces] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ImageFaces:
        return self.images[i]

    @property
    def face_count(self) -> int:
        return sum(len(im.faces) for im in self.images)

    def select(self, indices: list[int]) -> "FaceSet":
        """The same images with only the faces at these indices (re-numbered)."""
        picked = []
        for im in self.images:
            kept = [replace(im.faces[i], index=n) for n, i in enumerate(indices) if 0 <= i < len(im.faces)]
            picked.append(ImageFaces(im.height, im.width, kept))
        return FaceSet(picked)

    def to_dict(self) -> dict:
        return {"images": [im.to_dict() for im in self.images]}
