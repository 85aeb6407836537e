"""Face detection on real pictures with known faces: recall at 24..128 px, the six-person
sample at three sizes, keypoint order, the dlib backend and the backend registry."""

import numpy as np
import pytest

from tests.support.face_scenes import group6, match, sizes_scene
from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.detection import DETECTORS, TiledMediapipeDetector, make_detector, tile_plan
from magicid_core.faces.geometry import five_keypoints
from tests.support.no_mediapipe import needs_mediapipe


@pytest.fixture(scope="module")
def sizes():
    return sizes_scene()


@needs_mediapipe
def test_tiled_mediapipe_finds_every_face_from_24_to_128_px(sizes):
    image, ovals = sizes
    dets = TiledMediapipeDetector(min_face=20).detect(image)
    found = match([_as_face(d, i) for i, d in enumerate(dets)], ovals)
    assert None not in found, f"missed faces of height {[round(o[3]) for o, f in zip(ovals, found) if f is None]}"
    assert len(dets) == len(ovals), "a detection that is no face"


@needs_mediapipe
def test_whole_frame_mediapipe_misses_small_faces_that_tiles_find(sizes):
    image, ovals = sizes
    whole = TiledMediapipeDetector(min_face=20, tiled=False).detect(image)
    found = match([_as_face(d, i) for i, d in enumerate(whole)], ovals)
    assert found[0] is None and found[1] is None  # the 24 and 32 px faces: the reason for tiling


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_six_person_sample_found_fully_at_full_half_and_third_size(factor):
    image, ovals = group6(factor)
    faces = analyze_image(image, AnalysisSettings(mesh=False)).faces
    assert len(faces) == 6
    rank_by_x = np.argsort(np.argsort([o[0] for o in ovals])).tolist()
    assert match(faces, ovals) == rank_by_x  # every person found once, numbered left to right


def test_keypoints_are_in_instantid_order():
    image, _ = group6(1)
    for face in analyze_image(image).faces:  # mirrored and unmirrored people
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.keypoints
        assert lx < nx < rx and mlx < mrx, "eyes and mouth corners: image-left one first"
        assert max(ly, ry) < ny < min(mly, mry), "eyes above the nose above the mouth"
        assert np.all((face.keypoints >= face.box[:2]) & (face.keypoints <= face.box[2:]))


def test_mouth_corners_from_mouth_centre_follow_eye_geometry():
    # A tilted face: eyes 40 px apart along a 30 degree line; corners straddle the mouth centre.
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    eye_l, eye_r = np.array([100.0, 100.0]), np.array([100 + 40 * c, 100 + 40 * s])
    kps = five_keypoints(eye_r, eye_l, (120, 130), mouth_center=(110, 150))
    assert np.allclose(kps[0], eye_l) and np.allclose(kps[1], eye_r)
    assert np.allclose((kps[3] + kps[4]) / 2, (110, 150), atol=1e-4)
    half = (kps[4] - kps[3]) / 2
    assert np.isclose(np.hypot(*half) * 2 / 40, 0.828, atol=0.01)      # template mouth width / eye distance
    assert np.isclose(np.arctan2(half[1], half[0]), np.pi / 6, atol=0.01)  # parallel to the eyes


def test_dlib_hog_finds_the_six_at_half_size():
    image, ovals = group6(2)
    faces = analyze_image(image, AnalysisSettings(backend="dlib_hog", min_face=40, mesh=False)).faces
    assert all(i is not None for i in match(faces, ovals))
    assert {f.detector for f in faces} == {"dlib_hog"}


def test_tile_plan_covers_the_image_and_ends_with_the_whole_frame():
    tiles = tile_plan(600, 1200, 32)
    assert tiles[-1].side == 1200 and not tiles[-1].interior
    finest = [t for t in tiles if t.side == tiles[0].side]
    covered = np.zeros((600, 1200), bool)
    for t in finest:
        covered[t.y0:t.y0 + t.side, t.x0:t.x0 + t.side] = True
    assert covered.all()


def test_backend_registry_errors_are_clear():
    with pytest.raises(ValueError, match="unknown face detector backend"):
        make_detector("yolo")
    if "insightface" not in DETECTORS:
        with pytest.raises(ValueError, match="insightface"):
            make_detector("insightface")
    assert make_detector("auto").name in DETECTORS


def _as_face(det, index):
    from magicid_core.faces.records import Face

    return Face(index=index, box=det.box, score=det.score, keypoints=det.keypoints, head_box=det.box)


@needs_mediapipe
def test_tiled_detection_reports_each_tile_and_stops_when_progress_raises():
    image, _ = sizes_scene()
    detector = TiledMediapipeDetector(min_face=24)
    seen = []
    detector.detect(image, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == detector.calls > 4 and seen[-1] == (detector.calls, detector.calls)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        detector.detect(image, progress=cancel)
    assert detector.calls < len(seen), "the tiles after a cancel are not run"


@needs_mediapipe
def test_tiles_run_two_at_a_time_find_what_one_at_a_time_finds():
    """On 2+ cores the tiles run on two mediapipe graphs at once (detection.TILE_THREADS): each tile is
    the same computation, so the faces are the same to the bit."""
    image, ovals = sizes_scene()
    found = {}
    for threads in (1, 2):
        found[threads] = TiledMediapipeDetector(min_face=20, tile_threads=threads).detect(image)
    assert len(found[2]) == len(ovals)
    assert [(d.box.tolist(), d.score, d.keypoints.tolist()) for d in found[1]] == \
        [(d.box.tolist(), d.score, d.keypoints.tolist()) for d in found[2]]
