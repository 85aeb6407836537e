"""FACES <-> Impact Pack SEGS on a real group photo (the real Impact Pack: tests/host/test_segs_host.py).

The faces come from the real analysis of the pack's sample group photo; the SEGS go back
to faces through ``segs_to_faces``, which analyses the given boxes without detecting again.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.segs import (SEG, faces_to_segs, impact_crop_region, read_segs, seg_mask,
                               segs_to_faces)
from tests.support.face_scenes import group6
from tests.support.no_mediapipe import needs_mediapipe

pytestmark = needs_mediapipe   # the records compared here carry the 478-point mesh
SETTINGS = AnalysisSettings(backend="mediapipe", identity_backend="dlib", skeletons=False)


@pytest.fixture(scope="module")
def photo():
    image, _ = group6(2)
    return image


@pytest.fixture(scope="module")
def faces(photo):
    found = analyze_image(photo, SETTINGS)
    assert len(found.faces) >= 4
    return found


def test_segs_have_impacts_shape(faces, photo):
    (height, width), segs = faces_to_segs(faces, photo.astype(np.float32) / 255, crop_factor=3.0)
    assert (height, width) == photo.shape[:2] and len(segs) == len(faces.faces)
    assert SEG._fields == ("cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                           "control_net_wrapper")
    for seg, face in zip(segs, faces.faces):
        x1, y1, x2, y2 = seg.crop_region
        assert all(isinstance(v, int) for v in seg.crop_region) and 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert seg.cropped_mask.shape == (y2 - y1, x2 - x1) and seg.cropped_mask.dtype == np.float32
        assert seg.cropped_image.shape == (1, y2 - y1, x2 - x1, 3)
        np.testing.assert_array_equal(seg.cropped_image[0], photo[y1:y2, x1:x2] / np.float32(255))
        assert seg.label == "face" and seg.confidence == pytest.approx(face.score) and seg.control_net_wrapper is None
        np.testing.assert_array_equal(seg.bbox, face.box)
        # the crop region holds Impact's own region for the box
        ix1, iy1, ix2, iy2 = impact_crop_region(face.box, width, height, 3.0)
        assert x1 <= ix1 and y1 <= iy1 and x2 >= ix2 and y2 >= iy2


def test_masks_are_whole_and_exclusive_at_crop_size(faces):
    """Even with crop_factor 1 (the bare box), the feathered mask reaching past the box is kept."""
    (height, width), segs = faces_to_segs(faces, crop_factor=1.0)
    pasted = np.stack([seg_mask(seg.cropped_mask, seg.crop_region, height, width) for seg in segs])
    np.testing.assert_array_equal(pasted, faces.masks())
    assert ((pasted > 0).sum(axis=0) <= 1).all(), "two SEGS masks share a pixel"
    box_only = impact_crop_region(faces.faces[0].box, width, height, 1.0)
    assert segs[0].crop_region != box_only, "the feathered mask should reach past the face box"


def test_round_trip_keeps_masks_boxes_and_analysis(faces, photo):
    segs = faces_to_segs(faces, crop_factor=2.0)
    back = segs_to_faces(photo, segs, SETTINGS)
    assert len(back.faces) == len(faces.faces)
    for before, after in zip(faces.faces, back.faces):
        h, w = photo.shape[:2]                                   # mask pixels unchanged (masks are crop-sized)
        np.testing.assert_array_equal(after.full_mask(h, w), before.full_mask(h, w))
        np.testing.assert_array_equal(after.box, before.box)
        assert after.score == pytest.approx(before.score)
        # analysed again from the box: the same mesh and identity as the detector's record
        np.testing.assert_allclose(after.landmarks, before.landmarks, atol=1e-3)
        assert float(after.embedding @ before.embedding) > 0.999
        assert after.detector == "segs:face"


def test_faces_from_another_detectors_boxes(photo):
    """SEGS whose boxes came from a detector that is not ours (OpenCV's Haar cascade), masks
    drawn as Impact's bbox detectors draw them (the box): each gets a mesh, keypoints and an
    embedding; with keep_masks off, our exclusive face masks instead."""
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    assert len(found) >= 3
    height, width = photo.shape[:2]
    segs = []
    for x, y, w, h in found:
        bbox = np.array([x, y, x + w, y + h], np.float32)
        region = impact_crop_region(bbox, width, height, 3.0)
        cropped = np.zeros((region[3] - region[1], region[2] - region[0]), np.float32)
        cropped[y - region[1]:y + h - region[1], x - region[0]:x + w - region[0]] = 1.0
        segs.append(SEG(None, cropped, np.float32(0.9), region, bbox, "face", None))
    kept = segs_to_faces(photo, ((height, width), segs), SETTINGS)
    ours = segs_to_faces(photo, ((height, width), segs), SETTINGS, keep_masks=False)
    for face, seg in zip(kept.faces, segs):
        x1, y1, x2, y2 = seg.bbox
        assert face.landmarks is not None and face.embedding is not None
        inside = (face.landmarks[:, 0] >= x1 - 0.2 * (x2 - x1)) & (face.landmarks[:, 0] <= x2 + 0.2 * (x2 - x1))
        assert inside.mean() > 0.95
        assert face.mask.sum() == (x2 - x1) * (y2 - y1)  # the SEG's box mask, kept
    overlap = (ours.masks() > 0).sum(axis=0)   # the faces' masks on whole canvases
    assert overlap.max() == 1 and all(f.mask.sum() > 0 for f in ours.faces)


@pytest.mark.parametrize("bad, message", [
    ("not segs", "SEGS must be"),
    (((10, 10), [("a", "b")]), "not an Impact Pack SEG"),
])
def test_bad_segs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        read_segs(bad)


def test_wrong_image_size_is_named(faces, photo):
    segs = faces_to_segs(faces)
    with pytest.raises(ValueError, match="give the image the detector saw"):
        segs_to_faces(photo[:100], segs, SETTINGS)


def _one_changed(segs, index=0, **fields):
    (height, width), items = segs
    items = list(items)
    items[index] = items[index]._replace(**fields)
    return (height, width), items


@pytest.mark.parametrize("bad, message", [
    ((("tall", 600), []), r"^segs: the image height is 'tall', not a number"),
    (((float("nan"), 600), []), r"^segs: the image height is nan: give a finite number"),   # not "not a tuple"
    (((300, 0), []), r"^segs: the image width is 0, outside its range"),
    (((300, 600), 3), r"^segs: the SEG list is a int"),
])
def test_a_damaged_segs_size_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        read_segs(bad)


@pytest.mark.parametrize("fields, message", [
    ({"bbox": [1, 2, 3]}, r"^segs: SEG 1's bbox has 3 numbers"),
    ({"bbox": [10, np.nan, 50, 60]}, r"^segs: SEG 1's bbox holds NaN or infinite values"),
    ({"bbox": [80, 40, 40, 90]}, r"^segs: SEG 1's bbox \[80.0, 40.0, 40.0, 90.0\] is inverted"),
    ({"confidence": np.zeros(0, np.float32)}, r"^segs: SEG 1's confidence is empty"),
    ({"confidence": np.array([np.nan])}, r"^segs: SEG 1's confidence holds NaN"),
    ({"crop_region": [0, 0, np.nan, 10]}, r"^segs: SEG 1's crop_region holds NaN"),
    ({"crop_region": [0, 0, 5, 5]}, r"^segs: SEG 1's cropped_mask is \(\d+, \d+\) but its crop region is 5x5"),
    ({"cropped_mask": None}, r"^segs: SEG 1's cropped_mask is missing"),
    ({"cropped_mask": "mask"}, r"^segs: SEG 1's cropped_mask is 'mask', not a mask"),
])
def test_a_damaged_seg_is_named_by_its_place_and_field(faces, photo, fields, message):
    with pytest.raises(ValueError, match=message):
        segs_to_faces(photo, _one_changed(faces_to_segs(faces), 1, **fields), SETTINGS)


def test_a_nan_or_0_to_255_mask_is_refused(faces, photo):
    segs = faces_to_segs(faces)
    mask = segs[1][0].cropped_mask.copy()
    for damaged, message in [(np.where(mask > 0, np.nan, mask), "NaN"), (mask * 255, "divide it by 255")]:
        with pytest.raises(ValueError, match=r"^segs: SEG 0's cropped_mask.*" + message):
            segs_to_faces(photo, _one_changed(segs, 0, cropped_mask=damaged), SETTINGS)


def test_boxes_outside_the_image_are_cut_or_left_out_with_a_note(faces, photo):
    segs = faces_to_segs(faces)
    height, width = segs[0]
    x1, y1, x2, y2 = (float(v) for v in segs[1][0].bbox)
    outside = _one_changed(segs, 1, bbox=[width + 10, 5, width + 50, 40])
    reaching = _one_changed(segs, 0, bbox=[-20, y1, x2, y2])
    left_out = segs_to_faces(photo, outside, SETTINGS)
    assert len(left_out.faces) == len(faces.faces) - 1
    assert any("SEG 1's box" in n and "lies outside" in n and "numbered one lower" in n for n in left_out.notes)
    cut = segs_to_faces(photo, reaching, SETTINGS)
    assert len(cut.faces) == len(faces.faces) and cut.faces[0].box[0] == 0
    assert any("SEG 0's box" in n and "cut to it" in n for n in cut.notes)
    whole = segs_to_faces(photo, segs, SETTINGS)
    assert not any("SEG" in n for n in whole.notes)
