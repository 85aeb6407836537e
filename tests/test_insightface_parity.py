"""Differential tests: insightface (PyPI, >= 2.1) and magicid_core.insightface on the same files.

The same ONNX file (the real models' interface, seeded random weights: insightface_onnx_models),
the same image and the same settings go through insightface's ``SCRFD`` / ``ArcFaceONNX`` /
``face_align.norm_crop`` and through ours; the outputs are compared number for number, and every
failure prints the largest differences. insightface takes BGR images, ours RGB: each call below
hands insightface the same pixels with the channels swapped.

insightface is a test-only reference and is not in requirements-test.txt (its wheel requires
opencv-python, which would overwrite the opencv-contrib-python that mediapipe brings); install it
with ``pip install --no-deps "insightface>=2.1" && pip install tqdm requests``. Without it these tests skip.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

REFERENCE_INSTALL = "pip install --no-deps 'insightface>=2.1' && pip install tqdm requests"
try:
    import insightface
except ImportError as e:   # the message says which module is missing: insightface or one of its imports
    pytest.skip(f"the reference, insightface >= 2.1, is not importable ({e}): {REFERENCE_INSTALL}",
                allow_module_level=True)
if tuple(int(p) for p in insightface.__version__.split(".")[:2]) < (2, 1):
    pytest.skip(f"insightface {insightface.__version__} is older than the reference 2.1: {REFERENCE_INSTALL}",
                allow_module_level=True)
from insightface.app.common import Face  # noqa: E402
from insightface.model_zoo.arcface_onnx import ArcFaceONNX  # noqa: E402
from insightface.model_zoo.scrfd import SCRFD  # noqa: E402
from insightface.utils import face_align  # noqa: E402

from insightface_onnx_models import LAYOUTS, build_arcface, build_scrfd  # noqa: E402
from magicid_core.identity import ArcFaceEmbedder, build_identity  # noqa: E402
from magicid_core.insightface import ArcFaceRecognizer, InsightFaceDetector, InsightFacePack, align_face  # noqa: E402
from magicid_core.insightface.scrfd import INSIGHTFACE_SETTINGS, input_side, letterbox  # noqa: E402
from face_scenes import group6  # noqa: E402
from people import astronaut, grace_hopper  # noqa: E402

BOX_TOLERANCE = 0.5      # px, boxes and keypoints
SCORE_TOLERANCE = 1e-4
CROP_TOLERANCE = 2       # grey levels
MIN_COSINE = 0.9999


def group_photo() -> np.ndarray:
    return group6()[0]   # the shipped sample's six faces, 1200x600 (cached: do not modify)


def _images() -> dict[str, np.ndarray]:
    return {
        "astronaut 512x512": astronaut(),
        "hopper 512x600": grace_hopper(),
        "group 1200x600": group_photo(),
        "no face 451x300": np.full((300, 451, 3), 20, np.uint8),
    }


def _pack(detector=None, recognizer=None) -> InsightFacePack:
    return InsightFacePack("buffalo_l", (detector or recognizer).parent, detector, recognizer)


def _ours(path, **settings) -> InsightFaceDetector:
    return InsightFaceDetector(_pack(detector=path), need_keypoints=False, **{**INSIGHTFACE_SETTINGS, **settings})


def _reference(path, det_size=640) -> SCRFD:
    ref = SCRFD(str(path))
    ref.prepare(-1, input_size=(det_size, det_size))   # what FaceAnalysis.prepare(det_size=...) does
    return ref


def _reference_detect(ref: SCRFD, image: np.ndarray, max_num: int = 0):
    det, kps = ref.detect(np.ascontiguousarray(image[..., ::-1]), max_num=max_num)
    return det[:, :4], det[:, 4], kps


def _differences(ours, boxes, scores, kps) -> dict[str, float]:
    def worst(a, b):
        return float(np.abs(np.asarray(a, np.float64) - b).max()) if len(scores) else 0.0
    found = {"box": worst(ours.boxes, boxes), "score": worst(ours.scores, scores)}
    if kps is not None:
        found["keypoints"] = worst(ours.keypoints, kps)
    return found


def _assert_same(ours, reference, label: str) -> dict[str, float]:
    boxes, scores, kps = reference
    assert len(ours.scores) == len(scores), f"{label}: {len(ours.scores)} faces, insightface {len(scores)}"
    assert (ours.keypoints is None) == (kps is None), f"{label}: keypoints present in one result only"
    diffs = _differences(ours, boxes, scores, kps)
    assert diffs["box"] <= BOX_TOLERANCE and diffs.get("keypoints", 0) <= BOX_TOLERANCE \
        and diffs["score"] <= SCORE_TOLERANCE, f"{label}: max differences {diffs}"
    return diffs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insightface_models")
    return folder


def _level_maxima(path, image, det_size=640) -> list[float]:
    """Each pyramid level's best score on this image, straight from the model."""
    ours = _ours(path, det_size=det_size)
    canvas, _ = letterbox(image, (det_size, det_size))
    return [float(o.max()) for o in ours._run(canvas)[:len(ours.strides)]]


@pytest.mark.parametrize("batch_axis", [False, True], ids=["flat", "batch-axis"])
@pytest.mark.parametrize("outputs", sorted(LAYOUTS))
def test_every_layout_detects_what_insightface_detects(models, outputs, batch_axis):
    strides = LAYOUTS[outputs][0]
    silent = (strides[1],)          # one level that never fires: all faces in other size bands
    for variant, silent_levels in (("all levels", ()), (f"stride {silent[0]} silent", silent)):
        path = build_scrfd(models / f"scrfd_{outputs}_{batch_axis}_{len(silent_levels)}.onnx", outputs=outputs,
                           batch_axis=batch_axis, silent_levels=silent_levels, seed=outputs)
        ours, ref = _ours(path), _reference(path)
        found_any = False
        for name, image in _images().items():
            label = f"{outputs} outputs, {variant}, {name}"
            reference = _reference_detect(ref, image)
            _assert_same(ours.detect_arrays(image), reference, label)
            found_any |= len(reference[1]) > 0
            if name.startswith("no face"):
                assert len(reference[1]) == 0, "the dark image must give no face"
            if silent_levels:
                maxima = _level_maxima(path, image)
                assert maxima[strides.index(silent[0])] < 0.5, f"{label}: the silent level fired"
        assert found_any, f"{outputs} outputs, {variant}: the model found nothing at all; the test means nothing"


@pytest.mark.parametrize("batch_axis", [False, True], ids=["flat", "batch-axis"])
def test_detect_records_equal_insightface_with_a_level_empty(models, batch_axis):
    """The bug this file was written for: one level with no score above 0.5 raised
    "does not produce SCRFD outputs"; insightface returns the other levels' faces."""
    path = build_scrfd(models / f"det_10g_like_{batch_axis}.onnx", outputs=9, batch_axis=batch_axis,
                       silent_levels=(32,), seed=3)
    detector = InsightFaceDetector(_pack(detector=path), **INSIGHTFACE_SETTINGS)
    ref = _reference(path)
    for name, image in _images().items():
        faces = detector.detect(image)
        boxes, scores, kps = _reference_detect(ref, image)
        assert len(faces) == len(scores), f"{name}: {len(faces)} faces, insightface {len(scores)}"
        if faces:
            diffs = {"box": float(np.abs(np.stack([f.box for f in faces]) - boxes).max()),
                     "keypoints": float(np.abs(np.stack([f.keypoints for f in faces]) - kps).max()),
                     "score": float(np.abs(np.array([f.score for f in faces]) - scores).max())}
            assert max(diffs["box"], diffs["keypoints"]) <= BOX_TOLERANCE and diffs["score"] <= SCORE_TOLERANCE, \
                f"{name}: max differences {diffs}"


def test_fixed_size_export_gets_its_own_size(models):
    path = build_scrfd(models / "scrfd_fixed_480x640.onnx", outputs=9, input_hw=(480, 640), seed=5)
    ours, ref = _ours(path), _reference(path)
    assert ours.input_hw(600, 512) == (480, 640) and ref.input_size == (640, 480)
    for name, image in _images().items():
        _assert_same(ours.detect_arrays(image), _reference_detect(ref, image), f"fixed 480x640 input, {name}")


class _Canvas(Exception):
    """Carries the letterboxed image insightface was about to hand its network."""


def _reference_canvas(ref: SCRFD, image: np.ndarray) -> np.ndarray:
    """insightface's letterboxed canvas for an RGB image, as RGB: its own resize code runs, and the
    run stops where the canvas reaches the network."""
    def capture(canvas, threshold):
        raise _Canvas(canvas.copy())
    ref.forward = capture
    try:
        ref.detect(np.ascontiguousarray(image[..., ::-1]))
    except _Canvas as stop:
        return stop.args[0][..., ::-1]
    finally:
        del ref.forward
    raise AssertionError("insightface never reached its network")


def _old_rule_size(h: int, w: int) -> tuple[int, int]:
    """The resized (height, width) the pack used before: scale min(640 / h, 640 / w), both sides truncated."""
    scale = min(640 / h, 640 / w)
    return int(h * scale), int(w * scale)


def test_letterbox_is_insightfaces_for_every_width(models):
    path = build_scrfd(models / "letterbox.onnx", outputs=9, seed=6)
    ours, ref = _ours(path), _reference(path)
    source = group_photo()
    sizes_differ = []
    for side in list(range(97, 1400, 13)) + [159, 318, 357, 581]:   # the last: sizes the old rule got wrong
        for h, w in ((480, side), (side, 480)):
            image = cv2.resize(source, (w, h))
            canvas, theirs = letterbox(image, (640, 640))[0], _reference_canvas(ref, image)
            assert np.array_equal(canvas, theirs), \
                f"{w}x{h}: canvas differs from insightface's by up to {np.abs(canvas.astype(int) - theirs).max()}"
            used = (int(np.flatnonzero(canvas.any(axis=(1, 2)))[-1]) + 1, int(np.flatnonzero(canvas.any(axis=(0, 2)))[-1]) + 1)
            if used != _old_rule_size(h, w):
                sizes_differ.append((h, w))
    assert sizes_differ, "no size here tells insightface's letterbox from the old rule"
    for h, w in sizes_differ[:4] + [(480, 1000), (1000, 480)]:   # and the scale back to the image
        image = cv2.resize(source, (w, h))
        _assert_same(ours.detect_arrays(image), _reference_detect(ref, image), f"{w}x{h}")


def test_max_faces_keeps_the_faces_insightface_keeps(models):
    path = build_scrfd(models / "ranking.onnx", outputs=9, seed=7)
    ref = _reference(path)
    image = group_photo()
    everything = _reference_detect(ref, image)
    assert len(everything[1]) > 6
    by_score_differs = False
    for max_faces in (1, 3, 6):
        kept = _reference_detect(ref, image, max_num=max_faces)
        _assert_same(_ours(path, max_faces=max_faces).detect_arrays(image), kept, f"max_faces={max_faces}")
        by_score_differs |= not np.array_equal(np.sort(kept[1]), np.sort(everything[1][:max_faces]))
    assert by_score_differs, "insightface's ranking (area, centre) picked the top scores every time: no evidence"


def _clipped(reference, height, width):
    boxes, scores, kps = reference
    return np.clip(boxes, 0, [width, height, width, height]), scores, kps


def test_each_pack_policy_explains_its_own_difference(models):
    """Each policy the pack keeps by default, alone, against insightface with that policy applied
    to its output; then all defaults at once."""
    path = build_scrfd(models / "policies.onnx", outputs=9, seed=7, score_bias=-1.5)
    image = group_photo()
    h, w = image.shape[:2]
    ref = _reference(path)
    plain = _reference_detect(ref, image)

    # clip_boxes: the same faces, boxes cut at the frame
    assert (plain[0] < 0).any() or (plain[0] > [w, h, w, h]).any(), "no box runs past the frame: no evidence"
    _assert_same(_ours(path, clip_boxes=True).detect_arrays(image), _clipped(plain, h, w), "clip_boxes")

    # min_face: the same faces minus those clearly smaller than min_face
    sides = np.minimum(plain[0][:, 2] - plain[0][:, 0], plain[0][:, 3] - plain[0][:, 1])
    min_face = float(np.median(sides))
    keep = sides >= 0.8 * min_face
    assert 0 < keep.sum() < len(keep)
    _assert_same(_ours(path, min_face=min_face).detect_arrays(image),
                 (plain[0][keep], plain[1][keep], plain[2][keep]), f"min_face={min_face:.1f}")

    # det_size None: insightface itself, run at the larger input the pack picks for small faces
    side = input_side(h, w, min_face=0)
    assert side > 640
    _assert_same(_ours(path, det_size=None).detect_arrays(image),
                 _reference_detect(_reference(path, side), image), f"det_size None -> {side}")

    # the pack's defaults together: insightface at the pack's input size, filtered, clipped
    detector = InsightFaceDetector(_pack(detector=path))
    at_side = _reference_detect(_reference(path, input_side(h, w, detector.min_face)), image)
    sides = np.minimum(at_side[0][:, 2] - at_side[0][:, 0], at_side[0][:, 3] - at_side[0][:, 1])
    keep = sides >= 0.8 * detector.min_face
    expected = _clipped((at_side[0][keep], at_side[1][keep], at_side[2][keep]), h, w)
    _assert_same(detector.detect_arrays(image), expected, "pack defaults")


# --------------------------------------------------------------------------- ArcFace

def _face_keypoints(models, image) -> list[np.ndarray]:
    """Keypoint sets to align: the detector's on this image, and the template mapped by known similarities."""
    path = build_scrfd(models / "kps_source.onnx", outputs=9, seed=9)
    found = _ours(path, max_faces=3).detect_arrays(image).keypoints
    template = face_align.arcface_dst.astype(np.float64)
    sets = list(found)
    for angle, scale, shift in ((0.0, 1.6, (150, 120)), (-30.0, 2.3, (260, 200)), (45.0, 0.8, (40, 60))):
        a = np.deg2rad(angle)
        rotation = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        sets.append((template @ rotation.T + shift).astype(np.float32))
    return sets


def test_alignment_crops_equal_norm_crop(models):
    worst = 0
    for image in (astronaut(), grace_hopper()):
        for kps in _face_keypoints(models, image):
            ours = align_face(image, kps).astype(int)
            theirs = face_align.norm_crop(np.ascontiguousarray(image[..., ::-1]), kps)[..., ::-1].astype(int)
            worst = max(worst, int(np.abs(ours - theirs).max()))
    assert worst <= CROP_TOLERANCE, f"alignment crops differ from norm_crop by up to {worst} grey levels"


@pytest.mark.parametrize("builtin", [False, True], ids=["pytorch-export", "builtin-normalisation"])
def test_embeddings_equal_arcface_onnx(models, builtin):
    path = build_arcface(models / f"w600k_like_{builtin}.onnx", seed=11, builtin_normalisation=builtin)
    ours, ref = ArcFaceRecognizer(_pack(recognizer=path)), ArcFaceONNX(str(path))
    assert (ref.input_mean, ref.input_std) == ((0.0, 1.0) if builtin else (127.5, 127.5))
    assert (ours.input_mean, ours.input_std) == (ref.input_mean, ref.input_std)
    worst_cos, worst_norm = 1.0, 0.0
    for image in (astronaut(), grace_hopper()):
        for kps in _face_keypoints(models, image):
            face = Face(kps=kps)
            ref.get(np.ascontiguousarray(image[..., ::-1]), face)
            raw = ours.raw_embedding(image, kps)
            cosine = float(raw @ face.embedding / (np.linalg.norm(raw) * face.embedding_norm))
            worst_cos = min(worst_cos, cosine)
            worst_norm = max(worst_norm, abs(np.linalg.norm(raw) / face.embedding_norm - 1))
            assert np.allclose(ours.embed(image, kps), face.normed_embedding, atol=1e-3)
    assert worst_cos >= MIN_COSINE and worst_norm < 1e-3, \
        f"min cosine {worst_cos:.6f}, max relative norm difference {worst_norm:.2e}"


def test_identity_keeps_the_raw_norm_beside_the_normalised_vector(models, tmp_path):
    folder = tmp_path / "buffalo_l"
    build_scrfd(folder / "det_10g.onnx", outputs=9, seed=12)
    build_arcface(folder / "w600k_r50.onnx", seed=13)
    embedder = ArcFaceEmbedder(tmp_path)
    identity = build_identity("Eileen", [astronaut()], embedder)
    # insightface's own pipeline on the face our detector picked
    face = max(embedder.find_faces(astronaut()), key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) * d.score)
    reference = Face(kps=face.keypoints)
    ArcFaceONNX(str(folder / "w600k_r50.onnx")).get(np.ascontiguousarray(astronaut()[..., ::-1]), reference)
    assert identity.embedding_norm == pytest.approx(reference.embedding_norm, rel=1e-4)
    assert float(identity.embedding @ reference.normed_embedding) >= MIN_COSINE
    assert abs(identity.embedding_norm - 1.0) > 0.1   # a raw norm, not the unit one
