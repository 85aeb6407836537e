"""Hungarian matching of reference identities to the faces of a real composite photo."""

import numpy as np
import pytest

from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.records import Face, Identity
from magicid_core.identity.embedders import build_identity, make_embedder
from magicid_core.identity.matching import assign_identities, similarity_matrix
from tests.support.people import astronaut, grace_hopper, group_of_three


@pytest.fixture(scope="module")
def embedder():
    return make_embedder("dlib")


@pytest.fixture(scope="module")
def group():
    """The faces of the composite (cameraman, Grace Hopper, astronaut), found and embedded by the analysis."""
    image, spans = group_of_three()
    faces = analyze_image(image, AnalysisSettings(skeletons=False, identity_backend="dlib")).faces
    assert [next(k for k, (x0, x1) in enumerate(spans) if x0 <= f.center[0] < x1) for f in faces] == [0, 1, 2]
    return faces


@pytest.fixture(scope="module")
def identities(embedder):
    return [build_identity("Eileen", [astronaut()], embedder), build_identity("Grace", [grace_hopper()], embedder)]


def test_each_person_gets_their_identity_and_the_stranger_none(group, identities):
    result = assign_identities(identities, group)
    assert result.identity_of_face == [None, 1, 0]
    assert result.face_of_identity == [2, 1]
    assert result.similarity.shape == (2, 3)
    assert result.similarity[:, 0].max() < result.threshold    # the cameraman resembles neither


def test_a_face_is_left_unassigned_rather_than_forced(group, identities):
    # only Grace is known: the astronaut's face must not be given Grace's identity
    only_grace = assign_identities([identities[1]], [group[0], group[2]])
    assert only_grace.identity_of_face == [None, None]
    # more identities than faces: the extra identity stays without a face
    assert assign_identities(identities, [group[1]]).face_of_identity == [None, 0]


def test_assignment_is_optimal_not_greedy():
    # greedy (best pair first: 0.95) would give face 0 to identity 0 and leave identity 1 at 0.1;
    # the optimum pairs 0-1 and 1-0 for 0.9 + 0.9
    def unit(angle):
        return np.array([np.cos(angle), np.sin(angle)], np.float32)
    ids = [Identity("a", unit(0.0), "m"), Identity("b", unit(1.0), "m")]
    sims = np.array([[0.95, 0.9], [0.9, 0.1]])
    # build face vectors with exactly these similarities to the two identity vectors
    basis = np.stack([ids[0].embedding, ids[1].embedding])
    faces = []
    for f in range(2):
        v = np.linalg.solve(basis, sims[:, f])
        faces.append(Face(f, np.zeros(4, np.float32), 1.0, np.zeros((5, 2), np.float32), np.zeros(4, np.float32),
                          embedding=v.astype(np.float32), embedding_model="m"))
    assert np.allclose(similarity_matrix(ids, faces), sims, atol=1e-5)
    assert assign_identities(ids, faces, threshold=0.5).identity_of_face == [1, 0]


def test_mismatched_models_and_missing_embeddings_are_clear_errors(group, identities):
    arc = Identity("x", np.ones(512, np.float32) / np.sqrt(512), "arcface:antelopev2")
    with pytest.raises(ValueError, match="different models.*arcface:antelopev2.*dlib_resnet_v1"):
        assign_identities([arc], group)
    bare = Face(0, np.zeros(4, np.float32), 1.0, np.zeros((5, 2), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="face 0 has no identity embedding"):
        assign_identities(identities, [bare])


def test_no_faces_or_no_identities_is_an_empty_assignment(group, identities):
    assert assign_identities(identities, []).face_of_identity == [None, None]
    assert assign_identities([], group).identity_of_face == [None, None, None]
