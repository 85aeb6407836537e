"""The pack's insightface code on seeded ONNX files with the real models' interface, without the
insightface reference (test_insightface_parity.py compares against it where it is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.insightface_onnx_models import LAYOUTS, build_arcface, build_scrfd, onnx
from magicid_core.insightface import ArcFaceRecognizer, InsightFaceDetector, InsightFaceModelError, InsightFacePack
from magicid_core.insightface.onnx_graph import first_node_names
from tests.support.people import astronaut


def _pack(detector=None, recognizer=None):
    return InsightFacePack("buffalo_l", (detector or recognizer).parent, detector, recognizer)


@pytest.mark.parametrize("builtin", [False, True], ids=["pytorch-export", "builtin-normalisation"])
def test_node_names_are_read_without_onnx_and_pick_the_input_scaling(tmp_path, builtin):
    path = build_arcface(tmp_path / "w600k_r50.onnx", builtin_normalisation=builtin)
    expected = [node.name for node in onnx.load(str(path)).graph.node]
    assert first_node_names(path, limit=8) == expected[:8]
    assert first_node_names(path, limit=100) == expected          # fewer nodes than the limit: all of them
    recogniser = ArcFaceRecognizer(_pack(recognizer=path))
    assert (recogniser.input_mean, recogniser.input_std) == ((0.0, 1.0) if builtin else (127.5, 127.5))
    keypoints = np.array([[220, 180], [280, 180], [250, 215], [225, 250], [275, 250]], np.float32)
    raw, unit = recogniser.raw_embedding(astronaut(), keypoints), recogniser.embed(astronaut(), keypoints)
    assert raw.shape == unit.shape == (512,)
    assert np.allclose(unit * np.linalg.norm(raw), raw, atol=1e-5) and np.linalg.norm(raw) != pytest.approx(1.0)


@pytest.mark.parametrize("outputs", sorted(LAYOUTS))
def test_a_silent_pyramid_level_is_not_an_error(tmp_path, outputs):
    """A level with no score above the threshold (every face of the photo in other size bands) used to
    raise "does not produce SCRFD outputs"."""
    strides, _, with_kps = LAYOUTS[outputs]
    path = build_scrfd(tmp_path / "det_10g.onnx", outputs=outputs, silent_levels=(strides[0],), seed=outputs)
    detector = InsightFaceDetector(_pack(detector=path), min_face=0, need_keypoints=False)
    found = detector.detect_arrays(astronaut())
    assert len(found.scores) > 0 and (found.scores >= 0.5).all()
    assert len(detector.detect_arrays(np.full((300, 451, 3), 20, np.uint8)).scores) == 0   # no face at all
    if with_kps:
        faces = InsightFaceDetector(_pack(detector=path), min_face=0).detect(astronaut())
        assert len(faces) == len(found.scores) and faces[0].keypoints.shape == (5, 2)
    else:
        with pytest.raises(InsightFaceModelError, match=f"{outputs} outputs"):
            InsightFaceDetector(_pack(detector=path))
