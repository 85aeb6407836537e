"""insightface's 2d106det: 106 face landmarks from a loose square crop around the detection box.

Both packs ship it (``antelopev2/2d106det.onnx``, ``buffalo_l/2d106det.onnx``). Run as
insightface's ``model_zoo.landmark.Landmark.get`` does:

1. crop: the square of side 1.5 x the box's longer side, centred on the box, scaled to the
   model's input (192): M = [[s, 0, 96 - s cx], [0, s, 96 - s cy]], s = 192 / (1.5 max(w, h));
2. blob: RGB, (pixel - mean) / std, NCHW; mean/std are 0/1 when the graph normalises by itself
   (a Sub/Mul or ``bn_data`` node among its first ones), else 127.5/128;
3. decode: the output's last 212 numbers are (x, y) pairs in -1..1 of the crop:
   crop_px = (p + 1) * 96; image_px = M^-1 crop_px.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..image_io import to_rgb_uint8
from .packs import PACKS, RECOMMENDED, InsightFaceModelError, find_pack, load_session

LANDMARK_FILE = "2d106det.onnx"
CROP_SCALE = 1.5   # crop side / the box's longer side


def find_landmark_model(models_roots=None) -> Path:
    """The 2d106det.onnx of the first pack (antelopev2, then buffalo_l) that has one."""
    searched = []
    for pack in PACKS:
        try:
            folder = find_pack(models_roots, pack).folder
        except InsightFaceModelError:
            continue
        if (folder / LANDMARK_FILE).is_file():
            return folder / LANDMARK_FILE
        searched.append(str(folder))
    where = f" (packs found without it: {', '.join(searched)})" if searched else ""
    raise InsightFaceModelError(f"no insightface {LANDMARK_FILE} found{where}; it comes with the antelopev2 and "
                                f"buffalo_l packs: unpack the whole pack into {RECOMMENDED}/")


def crop_matrix(box: np.ndarray, input_size: int) -> np.ndarray:
    """2x3 affine from image pixels to the model's crop (step 1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = input_size / (max(x1 - x0, y1 - y0) * CROP_SCALE)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[scale, 0, input_size / 2 - scale * cx], [0, scale, input_size / 2 - scale * cy]], np.float64)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes):
    """(field number, wire type, value or bytes) of one protobuf message, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def first_node_names(path: Path, count: int = 8) -> list[str]:
    """Names of the first graph nodes of an ONNX file (ModelProto.graph = 7, GraphProto.node = 1,
    NodeProto.name = 3), read without the onnx package."""
    data = Path(path).read_bytes()
    graph = next((v for f, w, v in _fields(data) if f == 7 and w == 2), b"")
    names = []
    for field, wire, node in _fields(graph):
        if field == 1 and wire == 2:
            names.append(next((v.decode("utf-8", "replace") for f, w, v in _fields(node) if f == 3 and w == 2), ""))
            if len(names) == count:
                break
    return names


def input_normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) as insightface chooses them from the graph's first nodes (step 2)."""
    names = first_node_names(path)
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    if "bn_data" in names[:3]:
        has_sub = has_mul = True
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 128.0)


class Landmark106:
    """``points(image, box) -> (106, 2)`` image pixels, from 2d106det.onnx."""

    name = "insightface_106"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.session = load_session(self.path)
        model_input = self.session.get_inputs()[0]
        side = model_input.shape[2] if len(model_input.shape) == 4 else None
        outputs = self.session.get_outputs()
        width = outputs[0].shape[-1] if outputs and len(outputs[0].shape) >= 2 else None
        if not isinstance(side, int) or len(outputs) != 1 or not isinstance(width, int) or width < 212 or width >= 3000:
            raise InsightFaceModelError(
                f"{self.path} is not insightface's 2d106det (input {model_input.shape}, "
                f"{len(outputs)} output(s) {[o.shape for o in outputs]}); expected 1 x 3 x 192 x 192 -> 1 x 212")
        self.input_size = side
        self.input_name = model_input.name
        self.mean, self.std = input_normalisation(self.path)

    def points(self, image, box: np.ndarray) -> np.ndarray:
        image = to_rgb_uint8(image)
        matrix = crop_matrix(box, self.input_size)
        crop = cv2.warpAffine(image, matrix, (self.input_size, self.input_size), borderValue=0.0)
        blob = ((crop.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        pred = self.session.run(None, {self.input_name: blob})[0][0].reshape(-1, 2)[-106:]
        crop_px = (pred.astype(np.float64) + 1) * (self.input_size // 2)
        inverse = cv2.invertAffineTransform(matrix)
        return (crop_px @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
