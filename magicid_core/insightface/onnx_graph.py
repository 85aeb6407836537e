"""The names of an ONNX graph's first nodes, read from the file without the ``onnx`` package.

insightface decides how to normalise a recogniser's input from these names (an mxnet export
starts with ``_minus`` / ``_mul`` nodes that normalise inside the graph). onnxruntime does not
show a graph's nodes, so the pack reads them from the protobuf wire format directly:
ModelProto field 7 is the graph, GraphProto field 1 the repeated nodes, NodeProto field 3 a
node's name. Protobuf writers emit fields in number order, so the nodes come before the
weights and only the first few kilobytes of a large file are touched.
"""

from __future__ import annotations

import mmap
from pathlib import Path

_MODEL_GRAPH, _GRAPH_NODE, _NODE_NAME = 7, 1, 3
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _varint(data, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data, start: int, end: int):
    """(field number, wire type, value start, value end) of each field of one message in data[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value_start = pos
            _, pos = _varint(data, pos)
        elif wire == _LENGTH_DELIMITED:
            length, value_start = _varint(data, pos)
            pos = value_start + length
        elif wire in (_FIXED64, _FIXED32):
            value_start, pos = pos, pos + (8 if wire == _FIXED64 else 4)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        yield number, wire, value_start, pos


def first_node_names(path: Path, limit: int = 8) -> list[str]:
    """The names of the graph's first ``limit`` nodes, in file order ("" for an unnamed node)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        names: list[str] = []
        for number, wire, start, end in _fields(data, 0, len(data)):
            if number != _MODEL_GRAPH or wire != _LENGTH_DELIMITED:
                continue
            for g_number, g_wire, g_start, g_end in _fields(data, start, end):
                if g_number != _GRAPH_NODE or g_wire != _LENGTH_DELIMITED:
                    continue
                name = ""
                for n_number, n_wire, n_start, n_end in _fields(data, g_start, g_end):
                    if n_number == _NODE_NAME and n_wire == _LENGTH_DELIMITED:
                        name = bytes(data[n_start:n_end]).decode("utf-8", "replace")
                names.append(name)
                if len(names) == limit:
                    return names
            return names
        return names
