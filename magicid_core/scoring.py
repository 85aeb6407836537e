"""Identity scoring: how much each face in an image looks like its reference identity.

score = cos(e_face, e_ref) = e_face . e_ref / (|e_face| |e_ref|), with both embeddings
from the same identity model. Faces are paired with identities either in index
order (face i <-> identity i, the order MultiIDApply uses) or by the best overall
matching (Hungarian assignment on the similarity matrix). Comparing an image
before and after a restore shows what the restore did to each face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .faces import Identity, ImageFaces

ASSIGNMENTS = ("index", "match")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b); 0 when either vector is zero."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different lengths cannot be compared ({a.size} vs {b.size})")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0


@dataclass
class FaceScore:
    face_index: int          # the face's index in its image
    identity_index: int      # which reference identity it was paired with
    identity_name: str
    similarity: float        # cosine similarity in -1..1


def similarity_matrix(frame: ImageFaces, identities: list[Identity]) -> np.ndarray:
    """(faces, identities) cosine similarities; every face must carry an embedding of the identities' model."""
    for face in frame.faces:
        if face.embedding is None:
            raise ValueError(f"face {face.index} has no identity embedding: analyse the image with an identity model")
    for ident in identities:
        model = frame.faces[0].embedding_model if frame.faces else ident.embedding_model
        if ident.embedding_model != model:
            raise ValueError(f"identity {ident.name!r} comes from {ident.embedding_model!r} but the faces were "
                             f"embedded with {model!r}: use the same identity model for both")
    return np.array([[cosine(f.embedding, i.embedding) for i in identities] for f in frame.faces],
                    np.float64).reshape(len(frame.faces), len(identities))


def pair_faces(sim: np.ndarray, assignment: str = "index") -> list[tuple[int, int]]:
    """(face row, identity column) pairs: index order, or the assignment with the largest total similarity."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
    n = min(sim.shape)
    if assignment == "index":
        return [(i, i) for i in range(n)]
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-sim)
    return sorted(zip(rows.tolist(), cols.tolist()))


def score_faces(frame: ImageFaces, identities: list[Identity], assignment: str = "index") -> list[FaceScore]:
    """One score per paired face; faces without an identity (or identities without a face) are left out."""
    if not identities:
        raise ValueError("no reference identities to score against")
    sim = similarity_matrix(frame, identities)
    return [FaceScore(frame.faces[r].index, c, identities[c].name, float(sim[r, c]))
            for r, c in pair_faces(sim, assignment)]
