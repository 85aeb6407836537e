"""Identity embeddings: one interface, two backends, and building a reference Identity.

Every backend turns a face (box + 5 keypoints) in an image into an L2-normalised
vector, names its model (vectors of different models cannot be compared) and
declares its match threshold on cosine similarity (both from ``embedding_models``' table).

- ``ArcFaceEmbedder``: insightface's ArcFace through onnxruntime (antelopev2 / buffalo_l),
  when the model files are present.
- ``DlibEmbedder``: dlib's ResNet face descriptor with the weights shipped in the
  ``face_recognition_models`` package: works offline with no downloads. The network runs
  through numpy (``dlib_resnet``), dlib aligns the face.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from .. import validate
from ..faces.dlib_stack import DlibHogDetector, face_recognition_models_dir
from ..faces.records import Detection, Identity
from ..image_io import to_rgb_uint8
from ..insightface import (ArcFaceRecognizer, InsightFaceDetector, InsightFaceModelError, find_pack,
                           find_pack_or_reason)
from ..insightface.arcface import l2_normalise
from ..optional import require
from .dlib_resnet import CHIP_PADDING, CHIP_SIZE, DlibModelFileError, DlibResNet
from .embedding_models import ARCFACE, DLIB
from .embedding_models import embedding_model as embedding_model_row
from .face_clip import face_clip_embedding, face_crops

log = logging.getLogger(__name__)

BACKENDS = ("auto", "arcface", "dlib")
# Reference photos are portraits: faces from 40 px are sought (dlib's HOG then upsamples once).
REFERENCE_MIN_FACE = 40

def most_prominent(detections: list[Detection]) -> Detection | None:
    """The reference face: largest box area x detector score (a big weak false positive loses)."""
    return max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) * d.score, default=None)


class ArcFaceEmbedder:
    """ArcFace from an insightface pack; finds reference faces with the same pack's SCRFD."""

    threshold = ARCFACE.threshold

    def __init__(self, models_roots=None, pack: str | None = None):
        found = find_pack(models_roots, pack)
        self.model_name = f"{ARCFACE.family}:{found.name}"
        self.recognizer = ArcFaceRecognizer(found)
        self.detector = InsightFaceDetector(found, min_face=REFERENCE_MIN_FACE)

    def find_faces(self, image: np.ndarray) -> list[Detection]:
        return self.detector.detect(image)

    def embed(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        return self.recognizer.embed(image, keypoints)

    def embed_raw(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The recogniser's output before normalisation (insightface's ``Face.embedding``)."""
        return self.recognizer.raw_embedding(image, keypoints)


class DlibEmbedder:
    """dlib's ResNet descriptor, aligned by dlib's 5-point shape predictor run on the face box.

    dlib cuts the aligned 150x150 chip (as its ``compute_face_descriptor`` does) and ``DlibResNet``
    runs the network from the same file, several times quicker than dlib-bin's own loop.
    """

    model_name = DLIB.family
    threshold = DLIB.threshold
    FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")

    def __init__(self, models_dir: Path | None = None):
        dlib = require("dlib", "dlib identity embeddings")
        folder = Path(models_dir) if models_dir else face_recognition_models_dir()
        paths = [folder / f for f in self.FILES]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"dlib identity model files missing in {folder}: {', '.join(missing)}")
        try:
            self.shape_predictor = dlib.shape_predictor(str(paths[0]))
            self.network = DlibResNet(paths[1])
        except (RuntimeError, DlibModelFileError) as e:
            raise ValueError(f"dlib model files in {folder} could not be loaded ({e}); reinstall "
                             "face_recognition_models") from e
        self._dlib = dlib
        self._hog = DlibHogDetector(min_face=REFERENCE_MIN_FACE)

    def find_faces(self, image: np.ndarray) -> list[Detection]:
        """Reference faces with dlib's HOG detector, the boxes its shape predictor was trained on."""
        return self._hog.detect(to_rgb_uint8(image))

    def shape5(self, image: np.ndarray, box: np.ndarray):
        """dlib's 5-point shape of the face in box: what dlib aligns the chip by."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return self.shape_predictor(image, self._dlib.rectangle(x0, y0, x1, y1))

    def shapes5(self, image: np.ndarray, boxes):
        """The faces' 5-point shapes as dlib's ``full_object_detections``, what its chip functions take."""
        shapes = self._dlib.full_object_detections()
        for box in boxes:
            shapes.append(self.shape5(image, box))
        return shapes

    def embed(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        return self.embed_many(image, [box])[0]

    def embed_many(self, image: np.ndarray, boxes) -> list[np.ndarray]:
        """The faces of one image through the network as one batch."""
        return [l2_normalise(d) for d in self.raw_descriptors(image, boxes)]

    def raw_descriptors(self, image: np.ndarray, boxes) -> np.ndarray:
        """(faces, 128): dlib's descriptors before normalisation, as ``compute_face_descriptor`` gives them."""
        image = to_rgb_uint8(image)
        shapes = self.shapes5(image, boxes)
        if not len(shapes):
            return np.zeros((0, 128), np.float32)
        chips = np.stack(self._dlib.get_face_chips(image, shapes, size=CHIP_SIZE, padding=CHIP_PADDING))
        return self.network.descriptors(chips)


@functools.lru_cache(maxsize=8)
def _cached_embedder(backend: str, pack_folder: str | None = None, pack: str | None = None):
    """One embedder per model: dlib's, or ArcFace from the pack in ``pack_folder`` (keyed by the pack found
    at each call, so a pack put in place, or swapped, while ComfyUI runs is used at once)."""
    if backend == "dlib":
        return DlibEmbedder()
    return ArcFaceEmbedder(pack_folder, pack)


def pack_embedder(pack) -> ArcFaceEmbedder:
    """ArcFace of a found insightface pack: the same object make_embedder gives for that pack."""
    return _cached_embedder("arcface", str(pack.folder), pack.name)


def make_embedder(backend: str = "auto", models_roots=None):
    """An embedder by name; ``auto`` = ArcFace when an insightface pack is found, else dlib.

    ``models_roots``: the insightface models folder(s); None = ``$MAGICID_INSIGHTFACE_DIR``.
    Models are loaded once per model (dlib, or the pack's folder) and reused.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown identity backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if isinstance(models_roots, (str, os.PathLike)):
        models_roots = [models_roots]
    if backend == "dlib":
        return _cached_embedder("dlib")
    pack, no_pack = find_pack_or_reason(models_roots)
    if pack is not None:
        return pack_embedder(pack)
    if backend == "auto":
        return _cached_embedder("dlib")
    raise InsightFaceModelError(no_pack)


def check_dlib_identities(adapter, identities, models_roots=None) -> None:
    """An adapter that reads ArcFace vectors (IP-Adapter FaceID, InstantID) given dlib identities: a ValueError
    saying where dlib identities come from and, when no insightface pack is there, where it looked."""
    names = [repr(i.name) for i in identities if i.embedding_model == DLIB.family]
    if not names or adapter.embedding_dim == DLIB.dim:
        return
    pack, no_pack = find_pack_or_reason(models_roots)
    if pack is not None:
        why = (f"An insightface pack is there now ({pack.folder}): build the identities again with "
               "IdentityFromImages (backend auto or arcface).")
    else:
        why = (f"IdentityFromImages makes dlib identities when its backend is dlib, or on auto when no insightface "
               f"pack is found, and none was: {no_pack}. Then build the identities again.")
    raise ValueError(f"identities {', '.join(names)} came from dlib ({DLIB.family}, {DLIB.dim}-d), but "
                     f"{adapter.describe()} reads {adapter.embedding_dim}-d ArcFace embeddings. {why}")


def build_identity(name: str, images, embedder, hint: str = "", on_image=None, clip_encoder=None,
                   pulid_encoder=None) -> Identity:
    """An Identity from one or several reference images of one person.

    In each image the most prominent face (area x score) is the person; its embedding is averaged with the
    others' and renormalised. An image without a face is an error naming that image.
    An embedder that also has ``embed_raw(image, box, keypoints)`` (the model's vector before
    normalisation; ArcFace has it) gives the Identity its ``embedding_norm``, the mean raw norm.
    ``on_image(i)`` is called after each image (progress reporting).
    ``clip_encoder`` (face_clip.FaceCLIPEncoder): also encode each reference face's aligned crop with
    CLIP vision, what FaceID Plus / Plus v2 adapters read (the Identity's ``face_clip``).
    ``pulid_encoder`` (pulid_inputs.PulidFaceEncoder): also make what PuLID-Flux reads of each reference
    (the Identity's ``pulid``), with its own antelopev2 pack whatever the embedder.
    """
    images = list(images)
    if not images:
        raise ValueError(f"identity {name!r}: no reference images given")
    vectors, raw_norms, crops, pulid_faces = [], [], [], []
    embed_raw = getattr(embedder, "embed_raw", None)   # backends with a raw vector keep its norm
    for i, given in enumerate(images):
        image = to_rgb_uint8(given)
        face = most_prominent(embedder.find_faces(image))
        if face is None:
            raise ValueError(f"identity {name!r}: no face found in reference image {i + 1} of {len(images)} "
                             f"({image.shape[1]}x{image.shape[0]}); use a clear, roughly frontal photo of the face")
        if embed_raw is None:
            vectors.append(embedder.embed(image, face.box, face.keypoints))
        else:
            raw = embed_raw(image, face.box, face.keypoints)
            raw_norms.append(float(np.linalg.norm(raw)))
            vectors.append(l2_normalise(raw))
        if clip_encoder is not None:   # from the given pixels, as IPAdapter_plus converts them
            crops.append(face_crops(given, face.keypoints))
        if pulid_encoder is not None:
            pulid_faces.append(_pulid_face(name, i, len(images), given, pulid_encoder))
        if on_image is not None:
            on_image(i)
    return Identity(name=name, embedding=l2_normalise(np.mean(vectors, axis=0)),
                    embedding_model=embedder.model_name, reference_count=len(vectors), hint=hint,
                    embedding_norm=float(np.mean(raw_norms)) if raw_norms else None,
                    face_clip=face_clip_embedding(crops, clip_encoder) if crops else None,
                    pulid=pulid_encoder.inputs(pulid_faces) if pulid_faces else None)


def _pulid_face(name: str, index: int, count: int, image, encoder):
    encoded = encoder.encode(image)
    if encoded is None:
        raise ValueError(f"identity {name!r}: insightface's antelopev2 pack found no face in reference image "
                         f"{index + 1} of {count}, and PuLID-Flux reads its ArcFace vector; use a clear, roughly "
                         "frontal photo of the face")
    return encoded


# Widths of image embeddings that are NOT face identities: CLIP vision (IPAdapterEncoder's EMBEDS).
CLIP_WIDTHS = {768: "CLIP ViT-L", 1024: "CLIP ViT-H", 1280: "CLIP ViT-bigG"}
RAW_NORMS = (1.0, 1000.0)   # raw recogniser lengths lie well inside (dlib about 1.4, ArcFace about 15 to 35)


def embedding_models() -> list[str]:
    """The embedding models an identity can name: ArcFace of each insightface pack, then dlib."""
    from ..insightface.packs import PACKS

    return [f"arcface:{name}" for name in PACKS] + [DLIB.family]


def identity_from_embeddings(name: str, vectors, embedding_model: str) -> Identity:
    """An Identity from face embeddings another pack already computed (insightface's
    ``normed_embedding`` or raw ``embedding``, one row per reference face).

    One normalised row comes through unchanged; several are averaged and renormalised, as
    ``build_identity`` does. Any finite non-zero row is taken, whatever its length (only its
    direction is used); its length is kept as the raw norm (InstantID reads raw vectors) only
    where a recogniser could have made it (RAW_NORMS). An empty array, a zero row, NaN, or rows
    of another width than the model's are refused by name.
    """
    width = DLIB.dim if embedding_model == DLIB.family else ARCFACE.dim
    array = validate.vectors("embedding", vectors, width, lambda got: _width_hint(got, embedding_model))
    norms = np.linalg.norm(array, axis=1)          # float64: rows x1e30 or x1e-30 neither overflow nor vanish
    normalised = bool(np.all(np.abs(norms - 1.0) < 1e-6))
    rows = [row if abs(float(n) - 1.0) < 1e-6 else row / n for row, n in zip(array, norms)]
    mean = rows[0] if len(rows) == 1 else l2_normalise(np.mean(rows, axis=0))
    raw_norm = None if normalised else float(np.mean(norms))
    if raw_norm is not None and not RAW_NORMS[0] <= raw_norm <= RAW_NORMS[1]:
        log.info("identity %r: the embedding's length %.3g is no recogniser's; only its direction is used", name,
                 raw_norm)
        raw_norm = None
    # raw rows keep their mean length, as build_identity records it (InstantID reads raw vectors)
    return Identity(name=name, embedding=np.asarray(mean, np.float32), embedding_model=embedding_model,
                    reference_count=len(rows), embedding_norm=raw_norm)


def _width_hint(got: int, model_name: str) -> str:
    """What to do with a vector of ``got`` numbers given as ``model_name``: name the model it fits."""
    clip = CLIP_WIDTHS.get(got)
    if clip:
        return (f": this is a {clip} image embedding (IPAdapterEncoder), not a face identity; give insightface's "
                "face embedding (normed_embedding or embedding)")
    fits = [m for m in embedding_models() if embedding_model_row(m).dim == got]
    if fits:
        return (f" by {model_name}: {got} numbers make a {embedding_model_row(fits[0]).family} embedding, so "
                f"set embedding_model to {' or '.join(fits)}")
    return ": give insightface's face embedding (normed_embedding or embedding) or dlib's descriptor"
