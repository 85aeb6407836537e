"""The face record: one source of truth that every node passes along.

``FaceDetectMasks`` creates a :class:`FaceSet` once; later steps read it and
never re-detect unless asked. Each face's mask is stored at crop size with its box.
All coordinates are pixels of the analysed image, ``x`` to the right and ``y`` down.
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
class PulidInputs:
    """What PuLID-Flux's IDFormer reads of each reference face (R references, stacked).

    The raw ArcFace vector (antelopev2, not normalised), and EVA02-CLIP-L-14-336's embedding and 5 hidden
    states of the aligned face with its background removed by face parsing. The IDFormer's tokens of
    each reference are averaged, as ApplyPulidFlux averages several images.
    """

    arcface_raw: np.ndarray    # (R, 512) float32
    eva_embedding: np.ndarray  # (R, 768) float32, as the EVA-CLIP returns it (PuLID normalises it)
    eva_hidden: np.ndarray     # (5, R, 577, 1024) float32


@dataclass
class FaceCLIPEmbedding:
    """CLIP vision's penultimate hidden states of a person's aligned face crop: what IP-Adapter FaceID
    Plus / Plus v2 read next to the ArcFace vector (IPAdapter_plus's ``get_image_embeds_faceid_plus``).

    IPAdapter_plus crops the face at 224 px for SD1.5 adapters and 256 px for SDXL ones (insightface's
    ``norm_crop``), so both are kept; several reference photos are averaged (its "average" combine).
    """

    by_crop: dict[int, np.ndarray]   # crop size (224, 256) -> (tokens, width) float32 hidden states
    negative: np.ndarray             # (tokens, width) of a black 224 px image: the "no identity" input
    model: str = ""                  # which CLIP vision model made them (for messages)

    @property
    def width(self) -> int:
        return int(self.negative.shape[-1])


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
    # what PuLID-Flux reads (IdentityFromImages with the EVA-CLIP and face parsing); None: SD adapters only
    pulid: PulidInputs | None = None
    # CLIP vision of the face crop, for FaceID Plus / Plus v2; None when built without CLIP_VISION
    face_clip: FaceCLIPEmbedding | None = None


@dataclass
class Face:
    """One detected face in one image.

    Its mask is kept at the size of its region (``mask_box``), as Impact Pack's SEGS keep
    ``cropped_mask`` with its ``crop_region``: 12 faces on a 4096 px photo then hold what
    the faces cost, not 12 whole images. ``full_mask`` gives the whole-image canvas.
    """

    index: int                 # position in the image's ordered face list
    box: np.ndarray            # (4,) float32 x0, y0, x1, y1
    score: float               # detector confidence in 0..1
    keypoints: np.ndarray      # (5, 2) float32, KEYPOINT_NAMES order
    head_box: np.ndarray       # (4,) float32, the box grown to take in hair and chin
    detector: str = ""         # which backend found it
    landmarks: np.ndarray | None = None   # (468 or 478, 2) mediapipe face mesh, or None
    mask: np.ndarray | None = None        # float32 0..1, exclusive to this face, over mask_box only
    mask_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (x1, y1 exclusive) the mask covers;
                                                       # None = the whole image
    skeleton: np.ndarray | None = None    # (18, 3) COCO-18 x, y, confidence (0 = missing)
    embedding: np.ndarray | None = None   # (D,) float32, L2-normalised identity vector
    embedding_model: str | None = None    # e.g. "arcface:antelopev2" or "dlib_resnet_v1"
    landmarks68: np.ndarray | None = None  # (68, 2) iBUG/OpenPose-face layout, from any landmark backend
    # which backend made each part: detection, landmarks, keypoints, skeleton, embedding
    # (e.g. {"detection": "dlib_hog", "landmarks": "dlib_68", "skeleton": "head_only"})
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    def mask_region(self, height: int, width: int) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the face's mask in its (height, width) image, checked to fit it."""
        if self.mask is None:
            raise ValueError(f"face {self.index} has no mask: use the FACES output of FaceDetectMasks")
        x0, y0, x1, y1 = (0, 0, width, height) if self.mask_box is None else (int(v) for v in self.mask_box)
        if self.mask.shape != (y1 - y0, x1 - x0) or x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ValueError(f"the mask of face {self.index} is {self.mask.shape[1]}x{self.mask.shape[0]} at "
                             f"({x0}, {y0}) but its image is {width}x{height}: masks must be in the image's pixels")
        return x0, y0, x1, y1

    def full_mask(self, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """(height, width) float32: the mask pasted on its whole image, zeros outside its region
        (and everywhere when the face has no mask). Only for code that needs a whole canvas;
        ``out``: a zeroed canvas to paste into instead of a new one."""
        out = np.zeros((height, width), np.float32) if out is None else out
        if self.mask is not None:
            x0, y0, x1, y1 = self.mask_region(height, width)
            out[y0:y1, x0:x1] = self.mask
        return out

    @property
    def mask_area(self) -> int | None:
        """Pixels where the mask is above one half (None without a mask)."""
        return None if self.mask is None else int((self.mask > 0.5).sum())

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
            "landmarks68": listed(self.landmarks68),
            "sources": dict(self.sources),
            "skeleton": None if self.skeleton is None else dict(zip(COCO18_NAMES, listed(self.skeleton))),
            "embedding_model": self.embedding_model,
            "embedding": listed(self.embedding),
            "mask_area": self.mask_area,
        }


@dataclass
class ImageFaces:
    """The faces of one image, in their stable order."""

    height: int
    width: int
    faces: list[Face] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what the analysis could not do, said once

    def masks(self) -> np.ndarray:
        """(N, H, W) float32 per-face masks at the image's size, zeros where a face has none
        (the MASK output; each face itself keeps only its crop)."""
        out = np.zeros((len(self.faces), self.height, self.width), np.float32)
        for face, canvas in zip(self.faces, out):
            face.full_mask(self.height, self.width, out=canvas)
        return out

    def union_mask(self, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) float32: every face's mask together (their maximum), built crop by crop
        (on ``out``, a zeroed canvas, when given)."""
        out = np.zeros((self.height, self.width), np.float32) if out is None else out
        for face in self.faces:
            if face.mask is not None:
                x0, y0, x1, y1 = face.mask_region(self.height, self.width)
                np.maximum(out[y0:y1, x0:x1], face.mask, out=out[y0:y1, x0:x1])
        return out

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "faces": [f.to_dict() for f in self.faces],
                "notes": list(self.notes)}


@dataclass
class FaceSet:
    """The FACES value: the faces of every image of a batch."""

    images: list[ImageFaces] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ImageFaces:
        return self.images[i]

    @property
    def notes(self) -> list[str]:
        """Every image's notes, each said once, in order."""
        return list(dict.fromkeys(n for im in self.images for n in im.notes))

    @property
    def face_count(self) -> int:
        return sum(len(im.faces) for im in self.images)

    def select(self, indices: list[int]) -> "FaceSet":
        """The same images with only the faces at these indices (re-numbered)."""
        picked = []
        for im in self.images:
            kept = [replace(im.faces[i], index=n) for n, i in enumerate(indices) if 0 <= i < len(im.faces)]
            picked.append(ImageFaces(im.height, im.width, kept, list(im.notes)))
        return FaceSet(picked)

    def to_dict(self) -> dict:
        return {"images": [im.to_dict() for im in self.images]}
