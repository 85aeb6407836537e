"""The identity embedding models the pack knows, in one table: name, backend, size, threshold.

A face or an Identity names the model that made its vector (``embedding_model``); vectors of
different models cannot be compared. ArcFace vectors are named ``arcface:<pack>`` after the
insightface pack that made them (antelopev2 or buffalo_l, see ``insightface.packs.PACKS``);
every pack's ArcFace shares one row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbeddingModel:
    family: str        # the embedding_model name, or its prefix before ":" (arcface:<pack>)
    backend: str       # the identity backend that makes it (embedders.BACKENDS)
    dim: int           # length of the vector
    threshold: float   # cosine similarity at or above which two faces are the same person
    weights: str       # where its weights come from


# dlib documents "same person" as euclidean distance < 0.6 between raw 128-d descriptors.
# Its descriptors have a near-constant norm r (1.41..1.46 on our sample faces, mean 1.43), so
# d^2 = 2 r^2 (1 - cos) and d < 0.6  <=>  cos > 1 - 0.6^2 / (2 * 1.43^2) = 0.912.
DLIB_DESCRIPTOR_NORM = 1.43
DLIB_THRESHOLD = round(1.0 - 0.6 ** 2 / (2 * DLIB_DESCRIPTOR_NORM ** 2), 3)
# ArcFace (glintr100 / w600k_r50): cosine 0.3 is the usual same-person working point of these
# models; we could not measure it here (no insightface weights on this machine).
ARCFACE_THRESHOLD = 0.3

ARCFACE = EmbeddingModel("arcface", "arcface", 512, ARCFACE_THRESHOLD,
                         "an insightface pack (antelopev2 or buffalo_l) in ComfyUI/models/insightface/models/<pack>")
DLIB = EmbeddingModel("dlib_resnet_v1", "dlib", 128, DLIB_THRESHOLD,
                      "dlib's ResNet descriptor, shipped in the face_recognition_models package")
EMBEDDING_MODELS = (ARCFACE, DLIB)
DLIB_MODEL_NAME = DLIB.family


def embedding_model(name: str) -> EmbeddingModel:
    """The table's row for vectors named ``name`` (e.g. "arcface:antelopev2", "dlib_resnet_v1")."""
    for model in EMBEDDING_MODELS:
        if name == model.family or str(name).startswith(model.family + ":"):
            return model
    known = ", ".join(m.family + (":<pack>" if m is ARCFACE else "") for m in EMBEDDING_MODELS)
    raise ValueError(f"unknown embedding model {name!r} (known: {known}): "
                     "build the identities with IdentityFromImages")


def threshold_for(name: str) -> float:
    """The match threshold (cosine similarity) for vectors of this embedding model."""
    return embedding_model(name).threshold


def backend_of(name: str) -> str:
    """The identity backend that makes vectors of this embedding model."""
    return embedding_model(name).backend
