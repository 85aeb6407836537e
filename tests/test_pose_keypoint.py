"""controlnet_aux's POSE_KEYPOINT as the body skeletons of FACES: matched to the faces of a real photo
by position, at another canvas size, normalised or in pixels, and every odd case documented:
no people, more or fewer people than faces, another aspect ratio, a missing frame, bad entries.

The people are written where the sample's six persons really are (assets/make_group.py places
them), as DWPose would report them: head at the face, shoulders and hips below.
"""

import numpy as np
import pytest

from assets.make_group import FACE_HEIGHT, PEOPLE
from tests.support.face_scenes import group6
from magicid_core.analyze import AnalysisSettings, analyze_batch, analyze_image
from magicid_core.faces.pose_keypoint import apply_pose_keypoint, batch_notes, frame_skeletons, frames_for_batch

SETTINGS = AnalysisSettings(backend="dlib_hog", landmark_backend="dlib_68", embeddings=False)


def person(cx, cy, face_h, sx=1.0, sy=1.0):
    """A flat OpenPose body (18 x [x, y, c]) of a person whose face is centred at (cx, cy), scaled by (sx, sy)."""
    d = face_h
    points = {0: (cx, cy + 0.05 * d), 14: (cx - 0.2 * d, cy - 0.1 * d), 15: (cx + 0.2 * d, cy - 0.1 * d),
              16: (cx - 0.45 * d, cy), 17: (cx + 0.45 * d, cy), 1: (cx, cy + 0.9 * d),
              2: (cx - 0.8 * d, cy + 0.95 * d), 5: (cx + 0.8 * d, cy + 0.95 * d),
              8: (cx - 0.4 * d, cy + 2.6 * d), 11: (cx + 0.4 * d, cy + 2.6 * d)}
    flat = []
    for k in range(18):
        x, y = points.get(k, (0.0, 0.0))
        flat += [x * sx, y * sy, 1.0 if k in points else 0.0]
    return {"pose_keypoints_2d": flat, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None}


def sample_people(sx=1.0, sy=1.0, normalise=False, width=1200, height=600):
    """The six persons of the sample, right to left (DWPose's order is its own, not ours)."""
    out = []
    for _, _, scale, _, _, x, y in sorted(PEOPLE, key=lambda p: -p[5]):
        p = person(x, y, FACE_HEIGHT * scale, sx, sy)
        if normalise:
            p["pose_keypoints_2d"] = [v / (width * sx) if i % 3 == 0 else v / (height * sy) if i % 3 == 1 else v
                                      for i, v in enumerate(p["pose_keypoints_2d"])]
        out.append(p)
    return out


@pytest.fixture(scope="module")
def sample():
    image, _ = group6(1)
    return image, analyze_image(image, AnalysisSettings(**{**SETTINGS.__dict__, "skeletons": False}))


def _assert_matched(faces, expected_count):
    matched = [f for f in faces if f.sources.get("skeleton") == "pose_keypoint"]
    assert len(matched) == expected_count
    for f in matched:   # each face got its own person: the nose inside its box, the hips below it
        nose, hips = f.skeleton[0], f.skeleton[8]
        assert f.box[0] <= nose[0] <= f.box[2] and f.box[1] <= nose[1] <= f.box[3] + 0.2 * f.height
        assert hips[1] > f.box[3] and abs(hips[0] - f.center[0]) < f.width
    for f in faces:
        if f.sources.get("skeleton") != "pose_keypoint":
            assert f.sources["skeleton"] == "head_only" and not f.skeleton[1:14, 2].any()


@pytest.mark.parametrize("canvas", [(1200, 600, False), (512, 256, False), (768, 384, True)],
                         ids=["same size", "smaller canvas, pixels", "normalised"])
def test_each_face_gets_the_person_at_its_place(canvas):
    width, height, normalise = canvas
    image, _ = group6(1)
    frame = {"people": sample_people(width / 1200, height / 600, normalise, 1200, 600),
             "canvas_width": width, "canvas_height": height}
    faces = analyze_batch([image], SETTINGS, pose_keypoint=[frame])
    _assert_matched(faces[0].faces, 6)
    assert not faces.notes


def test_no_people_fewer_and_more_people_than_faces(sample):
    image, analysed = sample
    faces = analysed.faces
    some = sample_people()[:2]
    crowd = sample_people() + [person(600, 560, 100), person(40, 40, 60)]   # two strangers far from every face
    for people, matched in (([], 0), (some, 2), (crowd, 6)):
        for f in faces:
            f.skeleton, f.sources["skeleton"] = np.zeros((18, 3), np.float32), "head_only"
        notes = apply_pose_keypoint(faces, {"people": people, "canvas_width": 1200, "canvas_height": 600}, 600, 1200)
        _assert_matched(faces, matched)
        assert bool(notes) == (matched < 6), notes
        if matched < 6:
            assert f"{len(people)} people for 6 faces, {matched} matched" in notes[0]


def test_another_aspect_ratio_is_stretched_and_said(sample):
    image, _ = sample
    frame = {"people": sample_people(512 / 1200, 512 / 600), "canvas_width": 512, "canvas_height": 512}
    faces = analyze_batch([image], SETTINGS, pose_keypoint=[frame])
    _assert_matched(faces[0].faces, 6)
    assert any("another aspect ratio" in n for n in faces.notes)


def test_frames_follow_the_batch():
    one, two = {"people": []}, {"people": [person(10, 10, 5)]}
    assert frames_for_batch(None, 2) == [None, None]
    assert frames_for_batch([one], 3) == [one, one, one]          # one pose for every image
    assert frames_for_batch(one, 2) == [one, one]
    assert frames_for_batch([one, two], 3) == [one, two, None]     # a missing frame: head-only, with a note


def test_a_missing_frame_keeps_head_only_skeletons_with_a_note(sample):
    image, _ = sample
    faces = analyze_batch([image, image[:, ::-1]], SETTINGS, pose_keypoint=[
        {"people": sample_people(), "canvas_width": 1200, "canvas_height": 600}, None])
    _assert_matched(faces[0].faces, 6)
    _assert_matched(faces[1].faces, 0)
    assert any("no frame for image 1" in n for n in faces.notes)


@pytest.mark.parametrize("frame, message", [
    ("not a dict", "frame 0 is a str"),
    ({"people": ["x"]}, "frame 0, person 0 is a str"),
    ({"people": [{"pose_keypoints_2d": [1.0, 2.0]}]}, "has 2 numbers .* give 54"),
])
def test_malformed_entries_are_errors_naming_frame_and_person(frame, message):
    with pytest.raises(ValueError, match=message):
        frame_skeletons(frame, 600, 1200)


def test_a_person_without_a_head_matches_no_face(sample):
    _, analysed = sample
    headless = person(300, 200, 114)
    for k in (0, 14, 15, 16, 17):
        headless["pose_keypoints_2d"][3 * k + 2] = 0.0
    faces = analysed.faces
    for f in faces:
        f.sources["skeleton"] = "head_only"
        f.skeleton = np.zeros((18, 3), np.float32)
    apply_pose_keypoint(faces, {"people": [headless], "canvas_width": 1200, "canvas_height": 600}, 600, 1200)
    _assert_matched(faces, 0)


GOOD = {"people": [person(300, 200, 100)], "canvas_width": 1200, "canvas_height": 600}


def _with_point(index, value):
    people = [person(300, 200, 100)]
    people[0]["pose_keypoints_2d"][index] = value
    return {**GOOD, "people": people}


@pytest.mark.parametrize("frame, message", [
    ({**GOOD, "people": 3}, r"frame 0: people is a int, expected a list"),
    ({**GOOD, "canvas_width": "wide"}, r"frame 0: canvas_width is 'wide', not a number"),
    ({**GOOD, "canvas_height": float("nan")}, r"frame 0: canvas_height is nan: give a finite number"),
    ({**GOOD, "canvas_width": -5}, r"frame 0: canvas_width is -5, outside its range"),
    (_with_point(0, float("nan")), r"person 0: pose_keypoints_2d holds NaN or infinite values"),
    (_with_point(2, float("inf")), r"person 0: pose_keypoints_2d holds NaN or infinite values"),
    (_with_point(0, 1e30), r"person 0: point 0 \(nose\) is at \(1e\+30, 205\), far outside the 1200x600 canvas"),
    (_with_point(4, -5000), r"point 1 \(neck\) is at \(300, -5000\), far outside"),
    ({"people": [{"pose_keypoints_2d": "points"}]}, r"pose_keypoints_2d is 'points', not 18 OpenPose body points"),
])
def test_damaged_numbers_are_named_by_frame_person_and_point(frame, message):
    with pytest.raises(ValueError, match=message):
        frame_skeletons(frame, 600, 1200)


def test_points_a_little_outside_the_canvas_and_string_sizes_are_fine():
    skeletons, _ = frame_skeletons({**_with_point(0, -100.0), "canvas_width": "1200"}, 600, 1200)
    assert skeletons[0][0, 0] == -100.0


def test_a_pose_keypoint_that_is_no_list_is_named():
    with pytest.raises(ValueError, match=r"^pose_keypoint is a int, not a POSE_KEYPOINT"):
        frames_for_batch(5, 1)


def test_what_goes_unused_is_said():
    assert batch_notes(None, 2, True) == []
    assert batch_notes([GOOD], 1, False) == ["pose_keypoint is connected but skeletons is off: its poses were not "
                                             "used (turn skeletons on)"]
    assert batch_notes([GOOD] * 3, 1, True) == ["pose_keypoint has 3 frames for 1 image(s): frames 1..2 were not used"]
    assert batch_notes([GOOD] * 2, 2, True) == [] and batch_notes([GOOD], 4, True) == []


def test_a_damaged_frame_stops_the_batch_before_detection(sample):
    image, _ = sample
    with pytest.raises(ValueError, match="far outside"):
        analyze_batch([image], SETTINGS, pose_keypoint=[_with_point(0, 1e30)])
    faces = analyze_batch([image], AnalysisSettings(**{**SETTINGS.__dict__, "skeletons": False}),
                          pose_keypoint=[_with_point(0, 1e30)])     # not used, so not checked: said instead
    assert any("skeletons is off" in n for n in faces.notes)
