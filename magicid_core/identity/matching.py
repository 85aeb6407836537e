"""Which reference identity is which detected face: optimal one-to-one assignment.

Similarity is the cosine of L2-normalised embeddings. The Hungarian algorithm
(scipy's ``linear_sum_assignment``) maximises the total similarity of the pairs
that clear the threshold; a pair below it is never made, so a face that looks like
nobody stays unassigned instead of being forced onto the least-bad identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..faces.records import Face, Identity
from .embedders import threshold_for


@dataclass
class Assignment:
    identity_of_face: list[int | None]   # per face: index into identities, or None
    similarity: np.ndarray               # (identities, faces) cosine similarities
    threshold: float

    @property
    def face_of_identity(self) -> list[int | None]:
        """Per identity: the index of its face, or None when no face matched it."""
        out: list[int | None] = [None] * self.similarity.shape[0]
        for f, i in enumerate(self.identity_of_face):
            if i is not None:
                out[i] = f
        return out


def similarity_matrix(identities: list[Identity], faces: list[Face]) -> np.ndarray:
    """(identities, faces) cosine similarity; every embedding must come from the same model."""
    for face in faces:
        if face.embedding is None:
            raise ValueError(f"face {face.index} has no identity embedding: run face analysis with embeddings on")
    models = {i.embedding_model for i in identities} | {f.embedding_model for f in faces}
    if len(models) > 1:
        raise ValueError("identities and faces were embedded by different models "
                         f"({', '.join(sorted(map(str, models)))}); build the identities with the same "
                         "backend as the face analysis")
    if not identities or not faces:
        return np.zeros((len(identities), len(faces)), np.float32)
    refs = np.stack([i.embedding for i in identities]).astype(np.float32)
    found = np.stack([f.embedding for f in faces]).astype(np.float32)
    return refs @ found.T   # both sides are unit vectors, so the dot product is the cosine


def assign_identities(identities: list[Identity], faces: list[Face], threshold: float | None = None) -> Assignment:
    """Optimal one-to-one identity -> face assignment; ``threshold`` None = the embedding model's own."""
    sim = similarity_matrix(identities, faces)
    if threshold is None:
        model = identities[0].embedding_model if identities else faces[0].embedding_model if faces else None
        threshold = threshold_for(model) if model else 0.0
    identity_of_face: list[int | None] = [None] * len(faces)
    if sim.size:
        # pairs under the threshold are worth nothing, so they never displace a real match
        gain = np.where(sim >= threshold, sim, 0.0)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        for i, f in zip(rows, cols):
            if sim[i, f] >= threshold:
                identity_of_face[f] = int(i)
    return Assignment(identity_of_face, sim, float(threshold))
