"""Identity embeddings on real photos with the real dlib model: same person vs different people."""

import numpy as np
import pytest

from magicid_core.identity.embedders import DlibEmbedder, build_identity, make_embedder
from magicid_core.identity.embedding_models import DLIB_THRESHOLD, threshold_for
from tests.support.people import astronaut, cameraman, crop_scaled, grace_hopper


@pytest.fixture(scope="module")
def dlib_embedder():
    return make_embedder("dlib")


def _embedding(embedder, image):
    return build_identity("x", [image], embedder).embedding


def test_dlib_threshold_comes_from_its_euclidean_0_6(dlib_embedder):
    # d < 0.6 on raw descriptors <=> cos > threshold, for descriptors of our faces' norm
    raw = []
    for image in (astronaut(), grace_hopper()):
        face = max(dlib_embedder.find_faces(image), key=lambda d: d.score)
        raw.append(dlib_embedder.raw_descriptors(image, [face.box])[0])
    for r in raw:
        assert abs(np.linalg.norm(r) - 1.43) < 0.05
    r = np.mean([np.linalg.norm(v) for v in raw])
    assert DLIB_THRESHOLD == pytest.approx(1 - 0.6 ** 2 / (2 * r ** 2), abs=0.01)
    assert threshold_for("dlib_resnet_v1") == DLIB_THRESHOLD == dlib_embedder.threshold


def test_same_person_other_crop_and_scale_matches_different_people_do_not(dlib_embedder):
    a_full = _embedding(dlib_embedder, astronaut())
    a_small = _embedding(dlib_embedder, crop_scaled(astronaut(), 30, 330, 90, 390, 200))   # face ~60 px
    g_full = _embedding(dlib_embedder, grace_hopper())
    g_big = _embedding(dlib_embedder, crop_scaled(grace_hopper(), 60, 420, 100, 460, 520))  # face ~270 px
    for v in (a_full, a_small, g_full, g_big):
        assert v.shape == (128,) and v.dtype == np.float32 and abs(np.linalg.norm(v) - 1) < 1e-5
    assert a_full @ a_small > DLIB_THRESHOLD
    assert g_full @ g_big > DLIB_THRESHOLD
    for a in (a_full, a_small):
        for g in (g_full, g_big):
            assert a @ g < DLIB_THRESHOLD


def test_identity_from_several_references_averages_and_renormalises(dlib_embedder):
    refs = [astronaut(), crop_scaled(astronaut(), 30, 330, 90, 390, 200), astronaut()[:, ::-1]]
    ident = build_identity("Eileen", refs, dlib_embedder, hint="an astronaut")
    assert ident.reference_count == 3 and ident.embedding_model == "dlib_resnet_v1" and ident.hint == "an astronaut"
    assert abs(np.linalg.norm(ident.embedding) - 1) < 1e-5
    singles = [_embedding(dlib_embedder, r) for r in refs]
    mean = np.mean(singles, axis=0)
    assert np.allclose(ident.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    # the average still matches a new view of her, and not Grace Hopper
    other_view = _embedding(dlib_embedder, crop_scaled(astronaut(), 0, 400, 40, 440, 360))
    assert ident.embedding @ other_view > DLIB_THRESHOLD
    assert ident.embedding @ _embedding(dlib_embedder, grace_hopper()) < DLIB_THRESHOLD


def test_reference_without_a_face_names_the_image(dlib_embedder):
    blank = np.full((256, 256, 3), 90, np.uint8)
    with pytest.raises(ValueError, match=r"'Grace'.*reference image 2 of 3"):
        build_identity("Grace", [grace_hopper(), blank, grace_hopper()], dlib_embedder)
    with pytest.raises(ValueError, match="no reference images"):
        build_identity("Grace", [], dlib_embedder)


def test_grayscale_and_rgba_references_work(dlib_embedder):
    gray = cameraman()[:, :, 0]
    rgba = np.concatenate([grace_hopper(), np.full(grace_hopper().shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert build_identity("g", [rgba], dlib_embedder).embedding @ _embedding(dlib_embedder, grace_hopper()) > 0.999
    # the cameraman's three-quarter face, on one gray channel (HOG finds it since its doubtful finds
    # below dlib's own threshold are checked by the CNN, see docs/detection.md)
    assert build_identity("c", [gray], dlib_embedder).embedding @ _embedding(dlib_embedder, cameraman()) > 0.999


def test_unknown_backend_and_models_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="auto, arcface, dlib"):
        make_embedder("facenet")
    with pytest.raises(ValueError, match="missing in .*shape_predictor_5_face_landmarks.dat"):
        DlibEmbedder(tmp_path)
    for name in DlibEmbedder.FILES:
        (tmp_path / name).write_bytes(b"truncated")
    with pytest.raises(ValueError, match=f"{tmp_path}.*could not be loaded"):
        DlibEmbedder(tmp_path)
    with pytest.raises(ValueError, match="unknown embedding model"):
        threshold_for("facenet")
