"""Identities from embeddings another pack computed (IPAdapter_plus / InstantID's insightface faces)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicid_core.identity.embedding_models import DLIB_MODEL_NAME
from magicid_core.identity.embedders import (DlibEmbedder, build_identity, embedding_models,
                                   identity_from_embeddings)
from tests.support.people import astronaut, grace_hopper


def test_a_normalised_embedding_passes_unchanged():
    """The identity IdentityFromImages builds, as a tensor saved and loaded the way IPAdapter_plus
    stores EMBEDS (torch.save / torch.load), becomes the very same identity."""
    built = build_identity("Eileen", [astronaut()], DlibEmbedder())
    tensor = torch.from_numpy(built.embedding).unsqueeze(0)  # (1, D), as IPAdapter FaceID batches it
    again = identity_from_embeddings("Eileen", tensor.numpy(), DLIB_MODEL_NAME)
    np.testing.assert_array_equal(again.embedding, built.embedding)
    assert (again.embedding_model, again.reference_count, again.embedding_norm) == (built.embedding_model, 1, None)


def test_raw_rows_are_normalised_and_averaged_like_references():
    embedder = DlibEmbedder()
    images = [astronaut(), astronaut()[:, ::-1].copy()]
    built = build_identity("Eileen", images, embedder)
    raw = []
    for image in images:  # insightface's raw `embedding`: the normalised one times its own norm
        face = max(embedder.find_faces(image), key=lambda d: d.score)
        raw.append(embedder.embed(image, face.box, face.keypoints) * np.float32(23.5 + len(raw)))
    again = identity_from_embeddings("Eileen", np.stack(raw), DLIB_MODEL_NAME)
    np.testing.assert_allclose(again.embedding, built.embedding, atol=1e-6)
    assert again.reference_count == 2
    # the raw length is kept, as build_identity keeps insightface's (InstantID reads raw vectors)
    assert again.embedding_norm == pytest.approx(np.mean([np.linalg.norm(r) for r in raw]), rel=1e-5)
    other = build_identity("Grace", [grace_hopper()], embedder)
    assert float(again.embedding @ other.embedding) < 0.9


@pytest.mark.parametrize("shape, message", [
    ((1, 768), "CLIP ViT-L image embedding"),
    ((1, 257, 1280), "CLIP ViT-bigG image embedding"),
    ((3, 128), r"has 128 numbers per vector but 512 are needed by arcface:antelopev2: 128 numbers make a "
               r"dlib_resnet_v1 embedding, so set embedding_model to dlib_resnet_v1"),
])
def test_other_tensors_are_refused_by_name(shape, message):
    with pytest.raises(ValueError, match=message):
        identity_from_embeddings("x", np.ones(shape, np.float32), "arcface:antelopev2")


def test_non_finite_embedding_is_refused():
    vector = np.ones(512, np.float32)
    vector[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        identity_from_embeddings("x", vector, "arcface:buffalo_l")


def test_models_offered_are_the_ones_faces_name():
    assert embedding_models() == ["arcface:antelopev2", "arcface:buffalo_l", DLIB_MODEL_NAME]


@pytest.mark.parametrize("scale", [1e30, 1e-30, 0.5, 23.0])
def test_any_finite_non_zero_vector_gives_its_direction(scale):
    vector = np.random.default_rng(3).standard_normal(512)
    vector /= np.linalg.norm(vector)
    identity = identity_from_embeddings("x", (vector * scale).astype(np.float32), "arcface:buffalo_l")
    np.testing.assert_allclose(identity.embedding, vector, atol=1e-6)
    # a length no recogniser makes is not kept as the raw norm (InstantID would scale by it)
    assert identity.embedding_norm == (pytest.approx(23.0, rel=1e-5) if scale == 23.0 else None)


@pytest.mark.parametrize("value, model, message", [
    (np.zeros(512, np.float32), "arcface:antelopev2", r"^embedding: vector 0 of 1 is all zeros, which has no direction"),
    (np.zeros((0, 512), np.float32), "arcface:antelopev2", r"^embedding is empty \(shape \(0, 512\)\)"),
    (np.ones((1, 512), np.float32), DLIB_MODEL_NAME, r"^embedding has 512 numbers per vector but 128 are needed by "
     r"dlib_resnet_v1: 512 numbers make a arcface embedding, so set embedding_model to arcface:antelopev2 or "
     r"arcface:buffalo_l"),
    (np.full((1, 512), np.inf, np.float32), "arcface:buffalo_l", r"^embedding: 512 of its 512 values are NaN or "
     r"infinite"),
])
def test_what_is_wrong_with_an_embedding_is_said(value, model, message):
    with pytest.raises(ValueError, match=message):
        identity_from_embeddings("x", value, model)
