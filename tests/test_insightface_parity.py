"""Differential tests: insightface (PyPI, >= 2.1) and magicid_core.insightface on the same files.

The same ONNX file (the real models' interface, seeded random weights: insightface_onnx_models),
the same image and the same settings go through insightface's ``SCRFD`` / ``ArcFaceONNX`` /
``face_align.norm_crop`` and through ours (insightface_reference holds the calls); the outputs are
compared number for number, and every failure prints the largest differences.
Without insightface installed these tests skip, naming the missing import and the install command.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.support.insightface_reference import reference_missing

if reference_missing():
    pytest.skip(reference_missing(), allow_module_level=True)

from insightface.model_zoo.arcface_onnx import ArcFaceONNX  # noqa: E402

from tests.support.insightface_onnx_models import LAYOUTS, build_arcface, build_scrfd  # noqa: E402
from tests.support.insightface_reference import (detection_differences, group_photo, keypoint_sets, our_detector,  # noqa: E402
                                   pack_of, parity_images, reference_canvas, reference_crop, reference_detect,
                                   reference_detector, reference_embedding)
from magicid_core.identity.embedders import ArcFaceEmbedder, build_identity, most_prominent  # noqa: E402
from magicid_core.insightface import ArcFaceRecognizer, InsightFaceDetector, align_face  # noqa: E402
from magicid_core.insightface.scrfd import INSIGHTFACE_SETTINGS, input_side, letterbox  # noqa: E402
from tests.support.people import astronaut, grace_hopper  # noqa: E402

BOX_TOLERANCE = 0.5      # px, boxes and keypoints
SCORE_TOLERANCE = 1e-4
CROP_TOLERANCE = 2       # grey levels
MIN_COSINE = 0.9999


def assert_same(ours, reference, label: str) -> None:
    diffs = detection_differences(ours, reference)
    assert diffs["faces"] == diffs["reference faces"], f"{label}: {diffs}"
    assert (ours.keypoints is None) == (reference[2] is None), f"{label}: keypoints in one result only"
    assert diffs.get("box", 0) <= BOX_TOLERANCE and diffs.get("keypoints", 0) <= BOX_TOLERANCE \
        and diffs.get("score", 0) <= SCORE_TOLERANCE, f"{label}: max differences {diffs}"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("insightface_models")


def level_maxima(path, image) -> list[float]:
    """Each pyramid level's best score on this image at 640, straight from the model."""
    ours = our_detector(path)
    return [float(o.max()) for o in ours.raw_outputs(letterbox(image, (640, 640))[0])[:len(ours.strides)]]


@pytest.mark.parametrize("batch_axis", [False, True], ids=["flat", "batch-axis"])
@pytest.mark.parametrize("outputs", sorted(LAYOUTS))
def test_every_layout_detects_what_insightface_detects(models, outputs, batch_axis):
    strides = LAYOUTS[outputs][0]
    silent = strides[1]          # one level that never fires: all faces in other size bands
    for variant, silent_levels in (("all levels", ()), (f"stride {silent} silent", (silent,))):
        path = build_scrfd(models / f"scrfd_{outputs}_{batch_axis}_{len(silent_levels)}.onnx", outputs=outputs,
                           batch_axis=batch_axis, silent_levels=silent_levels, seed=outputs)
        ours, ref = our_detector(path), reference_detector(path)
        found_any = False
        for name, image in parity_images().items():
            label = f"{outputs} outputs, {variant}, {name}"
            reference = reference_detect(ref, image)
            assert_same(ours.detect_arrays(image), reference, label)
            found_any |= len(reference[1]) > 0
            if name.startswith("no face"):
                assert len(reference[1]) == 0, "the dark image must give no face"
            if silent_levels:
                assert level_maxima(path, image)[strides.index(silent)] < 0.5, f"{label}: the silent level fired"
        assert found_any, f"{outputs} outputs, {variant}: the model found nothing at all; the test means nothing"


@pytest.mark.parametrize("batch_axis", [False, True], ids=["flat", "batch-axis"])
def test_detect_records_equal_insightface_with_a_level_empty(models, batch_axis):
    """The bug this file was written for: one level with no score above 0.5 raised
    "does not produce SCRFD outputs"; insightface returns the other levels' faces."""
    path = build_scrfd(models / f"det_10g_like_{batch_axis}.onnx", outputs=9, batch_axis=batch_axis,
                       silent_levels=(32,), seed=3)
    detector = InsightFaceDetector(pack_of(detector=path), **INSIGHTFACE_SETTINGS)
    ref = reference_detector(path)
    for name, image in parity_images().items():
        faces = detector.detect(image)
        boxes, scores, kps = reference_detect(ref, image)
        assert len(faces) == len(scores), f"{name}: {len(faces)} faces, insightface {len(scores)}"
        if faces:
            diffs = {"box": float(np.abs(np.stack([f.box for f in faces]) - boxes).max()),
                     "keypoints": float(np.abs(np.stack([f.keypoints for f in faces]) - kps).max()),
                     "score": float(np.abs(np.array([f.score for f in faces]) - scores).max())}
            assert max(diffs["box"], diffs["keypoints"]) <= BOX_TOLERANCE and diffs["score"] <= SCORE_TOLERANCE, \
                f"{name}: max differences {diffs}"


def test_fixed_size_export_gets_its_own_size(models):
    path = build_scrfd(models / "scrfd_fixed_480x640.onnx", outputs=9, input_hw=(480, 640), seed=5)
    ours, ref = our_detector(path), reference_detector(path)
    assert ours.input_hw(600, 512) == (480, 640) and ref.input_size == (640, 480)
    for name, image in parity_images().items():
        assert_same(ours.detect_arrays(image), reference_detect(ref, image), f"fixed 480x640 input, {name}")


def old_rule_size(h: int, w: int) -> tuple[int, int]:
    """The resized (height, width) the pack used before: scale min(640 / h, 640 / w), both sides truncated."""
    scale = min(640 / h, 640 / w)
    return int(h * scale), int(w * scale)


def test_letterbox_is_insightfaces_for_every_width(models):
    path = build_scrfd(models / "letterbox.onnx", outputs=9, seed=6)
    ours, ref = our_detector(path), reference_detector(path)
    source = group_photo()
    sizes_differ = []
    for side in list(range(97, 1400, 13)) + [159, 318, 357, 581]:   # the last: sizes the old rule got wrong
        for h, w in ((480, side), (side, 480)):
            image = cv2.resize(source, (w, h))
            canvas, theirs = letterbox(image, (640, 640))[0], reference_canvas(ref, image)
            assert np.array_equal(canvas, theirs), \
                f"{w}x{h}: canvas differs from insightface's by up to {np.abs(canvas.astype(int) - theirs).max()}"
            used = (int(np.flatnonzero(canvas.any(axis=(1, 2)))[-1]) + 1,
                    int(np.flatnonzero(canvas.any(axis=(0, 2)))[-1]) + 1)
            if used != old_rule_size(h, w):
                sizes_differ.append((h, w))
    assert sizes_differ, "no size here tells insightface's letterbox from the old rule"
    for h, w in sizes_differ[:4] + [(480, 1000), (1000, 480)]:   # and the scale back to the image
        image = cv2.resize(source, (w, h))
        assert_same(ours.detect_arrays(image), reference_detect(ref, image), f"{w}x{h}")


def test_max_faces_keeps_the_faces_insightface_keeps(models):
    path = build_scrfd(models / "ranking.onnx", outputs=9, seed=7)
    ref = reference_detector(path)
    image = group_photo()
    everything = reference_detect(ref, image)
    assert len(everything[1]) > 6
    by_score_differs = False
    for max_faces in (1, 3, 6):
        kept = reference_detect(ref, image, max_num=max_faces)
        assert_same(our_detector(path, max_faces=max_faces).detect_arrays(image), kept, f"max_faces={max_faces}")
        by_score_differs |= not np.array_equal(np.sort(kept[1]), np.sort(everything[1][:max_faces]))
    assert by_score_differs, "insightface's ranking (area, centre) picked the top scores every time: no evidence"


def clipped(reference, height, width):
    boxes, scores, kps = reference
    return np.clip(boxes, 0, [width, height, width, height]), scores, kps


def at_least(reference, min_face):
    """The reference's faces whose box is not clearly smaller than min_face (the pack's rule)."""
    boxes, scores, kps = reference
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= 0.8 * min_face
    return boxes[keep], scores[keep], kps[keep]


def test_each_pack_policy_explains_its_own_difference(models):
    """Each policy the pack keeps by default, alone, against insightface with that policy applied
    to its output; then all defaults at once."""
    path = build_scrfd(models / "policies.onnx", outputs=9, seed=7, score_bias=-1.5)
    image = group_photo()
    h, w = image.shape[:2]
    plain = reference_detect(reference_detector(path), image)

    # clip_boxes: the same faces, boxes cut at the frame
    assert (plain[0] < 0).any() or (plain[0] > [w, h, w, h]).any(), "no box runs past the frame: no evidence"
    assert_same(our_detector(path, clip_boxes=True).detect_arrays(image), clipped(plain, h, w), "clip_boxes")

    # min_face: the same faces minus those clearly smaller than min_face
    min_face = float(np.median(np.minimum(plain[0][:, 2] - plain[0][:, 0], plain[0][:, 3] - plain[0][:, 1])))
    assert 0 < len(at_least(plain, min_face)[1]) < len(plain[1])
    assert_same(our_detector(path, min_face=min_face).detect_arrays(image), at_least(plain, min_face),
                f"min_face={min_face:.1f}")

    # det_size None: insightface itself, run at the larger input the pack picks for small faces
    side = input_side(h, w, min_face=0)
    assert side > 640
    assert_same(our_detector(path, det_size=None).detect_arrays(image),
                reference_detect(reference_detector(path, side), image), f"det_size None -> {side}")

    # the pack's defaults together: insightface at the pack's input size, filtered, clipped
    detector = InsightFaceDetector(pack_of(detector=path))
    at_side = reference_detect(reference_detector(path, input_side(h, w, detector.min_face)), image)
    assert_same(detector.detect_arrays(image), clipped(at_least(at_side, detector.min_face), h, w), "pack defaults")


# --------------------------------------------------------------------------- ArcFace

@pytest.fixture(scope="module")
def keypoints(models):
    """(image, keypoints) pairs: faces our detector finds on two portraits, and known similarities."""
    detector = our_detector(build_scrfd(models / "kps_source.onnx", outputs=9, seed=9))
    return [(image, kps) for image in (astronaut(), grace_hopper()) for kps in keypoint_sets(detector, image)]


def test_alignment_crops_equal_norm_crop(keypoints):
    worst = max(int(np.abs(align_face(image, kps).astype(int) - reference_crop(image, kps)).max())
                for image, kps in keypoints)
    assert worst <= CROP_TOLERANCE, f"alignment crops differ from norm_crop by up to {worst} grey levels"


@pytest.mark.parametrize("builtin", [False, True], ids=["pytorch-export", "builtin-normalisation"])
def test_embeddings_equal_arcface_onnx(models, keypoints, builtin):
    path = build_arcface(models / f"w600k_like_{builtin}.onnx", seed=11, builtin_normalisation=builtin)
    ours, ref = ArcFaceRecognizer(pack_of(recognizer=path)), ArcFaceONNX(str(path))
    assert (ref.input_mean, ref.input_std) == ((0.0, 1.0) if builtin else (127.5, 127.5))
    assert (ours.input_mean, ours.input_std) == (ref.input_mean, ref.input_std)
    worst_cos, worst_norm = 1.0, 0.0
    for image, kps in keypoints:
        face = reference_embedding(path, image, kps, ref)
        raw = ours.raw_embedding(image, kps)
        worst_cos = min(worst_cos, float(raw @ face.embedding / (np.linalg.norm(raw) * face.embedding_norm)))
        worst_norm = max(worst_norm, abs(np.linalg.norm(raw) / face.embedding_norm - 1))
        assert np.allclose(ours.embed(image, kps), face.normed_embedding, atol=1e-3)
    assert worst_cos >= MIN_COSINE and worst_norm < 1e-3, \
        f"min cosine {worst_cos:.6f}, max relative norm difference {worst_norm:.2e}"


def test_identity_keeps_the_raw_norm_beside_the_normalised_vector(tmp_path):
    folder = tmp_path / "buffalo_l"
    build_scrfd(folder / "det_10g.onnx", outputs=9, seed=12)
    recogniser = build_arcface(folder / "w600k_r50.onnx", seed=13)
    embedder = ArcFaceEmbedder(tmp_path)
    identity = build_identity("Eileen", [astronaut()], embedder)
    # insightface's recogniser on the face our detector picked
    reference = reference_embedding(recogniser, astronaut(), most_prominent(embedder.find_faces(astronaut())).keypoints)
    assert identity.embedding_norm == pytest.approx(reference.embedding_norm, rel=1e-4)
    assert float(identity.embedding @ reference.normed_embedding) >= MIN_COSINE
    assert abs(identity.embedding_norm - 1.0) > 0.1   # a raw norm, not the unit one
