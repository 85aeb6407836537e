"""dlib's ResNet face descriptor, computed with numpy from dlib's own model file.

Why: the dlib-bin wheel is built without BLAS and holds Python's lock while it runs this network,
so ``face_recognition_model_v1`` takes about 150 ms a face on two cores, the largest part of the
analysis of a group photo. The same network as a few matrix products through numpy's BLAS is
several times quicker and gives the same 128 numbers (``tests/test_dlib_resnet.py`` compares
them with dlib's on real faces).

The file is ``dlib_face_recognition_resnet_model_v1.dat`` from ``face_recognition_models``: the
network of dlib's ``dnn_face_recognition_ex.cpp`` (a 29-convolution ResNet on a 150x150 chip).
dlib's serialisation writes each layer as a record that starts with its version string
("con_4", "affine_", ...) followed by the layer's fields; between them sit wrappers that hold no
weights (tags, skips, training state). ``read_layers`` finds the records in file order and reads
each one whole; ``DlibResNet`` checks that their sequence is this network's before using them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

CHIP_SIZE = 150        # dlib's input_rgb_image_sized<150>
CHIP_PADDING = 0.25    # compute_face_descriptor's default padding around the aligned face
BATCH = 16             # chips a pass, as dlib's own loop: bounds the convolution buffers (~50 MB)


class DlibModelFileError(ValueError):
    """The file is not the dlib face-recognition network this module reads."""


@dataclass
class Layer:
    kind: str                           # con, affine, relu, max_pool, avg_pool, add_prev, fc, input
    weights: np.ndarray | None = None   # con: (filters, channels, rows, cols); fc: (inputs, outputs)
    bias: np.ndarray | None = None      # con: (filters,); affine: beta
    scale: np.ndarray | None = None     # affine: gamma
    size: int = 0                       # window rows (= cols); 0 for a pool over the whole image
    stride: int = 1
    pad: int = 0


class _Reader:
    """dlib's serialisation primitives (dlib/serialize.h, dlib/cuda/tensor.h)."""

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def int(self) -> int:
        # One control byte (byte count in the low 4 bits, 0x80 = negative), then little-endian bytes.
        control = self.data[self.pos]
        size = control & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return mantissa * 2.0 ** exponent

    def string(self) -> str:
        size = self.int()
        text = self.data[self.pos:self.pos + size].decode("latin-1")
        self.pos += size
        return text

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibModelFileError(f"unexpected tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise DlibModelFileError(f"unexpected alias_tensor version at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


def _read_con(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    filters, rows, cols = r.int(), r.int(), r.int()
    stride_y, stride_x, pad_y, pad_x = r.int(), r.int(), r.int(), r.int()
    shape = r.alias()
    r.alias()
    if rows != cols or stride_y != stride_x or pad_y != pad_x:
        raise DlibModelFileError("only square convolutions are expected in dlib's face network")
    count = int(np.prod(shape))
    weights = params[:count].reshape(shape)
    return Layer("con", weights=weights, bias=params[count:count + filters], size=rows, stride=stride_y,
                 pad=pad_y)


def _read_affine(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    half = params.size // 2
    return Layer("affine", scale=params[:half], bias=params[half:])


def _read_pool(kind: str):
    def read(r: _Reader) -> Layer:
        rows, cols, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(6))
        if rows != cols or stride_y != stride_x or pad_y != pad_x:
            raise DlibModelFileError("only square pooling is expected in dlib's face network")
        return Layer(kind, size=rows, stride=stride_y, pad=pad_y)
    return read


def _read_fc(r: _Reader) -> Layer:
    outputs, inputs = r.int(), r.int()
    params = r.tensor().ravel()
    return Layer("fc", weights=params[:inputs * outputs].reshape(inputs, outputs))


def _read_input(r: _Reader) -> Layer:
    means = np.array([r.float(), r.float(), r.float()], np.float32)
    rows, cols = r.int(), r.int()
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE):
        raise DlibModelFileError(f"the network reads {rows}x{cols} chips, not {CHIP_SIZE}x{CHIP_SIZE}")
    return Layer("input", bias=means)


# Version strings of the records this network holds, and how to read the fields after each.
READERS = {
    "input_rgb_image_sized": _read_input,
    "con_4": _read_con, "con_5": _read_con, "con_6": _read_con,
    "affine_": _read_affine, "affine_2": _read_affine,
    "relu_": lambda r: Layer("relu"), "relu_2": lambda r: Layer("relu"),
    "max_pool_2": _read_pool("max_pool"), "avg_pool_2": _read_pool("avg_pool"),
    "add_prev_": lambda r: Layer("add_prev"),
    "fc_2": _read_fc, "fc_3": _read_fc,
}
_RECORD = re.compile(b"|".join(re.escape(bytes([1, len(name)]) + name.encode()) for name in READERS))


def read_layers(path: Path) -> list[Layer]:
    """The layers of a dlib network file, input first (dlib writes the innermost layer first)."""
    data = Path(path).read_bytes()
    layers, end = [], 0
    for match in _RECORD.finditer(data):
        if match.start() < end:           # inside the previous record's weights
            continue
        reader = _Reader(data, match.start())
        name = reader.string()
        try:
            layers.append(READERS[name](reader))
        except (IndexError, ValueError) as e:
            raise DlibModelFileError(f"{Path(path).name}: the {name!r} record at byte {match.start()} "
                                     f"could not be read ({e})") from e
        end = reader.pos
    return layers


# The network's shape, as layer kinds in file order: a stem, residual blocks, then the head.
STEM = ["input", "con", "affine", "relu", "max_pool"]
BLOCK = ["con", "affine", "relu", "con", "affine", "add_prev", "relu"]
BLOCK_DOWN = ["con", "affine", "relu", "con", "affine", "avg_pool", "add_prev", "relu"]
HEAD = ["avg_pool", "fc"]


@dataclass
class _Conv:
    matrix: np.ndarray
    bias: np.ndarray
    size: int
    stride: int
    pad: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.pad:
            x = np.pad(x, ((0, 0), (self.pad, self.pad), (self.pad, self.pad), (0, 0)))
        windows = _windows(x, self.size, self.stride)
        n, rows, cols = windows.shape[:3]
        out = windows.reshape(n * rows * cols, -1) @ self.matrix
        out += self.bias
        return out.reshape(n, rows, cols, -1)

    @classmethod
    def folded(cls, con: Layer, affine: Layer) -> "_Conv":
        """A convolution and the affine layer after it as one product: (rows*cols*channels, filters) + bias."""
        weights = con.weights * affine.scale[:, None, None, None]
        bias = con.bias * affine.scale + affine.bias
        matrix = weights.transpose(2, 3, 1, 0).reshape(-1, weights.shape[0])   # matches the NHWC windows
        return cls(np.ascontiguousarray(matrix, np.float32), bias.astype(np.float32), con.size, con.stride, con.pad)


def _windows(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(n, out_rows, out_cols, size, size, channels) view of an NHWC batch: dlib's valid windows."""
    n, height, width, channels = x.shape
    rows, cols = (height - size) // stride + 1, (width - size) // stride + 1
    s = x.strides
    return as_strided(x, (n, rows, cols, size, size, channels),
                      (s[0], s[1] * stride, s[2] * stride, s[1], s[2], s[3]), writeable=False)


def _add_prev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's add_prev: the sum where both exist; the larger shape, missing values taken as zero."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, d) for d in a.shape)] += a
    out[tuple(slice(0, d) for d in b.shape)] += b
    return out


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


class DlibResNet:
    """dlib_face_recognition_resnet_model_v1 as numpy: ``descriptors(chips)`` -> (n, 128)."""

    def __init__(self, path: Path):
        layers = read_layers(path)
        kinds = [layer.kind for layer in layers]
        if kinds[:len(STEM)] != STEM or kinds[-len(HEAD):] != HEAD:
            raise DlibModelFileError(f"{Path(path).name} is not dlib's face-recognition ResNet "
                                     f"(layers found: {' '.join(kinds[:8])} ...)")
        stem = layers[:len(STEM)]
        self.means = stem[0].bias
        self.stem = _Conv.folded(stem[1], stem[2])
        self.stem_pool = stem[4]
        self.blocks = []        # (first conv, second conv, shortcut pool or None)
        at, body_end = len(STEM), len(layers) - len(HEAD)
        while at < body_end:
            shape = BLOCK_DOWN if kinds[at:at + len(BLOCK_DOWN)] == BLOCK_DOWN else BLOCK
            if kinds[at:at + len(shape)] != shape:
                raise DlibModelFileError(f"{Path(path).name}: unexpected layers at {at}: "
                                         f"{' '.join(kinds[at:at + len(BLOCK_DOWN)])}")
            block = layers[at:at + len(shape)]
            pool = block[5] if shape is BLOCK_DOWN else None
            self.blocks.append((_Conv.folded(block[0], block[1]), _Conv.folded(block[3], block[4]), pool))
            at += len(shape)
        self.fc = np.ascontiguousarray(layers[-1].weights, np.float32)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """(n, 150, 150, 3) uint8 RGB chips, aligned as dlib.get_face_chip aligns them -> (n, 128) float32."""
        chips = np.asarray(chips)
        if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be (n, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.shape}")
        parts = [self._forward(chips[at:at + BATCH]) for at in range(0, len(chips), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self.fc.shape[1]), np.float32)

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32) - self.means) / np.float32(256.0)
        x = _relu(self.stem(x))
        x = _pool(x, self.stem_pool)
        for first, second, shortcut_pool in self.blocks:
            shortcut = x if shortcut_pool is None else _pool(x, shortcut_pool)
            x = _relu(_add_prev(second(_relu(first(x))), shortcut))
        return x.mean(axis=(1, 2)) @ self.fc


def _pool(x: np.ndarray, pool: Layer) -> np.ndarray:
    if pool.pad:
        raise DlibModelFileError("padded pooling is not expected in dlib's face network")
    windows = _windows(x, pool.size, pool.stride)
    return windows.max(axis=(3, 4)) if pool.kind == "max_pool" else windows.mean(axis=(3, 4), dtype=np.float32)
