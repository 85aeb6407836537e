"""dlib's face descriptor through numpy (``identity.dlib_resnet``) against dlib's own, on real faces.

The reference is dlib-bin's ``face_recognition_model_v1.compute_face_descriptor`` on the same model
file, with the same 5-point shapes; our side is ``DlibEmbedder.raw_descriptors`` (dlib's chip, our
network), the path the analysis and the identity nodes take.
"""

import dlib
import numpy as np
import pytest

from magicid_core.faces.dlib_stack import model_path
from magicid_core.identity.dlib_resnet import (BATCH, CHIP_PADDING, CHIP_SIZE, DlibModelFileError, DlibResNet,
                                               read_layers)
from magicid_core.identity.embedders import DlibEmbedder
from tests.support.face_scenes import group6
from tests.support.people import astronaut, crop_scaled, grace_hopper

NETWORK = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def embedder():
    return DlibEmbedder()


def _dlib_descriptors(embedder, image, boxes) -> np.ndarray:
    reference = dlib.face_recognition_model_v1(str(model_path(NETWORK)))
    image = np.ascontiguousarray(image)     # dlib reads only contiguous arrays
    shapes = embedder.shapes5(image, boxes)
    return np.array(reference.compute_face_descriptor(image, shapes, 0), np.float32)


def _faces_of(embedder, image):
    return [d.box for d in embedder.find_faces(image)]


@pytest.mark.parametrize("name", ["group of six (small faces)", "astronaut", "grace hopper", "grace hopper mirrored",
                                  "astronaut 60 px face"])
def test_descriptors_equal_dlibs_own_on_real_faces(embedder, name):
    image = {"group of six (small faces)": lambda: group6(1)[0], "astronaut": astronaut,
             "grace hopper": grace_hopper, "grace hopper mirrored": lambda: grace_hopper()[:, ::-1],
             "astronaut 60 px face": lambda: crop_scaled(astronaut(), 30, 330, 90, 390, 200)}[name]()
    boxes = _faces_of(embedder, image)
    assert boxes, f"no face found in {name}"
    ours = embedder.raw_descriptors(image, boxes)
    theirs = _dlib_descriptors(embedder, image, boxes)
    assert ours.shape == theirs.shape == (len(boxes), 128) and ours.dtype == np.float32
    # float32 sums in another order: dlib's own numbers are up to ~0.45, seen differences ~3e-7
    assert np.abs(ours - theirs).max() < 5e-6


def test_the_file_is_read_as_dlibs_network():
    layers = read_layers(model_path(NETWORK))
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    stem = layers[1]
    assert stem.weights.shape == (32, 3, 7, 7) and (stem.size, stem.stride, stem.pad) == (7, 2, 0)
    assert layers[-1].weights.shape == (256, 128)
    np.testing.assert_allclose(layers[0].bias, [122.782, 117.001, 104.298], atol=1e-3)   # dlib's channel means


def test_an_other_or_damaged_file_is_refused_by_name(tmp_path):
    with pytest.raises(DlibModelFileError, match="shape_predictor_5_face_landmarks.dat is not dlib's face-recognition"):
        DlibResNet(model_path("shape_predictor_5_face_landmarks.dat"))
    cut = tmp_path / NETWORK
    data = model_path(NETWORK).read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(DlibModelFileError, match=NETWORK):
        DlibResNet(cut)
    with pytest.raises(ValueError, match="reinstall face_recognition_models"):
        folder = tmp_path / "models"
        folder.mkdir()
        (folder / NETWORK).write_bytes(data[:len(data) // 2])
        (folder / "shape_predictor_5_face_landmarks.dat").write_bytes(
            model_path("shape_predictor_5_face_landmarks.dat").read_bytes())
        DlibEmbedder(folder)


def test_no_faces_give_no_descriptors(embedder):
    assert embedder.raw_descriptors(astronaut(), []).shape == (0, 128)
    assert embedder.embed_many(astronaut(), []) == []


def test_more_chips_than_one_batch_give_each_chips_own_numbers(embedder):
    image = group6(1)[0]
    shapes = embedder.shapes5(image, _faces_of(embedder, image))
    chips = np.stack(dlib.get_face_chips(image, shapes, size=CHIP_SIZE, padding=CHIP_PADDING))
    many = np.concatenate([chips, chips[::-1]] * 2)[:BATCH + 3]
    together = embedder.network.descriptors(many)
    alone = np.concatenate([embedder.network.descriptors(chip[None]) for chip in many])
    assert together.shape == (BATCH + 3, 128)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    with pytest.raises(ValueError, match="chips must be"):
        embedder.network.descriptors(chips[:, :100])
