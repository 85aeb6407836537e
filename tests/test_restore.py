"""DIIR restoration on analytic models: known answers, bit-identical background, edge cases."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from tests.support.analytic_models import PatchVAE, analytic_pipeline, gaussian_denoiser, karras_sigmas, knowing_denoiser, psnr
from magicid_core.faces import crops
from magicid_core.faces.masks import ellipse_mask
from magicid_core.faces.records import Face, FaceSet, ImageFaces
from magicid_core.diffusion.restore import pinned_regenerate, restore_faces
from magicid_core.diffusion.restore_plan import (MAX_CONTEXT, MIN_ZOOM_SIZE, FaceJob, RestoreSettings,
                                                 landmark_hint, parse_indices, plan_faces)
from magicid_core.diffusion.inversion import invert

ASTRONAUT_FACE = (175, 70, 265, 180)   # x0, y0, x1, y1 of Eileen Collins' face in the 512 px picture


def astronaut(height: int, width: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """The astronaut picture at (height, width), float32 0..1, and her face box there."""
    image = cv2.resize(skimage.data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    sx, sy = width / 512, height / 512
    x0, y0, x1, y1 = ASTRONAUT_FACE
    return image.astype(np.float32) / 255, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def face_at(index: int, box, image_hw, mask=None) -> Face:
    box = np.asarray(box, np.float32)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    kps = np.array([[cx - 5, cy - 5], [cx + 5, cy - 5], [cx, cy], [cx - 4, cy + 6], [cx + 4, cy + 6]], np.float32)
    region = None                     # a given mask covers the whole image
    if mask is None:                  # the inscribed ellipse, feathered, over its own region
        mask, region = ellipse_mask(box, *image_hw, pad=3)
        mask = crops.feather(mask, 2)
    return Face(index=index, box=box, score=0.99, keypoints=kps, head_box=box.copy(), mask=mask, mask_box=region)


def faceset(image, boxes) -> FaceSet:
    hw = image.shape[:2]
    return FaceSet([ImageFaces(hw[0], hw[1], [face_at(i, b, hw) for i, b in enumerate(boxes)])])


# A denoiser that pulls every latent hard towards a flat colour: the face must change a lot,
# so an unchanged background is the pinning and the paste at work, not a model doing nothing.
REPAINT = analytic_pipeline(gaussian_denoiser(mean=0.6, var=0.01), invert_denoise=gaussian_denoiser())
FAST = RestoreSettings(steps=8, strength=0.7, zoom_size=256, context=0.4, feather=3, refinement=2)


def assert_only_masks_changed(before, after, result_masks):
    outside = np.max(result_masks, axis=0) == 0
    assert np.array_equal(after[outside], before[outside]), "a pixel outside the face masks changed"
    inside = ~outside
    assert np.abs(after[inside] - before[inside]).mean() > 0.05, "the faces did not change at all"


def paste_masks(images, faces, settings, i):
    jobs, _ = plan_faces(images, faces, settings)
    return [j.full_mask() for j in jobs if j.image_index == i] or [np.zeros(images[i].shape[:2], np.float32)]


# ---- the analytic answer: a degraded face comes back --------------------------------------

def boundary_gradient_energy(image: np.ndarray, mask: np.ndarray, width: int = 1) -> float:
    """Mean squared image gradient over a band of ``width`` px either side of the mask's edge."""
    binary = (mask > 0.5).astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    band = (cv2.dilate(binary, kernel) > 0) & ~(cv2.erode(binary, kernel) > 0)
    gray = image.mean(axis=2)
    gy, gx = np.gradient(gray)
    return float((gx ** 2 + gy ** 2)[band].mean())


SEAM_BOUND = 1.25  # restored picture's boundary gradient energy <= 1.25 x the clean picture's


def test_degraded_face_comes_back_closer_without_seam():
    clean, box = astronaut(160, 160)                       # face about 28 x 34 px: zoomed
    faces = faceset(clean, [box])
    mask = faces[0].faces[0].full_mask(*clean.shape[:2])[..., None]
    rng = np.random.default_rng(0)
    blurred = cv2.GaussianBlur(clean, (0, 0), 2.0) + rng.normal(0, 0.06, clean.shape).astype(np.float32)
    degraded = np.clip(clean + mask * (blurred - clean), 0, 1).astype(np.float32)

    settings = RestoreSettings(steps=20, strength=0.6, zoom_size=256, context=0.5, feather=2, refinement=3)
    (job,), _ = plan_faces([degraded], faces, settings)
    assert job.plan.zoomed
    pipeline = analytic_pipeline(knowing_denoiser(clean, job), invert_denoise=gaussian_denoiser())

    result = restore_faces([degraded], faces, pipeline, settings)
    restored = result.images[0]
    assert 0 <= result.faces[0].inversion_error < 1e-3          # the inversion is near exact, and says so

    region = job.full_mask() > 0.5
    gain = psnr(restored[region], clean[region]) - psnr(degraded[region], clean[region])
    print(f"\nface PSNR: degraded {psnr(degraded[region], clean[region]):.2f} dB -> restored "
          f"{psnr(restored[region], clean[region]):.2f} dB (gain {gain:+.2f} dB)")
    assert gain > 6.0

    energy = boundary_gradient_energy(restored, job.full_mask())
    reference = boundary_gradient_energy(clean, job.full_mask())
    print(f"boundary gradient energy: restored {energy:.5f}, clean {reference:.5f} "
          f"(ratio {energy / reference:.2f}, bound {SEAM_BOUND})")
    assert energy <= SEAM_BOUND * reference
    # the measure does see a seam: the clean face pasted hard and 20% brighter breaks the bound
    seamed = np.where(region[..., None], np.clip(clean + 0.2, 0, 1), clean)
    assert boundary_gradient_energy(seamed, job.full_mask()) > SEAM_BOUND * reference


def test_inversion_with_the_same_model_regenerates_the_input():
    """Pinned regeneration with the inverting model itself gives the crop back (no drift)."""
    image, box = astronaut(96, 96)
    vae = PatchVAE()
    x0 = vae.encode(torch.from_numpy(image)[None])
    denoise = gaussian_denoiser(mean=0.2, var=0.5)
    sigmas = karras_sigmas(10)[4:]
    inv = invert(denoise, x0, sigmas, refinement=20, tol=1e-7)
    mask = torch.zeros(1, 1, *x0.shape[2:])
    mask[..., 3:9, 3:9] = 1
    out = pinned_regenerate(denoise, inv.trajectory, sigmas, mask)
    assert torch.equal(out * (1 - mask), x0 * (1 - mask))    # outside: the trajectory's end, exactly
    assert (out - x0).abs().max() < 1e-4


# ---- the background stays, to the bit --------------------------------------------------------

def test_background_bit_identical_in_a_batch_with_different_face_counts():
    a, box_a = astronaut(192, 192)
    b = np.ascontiguousarray(a[:, ::-1])
    box_b = (192 - box_a[2], box_a[1], 192 - box_a[0], box_a[3])
    small = (20, 130, 44, 160)
    c = a.copy()
    hw = a.shape[:2]
    faces = FaceSet([
        ImageFaces(*hw, [face_at(0, box_a, hw), face_at(1, small, hw)]),
        ImageFaces(*hw, [face_at(0, box_b, hw)]),
        ImageFaces(*hw, []),
    ])
    images = [a, b, c]
    out = restore_faces(images, faces, REPAINT, FAST)
    assert len(out.faces) == 3
    for i in range(2):
        assert_only_masks_changed(images[i], out.images[i], paste_masks(images, faces, FAST, i))
    assert np.array_equal(out.images[2], c)
    assert any("image 2" in m for m in out.messages)


def test_batched_faces_match_one_at_a_time_and_progress_counts_face_steps():
    image, box = astronaut(192, 192)
    faces = faceset(image, [box, (20, 130, 44, 160), (150, 20, 170, 44)])   # three crops, all zoomed to 256
    batches = []

    def repaint(x, sigma, **cond):
        batches.append(x.shape[0])
        return gaussian_denoiser(mean=0.6, var=0.01)(x, sigma)

    class OneAtATime(type(REPAINT)):          # as a pipeline short of memory says
        def batch_limit(self, latent_hw):
            return 1

    seen = []
    together = restore_faces([image], faces, analytic_pipeline(repaint, gaussian_denoiser()), FAST,
                             progress=lambda done, total: seen.append((done, total)))
    assert set(batches) == {3}
    batches.clear()
    alone = restore_faces([image], faces, OneAtATime(**analytic_pipeline(repaint, gaussian_denoiser()).__dict__), FAST)
    assert set(batches) == {1}
    np.testing.assert_allclose(together.images[0], alone.images[0], atol=1e-5)
    steps = 6                                               # round(8 * 0.7) steps of the 8-step schedule
    assert seen[-1] == (2 * steps * 3, 2 * steps * 3)       # inversion + regeneration steps, per face
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_face_at_the_border_and_size_not_multiple_of_8():
    image, _ = astronaut(203, 197)
    boxes = [(0, 0, 40, 46), (170, 160, 197, 203)]        # top-left corner, bottom-right corner
    faces = faceset(image, boxes)
    out = restore_faces([image], faces, REPAINT, FAST)
    assert out.images[0].shape == image.shape
    assert len(out.faces) == 2
    for r in out.faces:
        x0, y0, x1, y1 = r.box
        assert 0 <= x0 < x1 <= 197 and 0 <= y0 < y1 <= 203
    assert_only_masks_changed(image, out.images[0], paste_masks([image], faces, FAST, 0))


def test_gray_and_rgba_pictures_come_back_as_rgb_with_their_bits():
    image, box = astronaut(128, 128)
    gray = image.mean(axis=2)
    rgba = np.concatenate([image, np.ones_like(image[..., :1])], axis=2)
    faces = FaceSet([faceset(image, [box])[0]] * 2)
    out = restore_faces([gray, rgba], faces, REPAINT, FAST)
    outside = paste_masks([image], faceset(image, [box]), FAST, 0)[0] == 0
    assert out.images[0].shape == out.images[1].shape == image.shape
    assert np.array_equal(out.images[0][outside], np.repeat(gray[..., None], 3, 2)[outside])
    assert np.array_equal(out.images[1][outside], image[outside])


def test_strength_zero_returns_the_input_exactly():
    image, box = astronaut(128, 128)
    out = restore_faces([image], faceset(image, [box]), REPAINT,
                        RestoreSettings(steps=8, strength=0.0, zoom_size=256))
    assert np.array_equal(out.images[0], image)
    assert out.faces == []


def test_paste_keeps_input_bits_where_mask_is_zero():
    rng = np.random.default_rng(1)
    image = rng.random((40, 50, 3), dtype=np.float32)
    plan = crops.plan_crop((10, 10, 30, 30), (40, 50), 0.2, 64)
    mask = np.zeros((40, 50), np.float32)
    mask[15:25, 15:25] = 0.5
    out = crops.paste(image, np.ones(plan.crop_hw + (3,), np.float32), mask, plan)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    np.testing.assert_allclose(out[mask > 0], image[mask > 0] + 0.5 * (1 - image[mask > 0]), rtol=1e-6)


# ---- zoom --------------------------------------------------------------------------------

@pytest.mark.parametrize("face_px", [12, 30, 48])
def test_faces_of_48_px_or_less_are_zoomed(face_px):
    for context in (0.0, 0.5, MAX_CONTEXT):
        for zoom in (MIN_ZOOM_SIZE, 512, 1024):
            plan = crops.plan_crop((100, 100, 100 + face_px, 100 + face_px), (400, 400), context, zoom)
            assert plan.zoomed and max(plan.size) == zoom
            assert all(p % 8 == 0 for p in plan.padded)


def test_a_crop_of_the_working_size_keeps_its_pixels():
    plan = crops.plan_crop((100, 100, 441, 441), (1000, 1000), 0.25, 512)   # 341 px x (1 + 2 x 0.25) -> 512
    rng = np.random.default_rng(2)
    image = rng.random((1000, 1000, 3), dtype=np.float32)
    assert not plan.resized and plan.crop_hw == (512, 512)
    work = crops.extract(image, plan)
    assert np.array_equal(crops.shrink(work, plan), image[plan.box[1]:plan.box[3], plan.box[0]:plan.box[2]])


@pytest.mark.parametrize("face_px", [600, 1500, 3000])
def test_crops_larger_than_the_working_size_are_shrunk_to_it(face_px):
    side = 4096
    plan = crops.plan_crop((100, 100, 100 + face_px, 100 + face_px), (side, side), 0.25, 512)
    assert plan.shrunk and not plan.zoomed and max(plan.size) == 512 and max(plan.padded) == 512
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side      # a smooth picture survives the round trip
    image = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    work = crops.extract(image, plan)
    assert work.shape == plan.padded + (3,)
    mask = crops.extract_mask(np.ones((side, side), np.float32), plan)
    assert mask.shape == plan.padded and mask[: plan.size[0], : plan.size[1]].min() > 0.99
    back = crops.shrink(work, plan)
    x0, y0, x1, y1 = plan.box
    assert back.shape == (y1 - y0, x1 - x0, 3)
    assert np.abs(back - image[y0:y1, x0:x1]).max() < 0.01


def test_points_follow_the_zoom():
    plan = crops.plan_crop((40, 30, 70, 60), (200, 300), 0.5, 256)
    image = np.zeros((200, 300), np.float32)
    image[45, 55] = 1                                        # a dot at x=55, y=45
    work = crops.extract(image[..., None], plan, interpolation=cv2.INTER_LINEAR)[..., 0]
    y, x = np.unravel_index(np.argmax(work), work.shape)
    wx, wy = crops.to_work(np.array([55.5, 45.5]), plan)   # the dot's centre
    assert abs(x + 0.5 - wx) <= 1 and abs(y + 0.5 - wy) <= 1


def test_landmark_hint_draws_the_detected_mesh_on_the_zoomed_face():
    from magicid_core.analyze import analyze_batch

    image, _ = astronaut(200, 200)                           # face about 35 px: zoomed
    faces = analyze_batch([image])
    face = faces[0].faces[0]
    assert face.landmarks is not None or face.landmarks68 is not None   # the mesh, or 68 points without mediapipe
    (job,), _ = plan_faces([image], FaceSet([ImageFaces(200, 200, [face])]), FAST)
    hint = landmark_hint(job)
    assert hint.shape == job.plan.padded + (3,)
    ys, xs = np.nonzero(hint.max(axis=2))
    x0, y0 = crops.to_work(face.box[:2], job.plan)
    x1, y1 = crops.to_work(face.box[2:], job.plan)
    inside = (xs >= x0 - 8) & (xs <= x1 + 8) & (ys >= y0 - 16) & (ys <= y1 + 8)
    assert len(xs) > 500 and inside.mean() > 0.95            # drawn, at working size, on the face
    no_mesh = FaceJob(job.image_index, Face(**{**face.__dict__, "landmarks": None, "landmarks68": None}), job.plan, job.mask,
                      job.work, job.work_mask)
    assert landmark_hint(no_mesh).max() == 0


# ---- bad input ---------------------------------------------------------------------------

def test_no_faces_passes_through_with_a_message():
    image, _ = astronaut(64, 64)
    out = restore_faces([image], FaceSet([ImageFaces(64, 64, [])]), REPAINT, FAST)
    assert np.array_equal(out.images[0], image)
    assert out.messages and "no face" in out.messages[0]


def test_zero_area_mask_is_skipped_with_a_message():
    image, box = astronaut(128, 128)
    empty = face_at(0, box, (128, 128), mask=np.zeros((128, 128), np.float32))
    real = face_at(1, (10, 10, 40, 40), (128, 128))
    out = restore_faces([image], FaceSet([ImageFaces(128, 128, [empty, real])]), REPAINT, FAST)
    assert [r.face_index for r in out.faces] == [1]
    assert any("face 0" in m and "empty" in m for m in out.messages)


def test_faces_the_pipeline_declines_are_left_alone():
    class NoIdentityForFace0(type(REPAINT)):
        def skip_reason(self, job):
            return "no identity matched this face" if job.face.index == 0 else None

    image, box = astronaut(128, 128)
    faces = faceset(image, [box, (5, 80, 35, 110)])
    out = restore_faces([image], faces, NoIdentityForFace0(**REPAINT.__dict__), FAST)
    assert [r.face_index for r in out.faces] == [1]
    assert any("face 0: no identity" in m for m in out.messages)
    face0 = plan_faces([image], faces, FAST)[0][0].full_mask() > 0
    assert np.array_equal(out.images[0][face0], image[face0])


def test_faces_from_another_image_size_are_refused():
    image, box = astronaut(128, 128)
    with pytest.raises(ValueError, match="run FaceDetectMasks"):
        restore_faces([image], faceset(np.zeros((100, 128, 3), np.float32), [box]), REPAINT, FAST)
    with pytest.raises(ValueError, match="faces describes 1 image"):
        restore_faces([image, image], faceset(image, [box]), REPAINT, FAST)


def test_a_model_giving_nan_is_an_error_not_a_picture():
    broken = analytic_pipeline(lambda x, sigma, **c: x * float("nan"), invert_denoise=gaussian_denoiser())
    image, box = astronaut(64, 64)
    with pytest.raises(ValueError, match="NaN"):
        restore_faces([image], faceset(image, [box]), broken, FAST)


def test_bad_strength_is_refused():
    image, box = astronaut(64, 64)
    with pytest.raises(ValueError, match="strength"):
        restore_faces([image], faceset(image, [box]), REPAINT, RestoreSettings(strength=1.5))


def test_cancel_from_progress_stops_restoration_within_one_model_call():
    image, box = astronaut(192, 192)
    faces = faceset(image, [box, (20, 130, 44, 160)])
    calls = []

    def counted(x, sigma, **cond):
        calls.append(1)
        return gaussian_denoiser()(x, sigma)

    class Cancelled(Exception):
        pass

    restore_faces([image], faces, analytic_pipeline(counted, counted), FAST)
    full_run = len(calls)
    for cancel_after in (7, full_run - 3):          # during inversion, during regeneration
        calls.clear()

        def cancel(done, total):
            if len(calls) >= cancel_after:
                raise Cancelled

        with pytest.raises(Cancelled):
            restore_faces([image], faces, analytic_pipeline(counted, counted), FAST, progress=cancel)
        assert len(calls) == cancel_after


def test_cancel_during_the_vae_encode_stops_after_that_face_before_any_model_call():
    image, box = astronaut(192, 192)
    faces = faceset(image, [box, (20, 130, 44, 160)])
    calls, pressed = [], []

    def counted(x, sigma, **cond):
        calls.append(1)
        return gaussian_denoiser()(x, sigma)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if pressed:
            raise Cancelled

    plain = analytic_pipeline(counted, counted)

    def encode_while_cancel_is_pressed(pixels):
        pressed.append(len(pixels))
        return plain.encode_fn(pixels)

    pipeline = dataclasses.replace(plain, encode_fn=encode_while_cancel_is_pressed)
    with pytest.raises(Cancelled):
        restore_faces([image], faces, pipeline, FAST, progress=cancel)
    assert pressed == [1] and calls == []       # one face encoded (of two), no model call


def test_restore_faces_that_do_not_exist_are_refused_like_multi_id_apply():
    image, box = astronaut(96, 96)
    faces = faceset(image, [box])
    for text, shown in (("999", "999"), ("-1", "-1"), ("0, 3", "3")):
        with pytest.raises(ValueError, match=rf"^faces_to_restore {shown}: no such face, the images have faces 0..0"):
            restore_faces([image], faces, REPAINT, FAST, parse_indices(text))
    with pytest.raises(ValueError, match=r"^faces_to_restore: item 2 'left' of '0, left' is not a number: .*'all'"):
        parse_indices("0, left")
    with pytest.raises(ValueError, match=r"^faces_to_restore: item 1 '0.5' of '0.5' is not a whole number"):
        parse_indices("0.5")
    assert parse_indices(" ALL ") is None and parse_indices("1; 0") == [1, 0]


@pytest.mark.parametrize("field, value", [("strength", float("nan")), ("context", float("nan")),
                                          ("steps", 0), ("zoom_size", 100), ("refinement", -1)])
def test_settings_are_refused_under_the_node_input_names(field, value):
    image, box = astronaut(64, 64)
    settings = RestoreSettings(**{field: value})
    with pytest.raises(ValueError, match=rf"^{field} is "):
        restore_faces([image], faceset(image, [box]), REPAINT, settings)
