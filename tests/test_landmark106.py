"""insightface's 2d106det, run as insightface's ``model_zoo.landmark.Landmark.get`` runs it.

No insightface weights here: the model is a seeded ONNX graph with 2d106det's interface
(1 x 3 x 192 x 192 -> 1 x 212), and the reference is insightface's algorithm written out below
(skimage similarity transforms, cv2.dnn.blobFromImage on BGR with swapRB, onnx-read
normalisation), run on the same file and a real photo.
"""

import re

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package builds the seeded 2d106det stand-in")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from skimage import transform as sktrans  # noqa: E402

from tests.support.people import astronaut  # noqa: E402
from magicid_core.faces.landmarks import make_landmarker  # noqa: E402
from magicid_core.insightface import InsightFaceModelError  # noqa: E402
from magicid_core.insightface.landmark106 import (Landmark106, find_landmark_model, first_node_names,  # noqa: E402
                                                  input_normalisation)
from magicid_core.faces import landmarks68  # noqa: E402

FACE_BOX = np.array([178.0, 82.0, 273.0, 178.0], np.float32)   # the astronaut's face (dlib HOG box)


def seeded_2d106det(path, self_normalising: bool, outputs: int = 212, seed: int = 0):
    """A 2d106det stand-in: conv (stride 8) -> gemm -> tanh, so each output depends on where things are."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.05, (4, 3, 8, 8)).astype(np.float32), "conv_w"),
             numpy_helper.from_array(rng.normal(0, 0.02, (4 * 24 * 24, outputs)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(np.array([127.5], np.float32), "mean"),
             numpy_helper.from_array(np.array([1 / 128], np.float32), "inv_std")]
    nodes, x = [], "data"
    if self_normalising:   # like the real file: the graph normalises raw 0..255 pixels itself
        nodes += [helper.make_node("Sub", [x, "mean"], ["sub"], name="Sub_0"),
                  helper.make_node("Mul", ["sub", "inv_std"], ["mul"], name="Mul_1")]
        x = "mul"
    nodes += [helper.make_node("Conv", [x, "conv_w"], ["conv"], name="conv0", kernel_shape=[8, 8], strides=[8, 8]),
              helper.make_node("Flatten", ["conv"], ["flat"], name="flatten0"),
              helper.make_node("MatMul", ["flat", "fc_w"], ["fc"], name="fc0"),
              helper.make_node("Tanh", ["fc"], ["fc1"], name="tanh0")]
    graph = helper.make_graph(nodes, "lmk", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def insightface_reference(path, image_bgr, bbox):
    """insightface's Landmark.__init__ + get(), as written in its model_zoo/landmark.py and utils/face_align.py."""
    bbox = np.asarray(bbox, np.float64)   # numpy 2 would keep a float32 box's maths in float32
    find_sub = find_mul = False
    for nid, node in enumerate(onnx.load(str(path)).graph.node[:8]):
        if node.name.startswith("Sub") or node.name.startswith("_minus"):
            find_sub = True
        if node.name.startswith("Mul") or node.name.startswith("_mul"):
            find_mul = True
        if nid < 3 and node.name == "bn_data":
            find_sub = find_mul = True
    input_mean, input_std = (0.0, 1.0) if find_sub and find_mul else (127.5, 128.0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_size = tuple(session.get_inputs()[0].shape[2:4][::-1])
    lmk_num = session.get_outputs()[0].shape[1] // 2
    w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    center = (bbox[2] + bbox[0]) / 2, (bbox[3] + bbox[1]) / 2
    scale = input_size[0] / (max(w, h) * 1.5)
    # face_align.transform(img, center, output_size, scale, rotation=0)
    t = (sktrans.SimilarityTransform(scale=scale)
         + sktrans.SimilarityTransform(translation=(-center[0] * scale, -center[1] * scale))
         + sktrans.SimilarityTransform(rotation=0.0)
         + sktrans.SimilarityTransform(translation=(input_size[0] / 2, input_size[0] / 2)))
    matrix = t.params[0:2]
    crop = cv2.warpAffine(image_bgr, matrix, (input_size[0], input_size[0]), borderValue=0.0)
    blob = cv2.dnn.blobFromImage(crop, 1.0 / input_std, input_size, (input_mean,) * 3, swapRB=True)
    pred = session.run(None, {session.get_inputs()[0].name: blob})[0][0].reshape(-1, 2)[-lmk_num:]
    pred = (pred + 1) * (input_size[0] // 2)
    inverse = cv2.invertAffineTransform(matrix)
    return np.array([inverse @ np.array([x, y, 1.0]) for x, y in pred], np.float32)


@pytest.mark.parametrize("self_normalising", [True, False], ids=["graph-normalises", "caller-normalises"])
def test_landmarks_match_insightface_on_a_real_photo(tmp_path, self_normalising):
    path = seeded_2d106det(tmp_path / "2d106det.onnx", self_normalising)
    image = astronaut()
    ours = Landmark106(path).points(image, FACE_BOX)
    reference = insightface_reference(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), FACE_BOX)
    assert ours.shape == (106, 2)
    assert np.abs(ours - reference).max() < 1e-2
    # the stand-in's points spread over the crop around the face, not all in one spot
    assert ours.std(axis=0).min() > 3


def test_normalisation_is_read_from_the_graph_without_the_onnx_package(tmp_path):
    own = seeded_2d106det(tmp_path / "a.onnx", True)
    plain = seeded_2d106det(tmp_path / "b.onnx", False)
    assert first_node_names(own)[:3] == ["Sub_0", "Mul_1", "conv0"]
    assert input_normalisation(own) == (0.0, 1.0) and input_normalisation(plain) == (127.5, 128.0)


def test_a_model_of_another_kind_is_refused_by_name(tmp_path):
    path = seeded_2d106det(tmp_path / "1k3d68.onnx", True, outputs=3309)   # insightface's 3D 68-point model
    with pytest.raises(InsightFaceModelError, match="1k3d68.onnx is not insightface's 2d106det"):
        Landmark106(path)


def _pack_with_landmarks(root, pack="buffalo_l", files=("det_10g.onnx", "w600k_r50.onnx")):
    folder = root / pack
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"placeholder: not loaded by the landmark step")
    seeded_2d106det(folder / "2d106det.onnx", True)
    return folder


def test_auto_landmarks_take_2d106det_when_a_pack_has_it(tmp_path):
    folder = _pack_with_landmarks(tmp_path)
    assert find_landmark_model(tmp_path) == folder / "2d106det.onnx"
    landmarker = make_landmarker("auto", (str(tmp_path),))
    assert landmarker.name == "insightface_106"
    found = landmarker.locate(astronaut(), FACE_BOX)
    assert found.backend == "insightface_106" and found.points68.shape == (68, 2) and found.keypoints.shape == (5, 2)
    assert make_landmarker("auto", (str(tmp_path / "empty"),)).name != "insightface_106"
    (folder / "2d106det.onnx").unlink()
    with pytest.raises(InsightFaceModelError, match=r"2d106det.onnx found \(packs found without it: " + re.escape(str(folder))):
        find_landmark_model(tmp_path)


def test_106_to_68_takes_every_other_contour_point_and_each_part_once():
    points = np.stack([np.arange(106.0), np.zeros(106)], axis=1)   # point i at x = i
    mapped = landmarks68.from_106(points)[:, 0]
    contour = [1, 10, 12, 14, 16, 3, 5, 7, 0, 23, 21, 19, 32, 30, 28, 26, 17]   # 106 contour order, every other
    assert mapped[:17].tolist() == contour
    used = set(landmarks68.I106_TO_68[17:].ravel().tolist())
    assert not used & set(range(33)), "brows, nose, eyes and lips take no contour point"
    assert len(set(landmarks68.I106_TO_68[48:].ravel().tolist())) == 20, "20 distinct lip points"
