"""The face stack without mediapipe: dlib-bin + face_recognition_models alone find every face from
32 px up on real photos, give 68 landmarks, 5 keypoints, masks and embeddings, say which backend made
each part, and a missing optional package is a clear message, never a raw ModuleNotFoundError.

"No mediapipe" is simulated for real: a subprocess whose import system refuses mediapipe
(tests/support/no_mediapipe.py), exactly as on Python 3.13 or with numpy 2.
"""

import json

import numpy as np
import pytest

from tests.support.face_scenes import group6, match, scene, sizes_scene
from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.detection import make_detector, tile_plan
from magicid_core.faces.records import Face
from tests.support.no_mediapipe import needs_mediapipe, run_without_mediapipe

DLIB_ONLY = AnalysisSettings(backend="dlib_hog", landmark_backend="dlib_68", identity_backend="dlib",
                             skeletons=False, embeddings=False)
PARTS = {"detection", "landmarks", "keypoints", "skeleton", "embedding"}


def small_group() -> tuple[np.ndarray, list[tuple]]:
    """Six people with 30..40 px faces on a 427x295 picture: insightface's t1.jpg shrunk to a third."""
    people = [("hopper", 34, 60, 110, False), ("astronaut", 31, 135, 95, True), ("hopper", 38, 215, 115, True),
              ("astronaut", 40, 290, 100, False), ("hopper", 30, 360, 120, False), ("astronaut", 36, 150, 215, False)]
    return scene(427, 295, people, seed=11)


def _found(faces, ovals, smallest=0.0):
    """(indices of true faces of at least `smallest` px that were missed, number of detections that are no face)."""
    hits = match(faces, ovals)
    missed = [round(o[3]) for o, h in zip(ovals, hits) if h is None and o[3] >= smallest]
    return missed, len(faces) - len({h for h in hits if h is not None})


def test_dlib_only_finds_every_face_from_32_px_on_a_group_scene():
    image, ovals = sizes_scene()   # faces of 24, 32, 48, 64, 96 and 128 px
    faces = analyze_image(image, DLIB_ONLY).faces
    missed, extra = _found(faces, ovals, smallest=32)
    assert not missed and not extra, f"missed faces of {missed} px, {extra} detections that are no face"


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_dlib_only_finds_the_sample_at_full_half_and_third_size(factor):
    image, ovals = group6(factor)   # faces ~120, ~60, ~40 px
    faces = analyze_image(image, DLIB_ONLY).faces
    assert len(faces) == 6, "one face per person, and nothing else (the astronaut's mission patch is no face)"
    rank_by_x = np.argsort(np.argsort([o[0] for o in ovals])).tolist()
    assert match(faces, ovals) == rank_by_x


@pytest.mark.parametrize("backend", ["dlib_hog", pytest.param("mediapipe", marks=needs_mediapipe)])
def test_min_face_is_kept_on_a_small_image(backend):
    # 427 px wide with 30..40 px faces: the image is smaller than the finest tile level (12 x 32 px),
    # which the tile planner used to drop, losing 2 of 6 faces.
    image, ovals = small_group()
    faces = analyze_image(image, AnalysisSettings(backend=backend, min_face=30, mesh=False, skeletons=False,
                                                  embeddings=False)).faces
    missed, extra = _found(faces, ovals)
    assert not missed and not extra, f"{backend}: missed faces of {missed} px, {extra} detections that are no face"


def test_tile_plan_keeps_a_finer_level_when_the_whole_frame_cannot_see_min_face():
    sides = sorted({t.side for t in tile_plan(295, 427, 32)})
    assert sides[0] <= 7 * 32 < 427, "a level whose tiles find 32 px faces"
    assert sorted({t.side for t in tile_plan(150, 220, 32)}) == [220], "the whole frame alone finds 32 px faces"


def test_every_face_says_which_backend_made_each_part():
    image, ovals = group6(2)
    settings = AnalysisSettings(backend="dlib_hog", landmark_backend="dlib_68", identity_backend="dlib")
    for face in analyze_image(image, settings).faces:
        assert set(face.sources) == PARTS
        assert face.sources["detection"] == "dlib_hog" and face.sources["landmarks"] == "dlib_68"
        assert face.sources["keypoints"] == "dlib_68" and face.sources["embedding"] == "dlib_resnet_v1"
        assert face.landmarks68.shape == (68, 2) and face.embedding.shape == (128,)
        assert face.to_dict()["sources"] == face.sources


def test_68_point_keypoints_are_in_instantid_order_and_inside_the_face():
    image, _ = group6(1)   # mirrored and unmirrored people
    for face in analyze_image(image, DLIB_ONLY).faces:
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.keypoints
        assert lx < nx < rx and mlx < mrx
        assert max(ly, ry) < ny < min(mly, mry)
        jaw = face.landmarks68[:17]
        assert jaw[0, 0] < lx and jaw[16, 0] > rx and jaw[8, 1] > max(mly, mry), "the jaw surrounds eyes and mouth"


def test_cnn_detector_finds_the_faces_hog_finds():
    image, ovals = group6(3)
    image, ovals = image[:, :200].copy(), [o for o in ovals if o[0] < 200]   # 3 people: the CNN is slow
    dets = make_detector("dlib_cnn", min_face=36).detect(image)
    faces = [Face(index=i, box=d.box, score=d.score, keypoints=d.keypoints, head_box=d.box) for i, d in enumerate(dets)]
    missed, extra = _found(faces, ovals)
    assert not missed and not extra


def test_without_mediapipe_nothing_raises_a_raw_import_error():
    result = run_without_mediapipe("""
        from magicid_core.optional import MissingPackageError, mediapipe_available
        from magicid_core.faces.detection import make_detector
        from magicid_core.faces.landmarks import make_landmarker
        from magicid_core.faces.pose import PoseEstimator
        from magicid_core.analyze import AnalysisSettings, analyze_image
        from tests.support.face_scenes import group6

        try:
            import mediapipe  # noqa: F401
            raise SystemExit("mediapipe was importable")
        except ModuleNotFoundError:
            pass
        assert not mediapipe_available()
        print("auto detector:", make_detector("auto").name)
        print("auto landmarks:", make_landmarker("auto").name)
        for what, call in [("detector", lambda: make_detector("mediapipe")), ("pose", PoseEstimator),
                           ("mesh", lambda: make_landmarker("mediapipe_mesh")),
                           ("analysis", lambda: analyze_image(group6(3)[0], AnalysisSettings(backend="mediapipe")))]:
            try:
                call()
                print(what, "did not fail")
            except MissingPackageError as e:
                print(what, "error:", e)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "auto detector: dlib_hog" in out and "auto landmarks: dlib_68" in out
    errors = [line for line in out.splitlines() if " error: " in line]
    assert len(errors) == 4, out
    for line in errors:   # the package, the Python it needs, the alternative
        assert "mediapipe==0.10.21" in line and "Python 3.9-3.12" in line and "dlib_hog" in line, line
    assert "ModuleNotFoundError" not in result.stderr


def test_readme_command_without_mediapipe_finds_every_face_of_the_sample(tmp_path):
    result = run_without_mediapipe(f"""
        import sys
        from magicid_core.__main__ import main
        sys.exit(main(["--out", {str(tmp_path)!r}]))
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "head-only skeletons" in result.stdout and "POSE_KEYPOINT" in result.stdout, "the skeleton note"
    record = json.loads((tmp_path / "faces.json").read_text())
    faces = record["faces"]
    _, ovals = group6(1)
    boxes = [Face(index=f["index"], box=np.array(f["box"]), score=f["score"], keypoints=np.zeros((5, 2)),
                  head_box=np.array(f["box"])) for f in faces]
    assert len(faces) == 6 and None not in match(boxes, ovals)
    for f in faces:
        assert f["sources"]["detection"] == "dlib_hog" and f["sources"]["skeleton"] == "head_only"
        assert len(f["landmarks68"]) == 68 and f["landmarks"] is None and len(f["embedding"]) == 128
        assert f["mask_area"] > 0.5 * (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1])
    assert len(list(tmp_path.glob("mask_*.png"))) == 6 and (tmp_path / "skeleton.png").is_file()
    assert record["notes"] and "mediapipe" in record["notes"][0]


def test_dlib_embeddings_in_one_batch_equal_one_by_one():
    from magicid_core.identity.embedders import DlibEmbedder

    image, _ = group6(2)
    embedder = DlibEmbedder()
    boxes = [d.box for d in embedder.find_faces(image)]
    assert len(boxes) == 6
    batch = embedder.embed_many(image, boxes)
    for box, vector in zip(boxes, batch):
        assert np.allclose(vector, embedder.embed(image, box, None), atol=1e-5)
    similarity = np.stack(batch) @ np.stack(batch).T
    assert np.all(similarity[~np.eye(6, dtype=bool)] < 0.9999), "six faces, six different vectors"


def test_hog_bands_find_every_face_across_the_seam_as_the_whole_scan_does(monkeypatch):
    """On two cores HOG scans two overlapping bands and a coarse whole image at once
    (dlib_stack.hog_bands). Faces placed on the seam, in the overlap and across both bands must all
    be found, as by the single whole-image scan, and boxed as it boxes them to 15 % of their size
    (the scans' pyramids sample a face on other grids: dlib's own boxes of a face vary as much
    between two sizes of one picture)."""
    import magicid_core.faces.dlib_stack as dlib_stack

    # 900 rows: the enlarged image (x2.5) splits at row ~1125 of 2250, i.e. ~450 of the picture
    people = [("hopper", 34, 150, 450, False), ("astronaut", 40, 300, 420, True), ("hopper", 60, 470, 470, True),
              ("astronaut", 300, 800, 450, False), ("hopper", 110, 1150, 330, False), ("astronaut", 48, 1150, 760, True)]
    image, ovals = scene(1300, 900, people, seed=4)
    detector = make_detector("dlib_hog")
    monkeypatch.setattr(dlib_stack, "HOG_THREADS", 2)
    assert len(dlib_stack.hog_bands(round(900 * detector.scale))) == 2
    banded = detector.detect(image)
    monkeypatch.setattr(dlib_stack, "HOG_THREADS", 1)
    whole = detector.detect(image)
    for found in (banded, whole):
        faces = [Face(index=i, box=d.box, score=d.score, keypoints=d.keypoints, head_box=d.box) for i, d in enumerate(found)]
        assert _found(faces, ovals) == ([], 0)
    pairs = [(b, w) for b in banded for w in whole
             if np.abs(b.box - w.box).max() <= 0.15 * (w.box[3] - w.box[1])]
    assert len(pairs) == len(ovals), f"banded {[d.box for d in banded]}, whole {[d.box for d in whole]}"
