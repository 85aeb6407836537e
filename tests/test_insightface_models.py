"""insightface packs: discovery (flat and nested), clear errors, and the pure decoding math.

There are no insightface weights on this machine: discovery and errors are tested for
real on folders of placeholder files; SCRFD decoding and ArcFace alignment are tested
as the pure functions they are, on inputs whose answer is known analytically.
"""

import cv2
import numpy as np
import pytest

from magicid_core.identity.embedders import make_embedder
from magicid_core.insightface import (ARCFACE_TEMPLATE, ArcFaceRecognizer, InsightFaceDetector,
                                      InsightFaceModelError, find_pack, align_face, similarity_transform)
from magicid_core.insightface.scrfd import (anchor_centers, decode_level, distances_to_boxes, input_side, letterbox)


def _pack(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"not an onnx model")
    return folder


def test_finds_flat_and_nested_layouts_and_prefers_antelopev2(tmp_path):
    _pack(tmp_path / "buffalo_l", ["det_10g.onnx", "w600k_r50.onnx"])
    assert find_pack(tmp_path).name == "buffalo_l"
    nested = _pack(tmp_path / "antelopev2" / "antelopev2", ["scrfd_10g_bnkps.onnx", "glintr100.onnx"])
    found = find_pack(tmp_path)
    assert found.name == "antelopev2" and found.folder == nested
    assert found.detector == nested / "scrfd_10g_bnkps.onnx" and found.recognizer == nested / "glintr100.onnx"
    assert find_pack([tmp_path / "elsewhere", tmp_path], pack="buffalo_l").folder == tmp_path / "buffalo_l"
    assert find_pack(nested).folder == nested   # the pack folder itself given as the root


def test_env_var_is_the_default_root(tmp_path, monkeypatch):
    _pack(tmp_path / "antelopev2", ["scrfd_10g_bnkps.onnx", "glintr100.onnx"])
    monkeypatch.setenv("MAGICID_INSIGHTFACE_DIR", str(tmp_path))
    assert find_pack().folder == tmp_path / "antelopev2"
    monkeypatch.delenv("MAGICID_INSIGHTFACE_DIR")
    with pytest.raises(InsightFaceModelError, match="MAGICID_INSIGHTFACE_DIR"):
        find_pack()


def test_missing_files_error_names_folder_and_files(tmp_path):
    _pack(tmp_path / "antelopev2", ["glintr100.onnx"])   # detector missing
    with pytest.raises(InsightFaceModelError) as err:
        find_pack(tmp_path)
    text = str(err.value)
    assert str(tmp_path) in text and f"{tmp_path / 'antelopev2'} lacks scrfd_10g_bnkps.onnx" in text
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "det_10g.onnx", "w600k_r50.onnx", "models/<pack>",
                 "<pack>/<pack>", "ComfyUI/models/insightface/models/antelopev2/"):
        assert name in text
    with pytest.raises(InsightFaceModelError, match="arcface|insightface"):
        make_embedder("arcface", tmp_path)


def test_auto_backend_falls_back_to_dlib_without_insightface(tmp_path):
    assert make_embedder("auto", tmp_path).model_name == "dlib_resnet_v1"


@pytest.mark.parametrize("content", [b"", b"\x08\x01garbage that is no protobuf" * 10], ids=["empty", "garbage"])
def test_corrupt_model_file_error_names_the_file(tmp_path, content):
    folder = _pack(tmp_path / "buffalo_l", ["det_10g.onnx", "w600k_r50.onnx"])
    (folder / "det_10g.onnx").write_bytes(content)
    pack = find_pack(tmp_path)
    with pytest.raises(InsightFaceModelError, match="det_10g.onnx.*corrupt"):
        InsightFaceDetector(pack)
    with pytest.raises(InsightFaceModelError, match="w600k_r50.onnx.*corrupt"):
        ArcFaceRecognizer(pack)
    with pytest.raises(InsightFaceModelError, match=f"{folder}/(det_10g|w600k_r50).onnx could not be loaded"):
        make_embedder("arcface", tmp_path)


def test_anchor_centers_row_major_repeated_per_anchor():
    c = anchor_centers(2, 3, 8, 2)
    expected = [[0, 0], [0, 0], [8, 0], [8, 0], [16, 0], [16, 0], [0, 8], [0, 8], [8, 8], [8, 8], [16, 8], [16, 8]]
    assert c.tolist() == expected


def test_decode_level_places_box_and_keypoints_around_the_cell():
    # a 4x4 grid at stride 16, one anchor; only cell (row 2, col 1) fires: centre (16, 32)
    scores = np.zeros((16, 1), np.float32)
    scores[2 * 4 + 1] = 0.9
    dist = np.ones((16, 4), np.float32)              # one stride to every side
    kps = np.tile(np.array([-0.5, -0.5, 0.5, -0.5, 0, 0, -0.25, 0.5, 0.25, 0.5], np.float32), (16, 1))
    s, boxes, points = decode_level(scores, dist, kps, 16, 1, (4, 4), 0.5)
    assert s.tolist() == pytest.approx([0.9])
    assert boxes.tolist() == [[0, 16, 32, 48]]
    assert points[0].tolist() == [[8, 24], [24, 24], [16, 32], [12, 40], [20, 40]]
    with pytest.raises(ValueError, match="grid"):
        decode_level(scores[:10], dist, kps, 16, 1, (4, 4), 0.5)


def test_boxes_and_letterbox():
    centers = np.array([[10, 10]], np.float32)
    assert distances_to_boxes(centers, np.array([[1, 2, 3, 4]], np.float32)).tolist() == [[9, 8, 13, 14]]
    canvas, scale = letterbox(np.full((100, 200, 3), 255, np.uint8), (640, 640))
    assert scale == pytest.approx(3.2) and canvas[:320].min() == 255 and canvas[320:].max() == 0


def test_similarity_transform_recovers_a_known_similarity():
    angle, scale, shift = np.deg2rad(17), 2.5, np.array([31.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-4) and np.allclose(m[:, 2], shift, atol=1e-3)
    with pytest.raises(ValueError, match="one point"):
        similarity_transform(np.zeros((5, 2)), ARCFACE_TEMPLATE)


def test_align_face_moves_keypoints_onto_the_arcface_template():
    # dots drawn at the template mapped by a rotation+scale+shift come back onto the template
    angle, scale, shift = np.deg2rad(-25), 2.0, np.array([200.0, 140.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    kps = ARCFACE_TEMPLATE @ rot.T + shift
    image = np.zeros((480, 480, 3), np.uint8)
    for x, y in kps:
        cv2.circle(image, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    crop = align_face(image, kps)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:
        assert crop[int(round(y)), int(round(x))].min() > 200
    assert crop.mean() < 30   # the rest stays dark


def test_input_side_keeps_the_smallest_face_findable():
    assert input_side(1536, 2048, min_face=32) == 1024      # a 32 px face -> 16 px at the model
    assert input_side(1000, 1000, min_face=20) == 800
    assert input_side(512, 512, min_face=32) == 640          # never below insightface's 640
    assert input_side(8000, 8000, min_face=16) == 1920       # bounded for 8k images


def test_detector_registry_and_analysis_name_the_insightface_folder(tmp_path):
    from magicid_core.analyze import AnalysisSettings, analyze_image
    from magicid_core.faces.detection import make_detector

    with pytest.raises(InsightFaceModelError, match=f"{tmp_path}.*scrfd_10g_bnkps.onnx"):
        make_detector("insightface", insightface_roots=[str(tmp_path)])
    from magicid_core.optional import mediapipe_available

    next_backend = "mediapipe" if mediapipe_available() else "dlib_hog"   # no pack: the next backend installed
    assert make_detector("auto", insightface_roots=[str(tmp_path)]).name == next_backend
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InsightFaceModelError, match=f"{tmp_path}.*glintr100.onnx"):
        analyze_image(image, AnalysisSettings(backend="insightface", insightface_roots=(str(tmp_path),)))
    with pytest.raises(ValueError, match="unknown identity backend"):
        analyze_image(image, AnalysisSettings(identity_backend="facenet"))
