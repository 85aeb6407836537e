"""Placement: which person goes to which face, and the MGMICA patch built for them.

Identities are placed on faces by explicit indices, or by matching their embeddings to the
faces' (Hungarian method), or in FACES order; each placed identity brings its face's mask.
A person's own words (PersonPrompt) follow the identity at the same position, or go to the
face they name, so a person may have words without a reference face.
``multi_id_patch`` is everything MultiIDApply does without ComfyUI: check, place, build.

MGMICA: mask-guided multi-identity cross-attention (attention.py); glossary: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import validate
from ..identity.adapters import INSTANTID_NOISE, IdentityAdapter
from ..identity.face_clip import clip_inputs
from ..identity.matching import assign_identities
from .attention import IdentityTokens, MultiIDAttention, PersonText, sdpa_attention
from .token_identities import TokenIdentities

# How far a vector's norm may be from 1 and still count as unit length: a float32 unit vector's
# norm, computed in float32, lies a few steps (1.2e-7 each) from 1.
UNIT_SLACK = 1e-6


def identity_embeddings(identities) -> np.ndarray:
    """IDENTITIES (list of Identity) or an array (N, D) -> (N, D) float32 embeddings."""
    if isinstance(identities, (np.ndarray, torch.Tensor)):
        e = np.asarray(identities, dtype=np.float32)
        return e[None] if e.ndim == 1 else e
    if not identities:
        raise ValueError("no identities given: connect IdentityFromImages (one identity per person)")
    return np.stack([np.asarray(i.embedding, dtype=np.float32).reshape(-1) for i in identities])


def adapter_inputs(adapter: IdentityAdapter, identities) -> np.ndarray:
    """Embeddings scaled the way the adapter was trained to read them (at its boundary, so a
    hand-built IDENTITIES value of any norm gets what the reference packs would feed it).

    FaceID reads L2-normalised ArcFace vectors (IPAdapter_plus feeds ``normed_embedding``):
    renormalised here. InstantID and FaceID portrait-unnorm read insightface's raw vectors: the
    direction times the Identity's ``embedding_norm`` (the recogniser's raw norm), or sqrt(512),
    about a raw vector's norm, when the identity carries none.
    """
    e = adapter.check_embeddings(identity_embeddings(identities))
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    # a vector of unit length to within float32 rounding (insightface's normed_embedding, as
    # IdentityFromImages keeps it) is read as it is: dividing it by its norm would only move its last bits
    unit = np.where(np.abs(norms - 1) <= UNIT_SLACK, e, e / np.maximum(norms, 1e-12))
    if not adapter.reads_raw:
        return unit
    default = math.sqrt(adapter.embedding_dim)
    raw = [getattr(i, "embedding_norm", None) or default for i in identities] \
        if isinstance(identities, list) else [default] * len(e)
    return unit * np.asarray(raw, np.float32)[:, None]


def assign_faces(identities, faces, face_indices: list[int] | None) -> list[int]:
    """Which face (index into ``faces``) each identity goes to; -1 = nowhere.

    Explicit indices win. Otherwise identities and faces whose embeddings come from the same
    model are matched by the Hungarian method on cosine similarity (matching.assign_identities, whose threshold
    leaves an identity unplaced rather than forcing a stranger's face on it); when the faces
    carry no embedding, identity i goes to face i (the FACES order). Embeddings of two
    different models cannot be compared: that is an error (docs/models.md).
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
    _refuse_mixed_models(identities, faces)
    return list(range(n_id))


def _checked_indices(face_indices, n_id, n_faces) -> list[int]:
    indices = [int(i) for i in face_indices]
    if len(indices) != n_id:
        raise ValueError(f"face_indices lists {len(indices)} faces for {n_id} identities")
    bad = [i for i in indices if not -1 <= i < n_faces]
    if bad:
        raise ValueError(f"face_indices {validate.excerpt(bad)} do not exist: the image has faces "
                         f"0..{n_faces - 1} (-1 = none)")
    placed = [i for i in indices if i >= 0]
    if len(set(placed)) != len(placed):
        twice = sorted({i for i in placed if placed.count(i) > 1})
        raise ValueError(f"face_indices gives face {twice[0]} to two identities: each face takes one identity "
                         "(-1 = none)")
    return indices


def _comparable(identities, faces) -> bool:
    if isinstance(identities, (np.ndarray, torch.Tensor)):
        return False
    models = {getattr(i, "embedding_model", None) for i in identities}
    models |= {f.embedding_model if f.embedding is not None else None for f in faces}
    return len(models) == 1 and None not in models


def _refuse_mixed_models(identities, faces) -> None:
    """Identities and faces that both carry embeddings, from different models: no order is right."""
    if isinstance(identities, (np.ndarray, torch.Tensor)):
        return
    of_identities = {getattr(i, "embedding_model", None) for i in identities} - {None}
    of_faces = {f.embedding_model for f in faces if f.embedding is not None} - {None}
    if of_identities and of_faces and of_identities != of_faces:
        raise ValueError(f"face_indices is empty, so identities are matched to faces by embedding, but the "
                         f"identities come from {sorted(of_identities)} and the faces from {sorted(of_faces)}: "
                         "use the same identity backend in IdentityFromImages and FaceDetectMasks, or give "
                         "face_indices (e.g. '0, 1')")


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
    """The face's mask on its whole image (the patch's masks cover the picture), checked to fit it."""
    face.mask_region(height, width)     # refuses a missing mask, or one that does not fit the image
    return face.full_mask(height, width)


@dataclass
class PersonPrompt:
    """One person's own words: CLIP-encoded tokens (T, C) at the model's context width.

    ``face_index`` None: the words go to the face of the identity at the same position of the
    identity list; an index: to that face of FACES (words without a reference face).
    """

    tokens: torch.Tensor
    weight: float = 1.0
    face_index: int | None = None
    label: str = ""

    def describe(self, position: int) -> str:
        return f"person prompt {position + 1}" + (f" ({self.label!r})" if self.label else "")


def prompt_faces(prompts, identity_faces: list[int] | None, n_faces: int, context_dim: int | None) -> list[int]:
    """The face each prompt goes to (-1: nowhere), after checking width, placement and weight.

    A prompt without face_index follows the identity at its position (``identity_faces``), or,
    with no identities at all (None), goes to the face at its position (FACES order).
    An empty prompt (no tokens), and the prompt of an identity placed on no face, go nowhere.
    """
    faces = []
    for position, prompt in enumerate(prompts):
        name = prompt.describe(position)
        tokens = prompt.tokens
        if tokens.ndim != 2:
            raise ValueError(f"{name} must be (tokens, width); got shape {tuple(tokens.shape)}")
        if len(tokens) == 0:
            faces.append(-1)
            continue
        if context_dim is not None and tokens.shape[-1] != context_dim:
            raise ValueError(f"{name} is {tokens.shape[-1]} wide ({_clip_family(tokens.shape[-1])}) but the "
                             f"model reads {context_dim}-wide text ({_clip_family(context_dim)}): "
                             "encode it with the CLIP of the same checkpoint as the model")
        if not math.isfinite(float(prompt.weight)) or not torch.isfinite(tokens).all():
            raise ValueError(f"{name} holds a NaN or infinite weight or token")
        faces.append(_prompt_face(prompt, position, name, identity_faces, n_faces))
    placed = [f for f in faces if f >= 0]
    doubled = sorted({f for f in placed if placed.count(f) > 1})
    if doubled:
        raise ValueError(f"face(s) {doubled} got two person prompts: put one person's words into one prompt")
    return faces


def _prompt_face(prompt, position, name, identity_faces, n_faces) -> int:
    if prompt.face_index is None and identity_faces is not None:
        if position >= len(identity_faces):
            raise ValueError(f"{name} follows identity {position + 1}, but there are only {len(identity_faces)} "
                             "identities: give it a face index (the face its words go to), or remove it")
        return identity_faces[position]
    face = position if prompt.face_index is None else int(prompt.face_index)
    if not -1 <= face < n_faces:
        raise ValueError(f"{name} goes to face {face}, but the image has faces 0..{n_faces - 1}: "
                         "give it the number FaceDetectMasks shows (-1 = none)")
    return face


def _clip_family(width: int) -> str:
    return {768: "SD1.5 CLIP", 1024: "SD2 CLIP", 2048: "SDXL CLIP"}.get(width, "an unknown text encoder")


def multi_id_patch(adapter: IdentityAdapter | None, identities, image_faces, layer_of: dict,
                   face_indices=None, weights=None, sigma_range=(math.inf, 0.0),
                   attention=sdpa_attention, prompts=(), project: Callable | None = None,
                   context_dim: int | None = None, instantid_noise: float = INSTANTID_NOISE,
                   faceidv2_weight: float = 1.0) -> MultiIDAttention | None:
    """Everything MultiIDApply does without ComfyUI: check, place, build. None = nothing to do.

    ``instantid_noise``: InstantID's "no identity" input is ``noise * rand`` as ApplyInstantID
    makes it (0.35 there); 0 = the projection of zeros. FaceID always uses zeros, as IPAdapter_plus.
    ``faceidv2_weight``: FaceID Plus v2's shortcut scale (IPAdapterFaceID's ``weight_faceidv2``).

    ``prompts``: PersonPrompt list, projected per layer by ``project(block_key, tokens)``
    (the layer's own to_k / to_v); ``context_dim``: the model's text width, to check them.
    """
    has_identities = identities is not None and len(identities) > 0
    identity_faces, identity_weights = [], []
    if has_identities:
        if adapter is None:
            raise ValueError("identities were given without an adapter: connect MagicIDAdapterLoader")
        n_id = len(adapter.check_embeddings(identity_embeddings(identities)))
        if adapter.reads_clip:      # before placing: a missing CLIP embedding is the first thing to fix
            clip_inputs(adapter, identities)
        identity_weights = [1.0] * n_id if weights is None else [float(w) for w in weights]
        if len(identity_weights) != n_id:
            raise ValueError(f"{len(identity_weights)} weights given for {n_id} identities")
        identity_faces = assign_faces(identities if isinstance(identities, list) else np.asarray(identities),
                                      image_faces.faces, face_indices)
    if prompts and project is None:
        raise ValueError("person prompts need the model's own text projections (project)")
    if prompts and not image_faces.faces:
        raise ValueError("no faces found to give the person prompts to: check FaceDetectMasks' image")
    text_faces = prompt_faces(list(prompts), identity_faces if has_identities else None,
                              len(image_faces.faces), context_dim)

    people = list(dict.fromkeys(f for f in identity_faces + text_faces if f >= 0))  # faces, first come first
    if not people:
        return None
    masks = np.stack([face_mask(image_faces.faces[f], image_faces.height, image_faces.width) for f in people])
    tokens, person_weights = _identity_tokens(adapter, identities, identity_faces, identity_weights, people,
                                              instantid_noise, faceidv2_weight)
    text = _person_text(list(prompts), text_faces, people, project)
    return MultiIDAttention(tokens, masks, person_weights, layer_of, sigma_range, attention, text=text)


def _identity_tokens(adapter, identities, identity_faces, identity_weights, people, instantid_noise,
                     faceidv2_weight=1.0):
    """One identity token set per person (zeros and weight 0 for people without an identity)."""
    weights = np.zeros(len(people), np.float32)
    placed = [i for i, f in enumerate(identity_faces) if f >= 0]
    if not placed:
        return None, weights
    chosen = [identities[i] for i in placed] if isinstance(identities, list) else np.asarray(identities)[placed]
    noise = instantid_noise if adapter.kind == "instantid" else 0.0
    clip = clip_inputs(adapter, chosen) if adapter.reads_clip else None
    cond, uncond = adapter.tokens_for(adapter_inputs(adapter, chosen), negative_noise=noise, clip=clip,
                                      faceidv2_weight=faceidv2_weight)
    slots = [people.index(identity_faces[i]) for i in placed]
    full_cond, full_uncond = (torch.zeros((len(people),) + t.shape[1:], dtype=t.dtype) for t in (cond, uncond))
    full_cond[slots], full_uncond[slots] = cond, uncond
    weights[slots] = [identity_weights[i] for i in placed]
    return IdentityTokens(full_cond, full_uncond, adapter.to_k, adapter.to_v), weights


def _person_text(prompts, text_faces, people, project) -> PersonText | None:
    """Every placed prompt's tokens one after the other, each token tagged with its person."""
    placed = [(people.index(f), p) for f, p in zip(text_faces, prompts) if f >= 0]
    if not placed:
        return None
    weights = torch.zeros(len(people))
    for person, prompt in placed:
        weights[person] = float(prompt.weight)
    tokens = torch.cat([p.tokens.float() for _, p in placed])
    owner = torch.cat([torch.full((len(p.tokens),), person, dtype=torch.long) for person, p in placed])
    return PersonText(tokens, owner, weights, project)


def pulid_patch(pulid, identities, image_faces, face_indices=None, weights=None,
                sigma_range=(math.inf, 0.0)) -> TokenIdentities | None:
    """MultiIDApply on Flux without ComfyUI: place the identities, make each one's PuLID tokens (one IDFormer
    run per identity, averaged over its references) and confine them to their faces. None = nothing placed."""
    if not identities:
        raise ValueError("no identities given: connect IdentityFromImages (one identity per person)")
    missing = [getattr(i, "name", str(n)) for n, i in enumerate(identities) if getattr(i, "pulid", None) is None]
    if missing:
        raise ValueError(f"identities {missing} carry no PuLID inputs (EVA-CLIP features of the face), so they "
                         f"cannot reach {pulid.name}: connect MagicIDEvaClipLoader to IdentityFromImages' "
                         "eva_clip input and build them again (IdentityFromEmbedding and KinIDBlend make "
                         "identities for SD adapters only; docs/flux.md)")
    weights = [1.0] * len(identities) if weights is None else [float(w) for w in weights]
    if len(weights) != len(identities):
        raise ValueError(f"{len(weights)} weights given for {len(identities)} identities")
    assigned = assign_faces(list(identities), image_faces.faces, face_indices)
    placed = [i for i, f in enumerate(assigned) if f >= 0]
    if not placed:
        return None
    masks = np.stack([face_mask(image_faces.faces[assigned[i]], image_faces.height, image_faces.width)
                      for i in placed])
    tokens = torch.cat([pulid.tokens_of(identities[i].pulid) for i in placed])
    return TokenIdentities(tokens, masks, [weights[i] for i in placed], sigma_range)
