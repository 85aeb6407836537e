"""Placement: which identity goes to which face, and the MGMICA patch built for them.

Identities are placed on faces by explicit indices, or by matching their embeddings to the
faces' (Hungarian method), or in FACES order; each placed identity brings its face's mask.
``multi_id_patch`` is everything MultiIDApply does without ComfyUI: check, place, build.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..identity.adapters import IdentityAdapter
from ..identity.matching import assign_identities
from .attention import IdentityTokens, MultiIDAttention, sdpa_attention


def identity_embeddings(identities) -> np.ndarray:
    """IDENTITIES (list of Identity) or an array (N, D) -> (N, D) float32 embeddings."""
    if isinstance(identities, (np.ndarray, torch.Tensor)):
        e = np.asarray(identities, dtype=np.float32)
        return e[None] if e.ndim == 1 else e
    if not identities:
        raise ValueError("no identities given: connect IdentityFromImages (one identity per person)")
    return np.stack([np.asarray(i.embedding, dtype=np.float32).reshape(-1) for i in identities])


def adapter_inputs(adapter: IdentityAdapter, identities) -> np.ndarray:
    """Embeddings scaled the way the adapter was trained to read them.

    FaceID reads L2-normalised ArcFace vectors; InstantID reads insightface's raw ones, whose
    components have about unit variance, i.e. a norm of about sqrt(512). An Identity that
    carries its raw norm (optional ``embedding_norm``) gives that instead.
    """
    e = adapter.check_embeddings(identity_embeddings(identities))
    if adapter.kind != "instantid":
        return e
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    default = math.sqrt(adapter.embedding_dim)
    raw = [getattr(i, "embedding_norm", None) or default for i in identities] \
        if isinstance(identities, list) else [default] * len(e)
    return e / np.maximum(norms, 1e-12) * np.asarray(raw, np.float32)[:, None]


def build_patch(adapter: IdentityAdapter, identities, masks: np.ndarray, weights, layer_of: dict,
                sigma_range=(math.inf, 0.0), attention=sdpa_attention) -> MultiIDAttention:
    """The patch for identities placed on masks (one mask per identity, image pixels).

    ``identities`` holds only the placed ones, in the order of ``masks`` (see place_identities).
    """
    cond, uncond = adapter.tokens_for(adapter_inputs(adapter, identities))
    tokens = IdentityTokens(cond, uncond, adapter.to_k, adapter.to_v)
    return MultiIDAttention(tokens, masks, weights, layer_of, sigma_range, attention)


def assign_faces(identities, faces, face_indices: list[int] | None) -> list[int]:
    """Which face (index into ``faces``) each identity goes to; -1 = nowhere.

    Explicit indices win. Otherwise identities and faces whose embeddings come from the same
    model are matched by the Hungarian method on cosine similarity (matching.assign_identities, whose threshold
    leaves an identity unplaced rather than forcing a stranger's face on it); without comparable
    embeddings identity i goes to face i (the FACES order).
    """
    n_id, n_faces = len(identities), len(faces)
    if n_faces == 0:
        raise ValueError("no faces found to place the identities on: check FaceDetectMasks' image")
    if face_indices is not None:
        return _checked_indices(face_indices, n_id, n_faces)
    if n_id > n_faces:
        raise ValueError(f"{n_id} identities but only {n_faces} faces: give face_indices, with -1 "
                         "for the people who should not appear")
    if _comparable(identities, faces):
        return _matched(identities, faces)
    return list(range(n_id))


def _checked_indices(face_indices, n_id, n_faces) -> list[int]:
    indices = [int(i) for i in face_indices]
    if len(indices) != n_id:
        raise ValueError(f"face_indices lists {len(indices)} faces for {n_id} identities")
    bad = [i for i in indices if not -1 <= i < n_faces]
    if bad:
        raise ValueError(f"face_indices {bad} do not exist: the image has faces 0..{n_faces - 1} (-1 = none)")
    placed = [i for i in indices if i >= 0]
    if len(set(placed)) != len(placed):
        raise ValueError("two identities were given the same face: each face takes one identity")
    return indices


def _comparable(identities, faces) -> bool:
    if isinstance(identities, (np.ndarray, torch.Tensor)):
        return False
    models = {getattr(i, "embedding_model", None) for i in identities}
    models |= {f.embedding_model if f.embedding is not None else None for f in faces}
    return len(models) == 1 and None not in models


def _matched(identities, faces) -> list[int]:
    """Hungarian matching with the embedding model's threshold: an identity whose person is
    not in the picture stays unplaced (-1) rather than taking a stranger's face."""
    face_of_identity = assign_identities(list(identities), list(faces)).face_of_identity
    return [-1 if f is None else f for f in face_of_identity]


def place_identities(identities, image_faces, face_indices=None, weights=None):
    """Faces for the identities: (identity positions kept, their masks (K, H, W), their weights).

    Identities assigned to no face (-1) are left out: they act nowhere.
    """
    n_id = len(identity_embeddings(identities))
    weights = [1.0] * n_id if weights is None else [float(w) for w in weights]
    if len(weights) != n_id:
        raise ValueError(f"{len(weights)} weights given for {n_id} identities")
    faces = image_faces.faces
    assigned = assign_faces(identities if isinstance(identities, list) else np.asarray(identities),
                            faces, face_indices)
    kept = [i for i, f in enumerate(assigned) if f >= 0]
    masks = [face_mask(faces[assigned[i]], image_faces.height, image_faces.width) for i in kept]
    stack = np.stack(masks) if masks else np.zeros((0, image_faces.height, image_faces.width), np.float32)
    return kept, stack, [weights[i] for i in kept]


def face_mask(face, height: int, width: int) -> np.ndarray:
    """The face's mask, checked against its image's size."""
    if face.mask is None:
        raise ValueError(f"face {face.index} has no mask: use the FACES output of FaceDetectMasks")
    mask = np.asarray(face.mask, dtype=np.float32)
    if mask.shape != (height, width):
        raise ValueError(f"the mask of face {face.index} is {mask.shape[1]}x{mask.shape[0]} but its image "
                         f"is {width}x{height}: masks must be in the image's pixels")
    return mask


def multi_id_patch(adapter: IdentityAdapter, identities, image_faces, layer_of: dict,
                   face_indices=None, weights=None, sigma_range=(math.inf, 0.0),
                   attention=sdpa_attention) -> MultiIDAttention | None:
    """Everything MultiIDApply does without ComfyUI: check, place, build. None = nothing to do."""
    adapter.check_embeddings(identity_embeddings(identities))
    kept, masks, kept_weights = place_identities(identities, image_faces, face_indices, weights)
    if not kept:
        return None
    placed = [identities[i] for i in kept] if isinstance(identities, list) else np.asarray(identities)[kept]
    return build_patch(adapter, placed, masks, kept_weights, layer_of, sigma_range, attention)
