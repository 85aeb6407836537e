"""ONNX files with the interface of insightface's real models and seeded random weights.

No real weights are on this machine (nor may any be downloaded), so the parity tests build
models that the reference code and ours read exactly as they read the real files:

- SCRFD detectors: the input ``input.1`` (1, 3, H, W), dynamic like ``det_10g.onnx`` or fixed;
  per pyramid level a score, a box-distance and (optionally) a keypoint-offset output, in
  insightface's order (all scores, then all boxes, then all keypoints), rows ordered cell by
  cell and anchor by anchor, with or without a leading batch axis. Outputs: 6 / 9 (strides
  8, 16, 32, two anchors a cell) or 10 / 15 (strides 8 to 128, one anchor).
- ArcFace recognisers: ``input.1`` (N, 3, 112, 112) -> one (1, 512) output, optionally exported
  with the normalisation built in (leading ``_minus`` / ``_mul`` nodes, as mxnet exports have).

The detector's weights are random but shaped so that scores vary: each level's score is a
sigmoid of a random 3x3 filter over the level's average-pooled pixels, with a positive centre
tap, so bright patches score high and a dark image scores below any threshold. ``silent_levels``
gives a level a bias so low that it never scores above the threshold: what a real detector does
at the levels no face of a photo falls into.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package builds the test models: pip install -r requirements-test.txt")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 13
IR_VERSION = 8          # readable by every onnxruntime the pack supports (>= 1.16)
LAYOUTS = {             # outputs -> (strides, anchors per cell, keypoints)
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


class _Graph:
    """Collects nodes and initializers; names nodes the way exporters do (op type + counter)."""

    def __init__(self):
        self.nodes, self.weights, self.count = [], [], 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self.count += 1
        node_name = name or f"{op_type}_{self.count}"
        output = f"{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=node_name, **attrs))
        return output


def _conv(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
    w = g.const(f"w{g.count}", weight.astype(np.float32))
    b = g.const(f"b{g.count}", bias.astype(np.float32))
    k = weight.shape[-1]
    return g.op("Conv", [x, w, b], kernel_shape=[k, k], pads=[k // 2] * 4)


def _rows(g: _Graph, x: str, width: int, batch_axis: bool) -> str:
    """(1, A*width, h, w) -> (h*w*A, width) rows, cell-major then anchor, like SCRFD's export."""
    nhwc = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    shape = g.const(f"shape{g.count}", np.array([1, -1, width] if batch_axis else [-1, width], np.int64))
    return g.op("Reshape", [nhwc, shape])


def build_scrfd(path: Path, outputs: int = 9, batch_axis: bool = False, input_hw=None, seed: int = 0,
                silent_levels=(), score_bias: float = -2.5) -> Path:
    """An SCRFD-interface detector. ``input_hw`` None: dynamic height and width (det_10g);
    (h, w): an export with a fixed input size. ``silent_levels``: strides that never score above 0.5."""
    strides, anchors, with_kps = LAYOUTS[outputs]
    rng = np.random.default_rng(seed)
    g = _Graph()
    scores, boxes, kps = [], [], []
    for stride in strides:
        pooled = g.op("AveragePool", ["input.1"], kernel_shape=[stride, stride], strides=[stride, stride])
        w = rng.normal(0, 0.15, (anchors, 3, 3, 3))
        w[:, :, 1, 1] += rng.uniform(0.6, 1.2, (anchors, 3))       # bright patches score high
        bias = np.full(anchors, -40.0 if stride in silent_levels else score_bias) + rng.normal(0, 0.3, anchors)
        scores.append(_rows(g, g.op("Sigmoid", [_conv(g, pooled, w, bias)]), 1, batch_axis))
        distances = g.op("Softplus", [_conv(g, pooled, rng.normal(0, 0.5, (4 * anchors, 3, 3, 3)),
                                            rng.uniform(1.5, 3.0, 4 * anchors))])
        boxes.append(_rows(g, distances, 4, batch_axis))
        if with_kps:
            offsets = _conv(g, pooled, rng.normal(0, 0.4, (10 * anchors, 3, 3, 3)), rng.normal(0, 0.8, 10 * anchors))
            kps.append(_rows(g, offsets, 10, batch_axis))
    outs = scores + boxes + kps
    widths = [1] * len(strides) + [4] * len(strides) + [10] * len(kps)
    height, width = input_hw if input_hw else ("height", "width")
    graph_outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                   ([1] if batch_axis else []) + [f"n{i}", c])
                     for i, (name, c) in enumerate(zip(outs, widths))]
    graph = helper.make_graph(g.nodes, "scrfd", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [1, 3, height, width])], graph_outputs, g.weights)
    return _save(graph, path)


def build_arcface(path: Path, seed: int = 0, builtin_normalisation: bool = False, dim: int = 512) -> Path:
    """An ArcFace-interface recogniser: (N, 3, 112, 112) -> (1, dim). With ``builtin_normalisation`` the
    graph starts with (x - 127.5) * 0.0078125 in nodes named like mxnet's, so it is fed raw pixels."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    x = "input.1"
    if builtin_normalisation:
        x = g.op("Sub", [x, g.const("mean", np.array(127.5, np.float32))], name="_minus0")
        x = g.op("Mul", [x, g.const("scale", np.array(0.0078125, np.float32))], name="_mul0")
    x = g.op("Relu", [_conv(g, x, rng.normal(0, 0.3, (8, 3, 3, 3)), rng.normal(0, 0.1, 8))])
    x = g.op("AveragePool", [x], kernel_shape=[8, 8], strides=[8, 8])            # (N, 8, 14, 14)
    x = g.op("Flatten", [x], axis=1)
    fc = g.const("fc_w", rng.normal(0, 1.0 / np.sqrt(8 * 14 * 14), (dim, 8 * 14 * 14)).astype(np.float32))
    x = g.op("Gemm", [x, fc, g.const("fc_b", rng.normal(0, 0.1, dim).astype(np.float32))], transB=1)
    graph = helper.make_graph(
        g.nodes, "arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["None", dim])], g.weights)
    return _save(graph, path)


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="magicid-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_pack(folder: Path, name: str = "buffalo_l", **scrfd_options) -> Path:
    """A complete pack folder (detector + recogniser under their real file names)."""
    from magicid_core.insightface import PACKS

    det_file, rec_file = PACKS[name]
    build_scrfd(Path(folder) / name / det_file, **scrfd_options)
    build_arcface(Path(folder) / name / rec_file)
    return Path(folder) / name
