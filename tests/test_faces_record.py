"""The face record type and the input normalisation every analysis starts with."""

import json

import numpy as np
import pytest

from magicid_core.faces.records import Face, FaceSet, ImageFaces
from magicid_core.image_io import to_rgb_uint8


def _face(index, x0, mask=None):
    box = np.array([x0, 10, x0 + 20, 30], np.float32)
    kps = np.array([[x0 + 5, 15], [x0 + 15, 15], [x0 + 10, 20], [x0 + 6, 25], [x0 + 14, 25]], np.float32)
    return Face(index=index, box=box, score=0.9, keypoints=kps, head_box=box.copy(), mask=mask)


def test_masks_union_and_json_roundtrip():
    m0 = np.zeros((40, 60), np.float32)
    m0[10:30, 0:20] = 1
    m1 = np.zeros((40, 60), np.float32)
    m1[10:30, 30:50] = 1
    frame = ImageFaces(40, 60, [_face(0, 0, m0), _face(1, 30, m1)])
    assert frame.masks().shape == (2, 40, 60)
    assert frame.union_mask().sum() == m0.sum() + m1.sum()
    data = json.loads(json.dumps(FaceSet([frame]).to_dict()))
    assert data["images"][0]["faces"][1]["mask_area"] == 400
    assert data["images"][0]["faces"][0]["keypoints"]["nose"] == [10.0, 20.0]


def test_empty_image_has_empty_union():
    assert ImageFaces(5, 7).union_mask().shape == (5, 7)
    assert ImageFaces(5, 7).masks().shape == (0, 5, 7)


def test_select_renumbers_and_skips_missing_indices():
    fs = FaceSet([ImageFaces(40, 60, [_face(0, 0), _face(1, 30)]), ImageFaces(40, 60, [_face(0, 5)])])
    picked = fs.select([1])
    assert [f.index for f in picked[0].faces] == [0]
    assert picked[0].faces[0].box[0] == 30
    assert picked[1].faces == []


@pytest.mark.parametrize("shape,dtype", [((8, 9), np.uint8), ((8, 9, 1), np.float32), ((8, 9, 4), np.uint8),
                                         ((8, 9, 3), np.float64), ((1, 1, 2), np.float32)])
def test_to_rgb_uint8_accepts_gray_rgba_and_float(shape, dtype):
    a = np.full(shape, 0.5 if dtype != np.uint8 else 128, dtype)
    out = to_rgb_uint8(a)
    assert out.shape == shape[:2] + (3,) and out.dtype == np.uint8
    assert np.all(out == 128)


def test_to_rgb_uint8_clears_nan_and_rejects_nonsense():
    a = np.full((4, 4, 3), np.nan, np.float32)
    assert to_rgb_uint8(a).max() == 0
    with pytest.raises(ValueError, match="expected an image"):
        to_rgb_uint8(np.zeros((2, 2, 2, 2)))
