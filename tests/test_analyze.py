"""The analysis pipeline: stable order, odd inputs (no face, gray, RGBA, float, 1 px, 8k),
batches with progress, settings checks, and the command-line sample run."""

import json

import cv2
import numpy as np
import pytest

from tests.support.face_scenes import group6, match, scene
from magicid_core.__main__ import main
from magicid_core.analyze import AnalysisSettings, analyze_batch, analyze_image
from magicid_core.faces.detection import make_detector
from magicid_core.optional import mediapipe_available
from tests.support.no_mediapipe import needs_mediapipe

FAST = AnalysisSettings(mesh=False, skeletons=False, embeddings=False)  # what these tests check needs neither


@pytest.fixture(scope="module")
def third():
    return group6(3)


def test_order_left_to_right_or_by_size_and_same_every_time():
    people = [("hopper", 110, 450, 150, False), ("astronaut", 60, 120, 170, False), ("hopper", 85, 300, 160, True)]
    image, ovals = scene(560, 320, people, seed=5)
    by_x = analyze_image(image, FAST).faces
    assert match(by_x, ovals) == [2, 0, 1]
    by_size = analyze_image(image, AnalysisSettings(mesh=False, order="size")).faces
    assert match(by_size, ovals) == [0, 2, 1] and [f.index for f in by_size] == [0, 1, 2]
    again = analyze_image(image.copy(), FAST).faces
    assert [f.box.tolist() for f in again] == [f.box.tolist() for f in by_x]


def test_no_face_gives_an_empty_list_and_empty_union():
    empty, _ = scene(400, 300, [], seed=2)
    result = analyze_image(empty)
    assert result.faces == [] and result.union_mask().shape == (300, 400) and not result.union_mask().any()


@pytest.mark.parametrize("convert", [
    lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY),                                   # gray (H, W)
    lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None],                        # gray (H, W, 1)
    lambda im: np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]),                  # RGBA uint8
    lambda im: np.dstack([im / 255.0, np.ones(im.shape[:2])]).astype(np.float32),       # RGBA float
], ids=["gray", "gray1", "rgba", "rgba_float"])
def test_gray_rgba_and_float_inputs_find_the_same_people(convert):
    image, ovals = group6(2)  # faces ~60 px (at 40 px, gray misses one at the default min_face)
    faces = analyze_image(convert(image), FAST).faces
    assert None not in match(faces, ovals) and len(faces) == 6


def test_a_one_pixel_image_has_no_face():
    assert analyze_image(np.zeros((1, 1, 3), np.uint8)).faces == []
    assert analyze_image(np.zeros((1, 1), np.float32)).faces == []


def test_an_8k_image_is_detected_on_a_downscaled_copy_and_mapped_back():
    small, ovals = scene(1920, 1080, [("astronaut", 150, 600, 500, False), ("hopper", 130, 1300, 520, True)])
    image = cv2.resize(small, (7680, 4320), interpolation=cv2.INTER_LINEAR)
    seen = []
    detector = make_detector("auto", min_face=64)   # faces are 150 px on the 2048 px copy

    class Watch:  # the real detector; only records the size of what it is given
        name = detector.name

        def detect(self, rgb, progress=None):
            seen.append(rgb.shape)
            return detector.detect(rgb, progress)

    faces = analyze_image(image, AnalysisSettings(max_side=2048, feather=4), detector=Watch())
    assert seen == [(1152, 2048, 3)]
    big_ovals = [(x * 4, y * 4, w * 4, h * 4) for x, y, w, h in ovals]
    assert match(faces.faces, big_ovals) == [0, 1]
    face = faces.faces[0]
    x0, y0, x1, y1 = face.mask_region(4320, 7680)    # the mask (at crop size) fits the input image ...
    cx, cy = face.center                              # ... at the face, at the input's resolution
    assert x0 <= cx <= x1 and y0 <= cy <= y1 and x1 - x0 > 0.5 * face.width and y1 - y0 > 0.5 * face.height
    assert face.mask_area > 0.5 * face.width * face.height and face.landmarks68.max() > 2048


def test_batch_of_16_reports_progress_and_keeps_images_apart(third):
    image, ovals = third
    batch = np.stack([image if i % 2 == 0 else image[:, ::-1] for i in range(16)])
    ticks = []
    result = analyze_batch(batch, FAST, progress=lambda done, total: ticks.append((done, total)))
    # images done, in order; between them the same count again after every tile and face (a chance to cancel)
    assert list(dict.fromkeys(ticks)) == [(i, 16) for i in range(0, 17)]
    assert len(ticks) > 16 * 6
    assert [len(im.faces) for im in result.images] == [6] * 16
    mirrored = [(image.shape[1] - x, y, w, h) for x, y, w, h in ovals]
    assert None not in match(result[1].faces, mirrored)


def test_bad_settings_are_refused_with_a_clear_message():
    for bad in (dict(backend="yolo"), dict(mask_mode="hair"), dict(order="random"), dict(min_face=0)):
        with pytest.raises(ValueError):
            analyze_image(np.zeros((64, 64, 3), np.uint8), AnalysisSettings(**bad))
    with pytest.raises(ValueError, match="shape"):
        analyze_image(np.zeros((4, 4, 5), np.uint8))


def test_command_line_writes_preview_masks_and_json(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "faces.json").read_text())
    assert len(data["faces"]) == 6 and len(data["faces"][0]["landmarks68"]) == 68
    with_mediapipe = data["faces"][0]["sources"]["landmarks"] == "mediapipe_mesh"
    assert with_mediapipe == mediapipe_available()
    if with_mediapipe:
        assert len(data["faces"][0]["landmarks"]) == 478
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == (["faces.json"] + [f"mask_{i:02d}.png" for i in range(6)]
                     + ["preview.png", "skeleton.png", "union_mask.png"])
    face = data["faces"][0]
    assert face["embedding_model"] == "dlib_resnet_v1" and len(face["embedding"]) == 128
    assert face["skeleton"]["r_shoulder"][2] > 0.5 if with_mediapipe else face["sources"]["skeleton"] == "head_only"
    lines = capsys.readouterr().out.strip().splitlines()
    # a header, one line per face, the note that auto found no insightface pack (and the head-only skeleton note)
    assert len(lines) == 8 + (not with_mediapipe)
    assert any(line.startswith("note: no insightface pack found, so auto used") for line in lines)


@needs_mediapipe
def test_a_detection_without_a_mesh_and_with_a_low_score_is_dropped():
    # mediapipe's tiles also fire (score ~0.64) on the astronaut's helmet ring, where no mesh fits
    from skimage.data import astronaut

    settings = AnalysisSettings(skeletons=False, embeddings=False)
    found = analyze_image(astronaut(), settings)
    assert len(found.faces) == 1 and found.faces[0].landmarks is not None
    assert found.faces[0].box[1] < 100   # the real face, at the top of the picture
    unchecked = analyze_image(astronaut(), AnalysisSettings(skeletons=False, embeddings=False, mesh=False))
    assert len(unchecked.faces) == 2      # without the mesh's second opinion both detections stay
