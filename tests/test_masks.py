"""Per-face masks: IoU against the known face region, modes, dilation and feather in pixels,
and no two faces' masks ever overlapping."""

import numpy as np
import pytest

from tests.support.face_scenes import match, oval_mask, scene, sizes_scene
from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.records import Face
from magicid_core.faces.masks import face_masks, head_box


@pytest.fixture(scope="module")
def sizes_analysis():
    image, ovals = sizes_scene()
    return analyze_image(image, AnalysisSettings(min_face=20, dilation=0, feather=0)), ovals


def test_face_masks_match_the_known_face_region(sizes_analysis):
    faces, ovals = sizes_analysis
    for oval, i in zip(ovals, match(faces.faces, ovals)):
        truth = oval_mask(oval, faces.height, faces.width)
        mask = faces.faces[i].mask > 0.5
        iou = (truth & mask).sum() / (truth | mask).sum()
        assert iou > (0.75 if oval[3] < 48 else 0.8), f"face {oval[3]:.0f} px high: IoU {iou:.2f}"


def test_ellipse_without_mesh_still_covers_the_face():
    image, ovals = sizes_scene()
    faces = analyze_image(image, AnalysisSettings(min_face=20, dilation=0, feather=0, mesh=False))
    for oval, i in zip(ovals, match(faces.faces, ovals)):
        truth = oval_mask(oval, faces.height, faces.width)
        mask = faces.faces[i].mask > 0.5
        assert (truth & mask).sum() / (truth | mask).sum() > 0.6


def test_masks_never_overlap_when_faces_crowd_together():
    # Four people shoulder to shoulder; big dilation and feather make their head masks collide.
    people = [("astronaut", 90, 160, 200, False), ("hopper", 80, 255, 230, True),
              ("astronaut", 100, 350, 210, True), ("hopper", 90, 450, 200, False)]
    image, ovals = scene(620, 420, people, seed=3)
    settings = AnalysisSettings(mask_mode="head", dilation=20, feather=24)
    faces = analyze_image(image, settings)
    assert len(faces.faces) == 4
    masks = faces.masks()
    assert ((masks > 0).sum(axis=0) <= 1).all(), "a pixel belongs to two faces"
    raw = face_masks(faces.faces, faces.height, faces.width, "head", 20, 24)
    assert np.allclose(np.stack(raw), masks)
    # Each face still owns its own centre, and the crowding really happened: without the rule
    # the grown head shapes would overlap.
    for f in faces.faces:
        assert f.mask[int(f.center[1]), int(f.center[0])] == 1.0
    alone = [face_masks([f], faces.height, faces.width, "head", 20, 24)[0] for f in faces.faces]
    assert ((np.stack(alone) > 0).sum(axis=0) > 1).any()


def _square_face(x0, y0, side):
    box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
    kps = np.array([[x0 + 0.3 * side, y0 + 0.4 * side], [x0 + 0.7 * side, y0 + 0.4 * side],
                    [x0 + 0.5 * side, y0 + 0.6 * side], [x0 + 0.35 * side, y0 + 0.8 * side],
                    [x0 + 0.65 * side, y0 + 0.8 * side]], np.float32)
    return Face(index=0, box=box, score=1.0, keypoints=kps, head_box=head_box(box, 200, 300))


def test_box_mode_dilation_and_feather_are_in_pixels():
    face = _square_face(100, 60, 40)
    hard = face_masks([face], 200, 300, "box")[0]
    assert hard.sum() == 40 * 40 and hard[60:100, 100:140].all()
    grown = face_masks([face], 200, 300, "box", dilation=5)[0]
    assert grown[80, 95] == 1 and grown[80, 94] == 0           # 5 px left of the box: in; 6 px: out
    soft = face_masks([face], 200, 300, "box", dilation=0, feather=10)[0]
    row = soft[80, 85:101]                                     # from 15 px outside to the box edge
    assert row[-1] == 1 and row[0] == 0 and np.all(np.diff(row) >= 0)
    assert 0.3 < soft[80, 95] < 0.7                            # halfway through the 10 px ramp
    shrunk = face_masks([face], 200, 300, "box", dilation=-5)[0]
    assert shrunk[80, 104] == 0 and shrunk[80, 106] == 1


def test_head_mode_reaches_above_the_face_and_bad_mode_is_refused():
    face = _square_face(100, 80, 40)
    head = face_masks([face], 200, 300, "head")[0]
    face_only = face_masks([face], 200, 300, "face")[0]
    assert head.sum() > 1.5 * face_only.sum()
    assert head[68, 120] == 1 and face_only[68, 120] == 0     # hair, 12 px above the box
    with pytest.raises(ValueError, match="mask mode"):
        face_masks([face], 200, 300, "hair")
