"""Kin blend: a child's identity from two parents' embeddings."""

import numpy as np
import pytest

from magicid_core.faces.records import Identity
from magicid_core.identity.embedders import build_identity, make_embedder
from magicid_core.identity.kin import blend_child, family, gene_mask, kin_hint
from tests.support.people import astronaut, grace_hopper

D = 512


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


def _parents(correlation=0.2, seed=0, model="arcface:antelopev2"):
    """Two unit embeddings with cos(a, b) close to ``correlation`` (like two different people)."""
    rng = np.random.default_rng(seed)
    shared, a_own, b_own = rng.standard_normal((3, D))
    w = np.sqrt(correlation)
    a = _unit(w * shared + np.sqrt(1 - correlation) * a_own)
    b = _unit(w * shared + np.sqrt(1 - correlation) * b_own)
    return Identity("Ann", a, model), Identity("Bob", b, model)


def test_same_seed_same_child_different_seed_different_child():
    a, b = _parents()
    c1, c2 = blend_child(a, b, 0.5, seed=7), blend_child(a, b, 0.5, seed=7)
    c3 = blend_child(a, b, 0.5, seed=8)
    assert np.array_equal(c1.embedding, c2.embedding)
    assert not np.array_equal(c1.embedding, c3.embedding)
    assert cosine(c1.embedding, c3.embedding) < 0.9      # genuinely another child
    assert c1.embedding_model == a.embedding_model and c1.name == "child of Ann and Bob"


def test_child_is_renormalised_to_the_parents_norm():
    a, b = _parents()
    child = blend_child(a, b, 0.3, seed=1)
    assert child.embedding.dtype == np.float32 and child.embedding.shape == (D,)
    assert np.linalg.norm(child.embedding) == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(child.embedding).all()


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_similarity_to_each_parent_follows_the_ratio(ratio):
    a, b = _parents(correlation=0.2)
    c = cosine(a.embedding, b.embedding)
    child = blend_child(a, b, ratio, seed=3)
    # E[cos(child, a)] = r + (1 - r) c, E[cos(child, b)] = (1 - r) + r c (module docstring)
    assert cosine(child.embedding, a.embedding) == pytest.approx(ratio + (1 - ratio) * c, abs=0.06)
    assert cosine(child.embedding, b.embedding) == pytest.approx(1 - ratio + ratio * c, abs=0.06)


def test_ratio_one_is_the_first_parent_and_zero_the_second():
    a, b = _parents()
    assert np.allclose(blend_child(a, b, 1.0, seed=5).embedding, a.embedding, atol=1e-6)
    assert np.allclose(blend_child(a, b, 0.0, seed=5).embedding, b.embedding, atol=1e-6)


def test_similarity_rises_monotonically_with_the_ratio():
    a, b = _parents()
    sims = [cosine(blend_child(a, b, r, seed=11).embedding, a.embedding) for r in np.linspace(0, 1, 6)]
    assert all(x < y for x, y in zip(sims, sims[1:]))


def test_gene_mask_takes_exactly_the_ratio_of_genes():
    assert gene_mask(512, 0.3, seed=0).sum() == round(0.3 * 512)
    assert gene_mask(512, 0.0, seed=0).sum() == 0


def test_identical_parents_give_that_identity_back():
    a, _ = _parents()
    twin = Identity("Ann again", a.embedding.copy(), a.embedding_model)
    child = blend_child(a, twin, 0.5, seed=2)
    assert np.allclose(child.embedding, a.embedding, atol=1e-6)


def test_parents_from_different_models_are_refused():
    a, _ = _parents(model="arcface:antelopev2")
    _, b = _parents(model="dlib_resnet_v1")
    with pytest.raises(ValueError, match="different identity models"):
        blend_child(a, b)


@pytest.mark.parametrize("bad", [np.zeros(D, np.float32), np.full(D, np.nan, np.float32), np.ones(128, np.float32)])
def test_zero_nan_or_mismatched_embeddings_are_refused(bad):
    a, _ = _parents()
    with pytest.raises(ValueError, match="embedding"):
        blend_child(a, Identity("odd", bad, a.embedding_model))


def test_ratio_outside_range_is_refused():
    a, b = _parents()
    with pytest.raises(ValueError, match="resemblance"):
        blend_child(a, b, 1.5)


def test_hint_words():
    assert kin_hint("child", "female") == "a little girl"
    assert kin_hint("teenager", "male") == "a teenage boy"
    assert kin_hint("adult", "") == "an adult"
    assert kin_hint("", "") == ""
    with pytest.raises(ValueError, match="age"):
        kin_hint("elderly", "")
    a, b = _parents()
    assert blend_child(a, b, hint=kin_hint("baby", "male")).hint == "a baby boy"


def test_family_lists_parents_then_child():
    a, b = _parents()
    people, hint = family([a], [b], 0.7, seed=1, age="child")
    assert [p.name for p in people] == ["Ann", "Bob", "child of Ann and Bob"] and hint == "a child"
    assert people[2].hint == "a child"
    # both parents in one list; the child alone
    alone, _ = family([a, b], None, 0.7, seed=1, age="child", include_parents=False)
    assert len(alone) == 1 and np.array_equal(alone[0].embedding, people[2].embedding)
    with pytest.raises(ValueError, match="two parents"):
        family([a], None)


def test_real_parents_from_photos():
    embedder = make_embedder("dlib")
    a = build_identity("Eileen", [astronaut()], embedder)
    b = build_identity("Grace", [grace_hopper()], embedder)
    c = cosine(a.embedding, b.embedding)
    for ratio in (0.25, 0.5, 0.75):
        child = blend_child(a, b, ratio, seed=4)
        assert cosine(child.embedding, a.embedding) == pytest.approx(ratio + (1 - ratio) * c, abs=0.03)
        assert cosine(child.embedding, b.embedding) == pytest.approx(1 - ratio + ratio * c, abs=0.03)
    # an even blend is nearer to each parent than the parents are to each other
    half = blend_child(a, b, 0.5, seed=4)
    assert min(cosine(half.embedding, a.embedding), cosine(half.embedding, b.embedding)) > c
    assert half.embedding_model == "dlib_resnet_v1" and half.reference_count == 2
