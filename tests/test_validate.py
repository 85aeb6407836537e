"""The validation layer: every check accepts good values, and refuses bad ones with a message
that names the input, quotes the value and says what to give instead."""

import math
import time

import numpy as np
import pytest
import torch

from magicid_core import validate as v


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", float("nan")])
def test_number_refuses_non_finite_values(value):
    with pytest.raises(v.BadInput, match=r"^start_percent is (nan|inf|-inf): give a finite number, a number from 0 to 1"):
        v.number("start_percent", value, 0.0, 1.0)


def test_number_accepts_the_range_and_refuses_outside_it():
    assert v.number("weight", 0.0, 0, 3) == 0.0 and v.number("weight", 3, 0, 3) == 3.0
    assert v.number("steps", 20.0, 1, 200, integer=True) == 20
    with pytest.raises(v.BadInput, match=r"^weight is -5, outside its range: give a number from 0 to 3$"):
        v.number("weight", -5, 0, 3)
    with pytest.raises(v.BadInput, match=r"^weight is 1e\+30, outside its range"):
        v.number("weight", 1e30, 0, 3)
    with pytest.raises(v.BadInput, match=r"^zoom_size is 'big', not a number"):
        v.number("zoom_size", "big", 256)
    with pytest.raises(v.BadInput, match=r"^steps is 2.5: give a whole number"):
        v.number("steps", 2.5, 1, integer=True)
    with pytest.raises(v.BadInput, match=r"a number of at least 256"):
        v.number("zoom_size", 100, 256)


def test_ordered_names_both_inputs_and_what_follows():
    v.ordered("start_percent", 0.2, "end_percent", 0.8, strict=True)
    v.ordered("start_percent", 0.5, "end_percent", 0.5)
    with pytest.raises(v.BadInput, match=r"^start_percent 0.9 is not below end_percent 0.1 \(identity never "
                                         r"applied\): set start_percent below end_percent$"):
        v.ordered("start_percent", 0.9, "end_percent", 0.1, strict=True, consequence="identity never applied")
    with pytest.raises(v.BadInput, match="not below"):
        v.ordered("start_percent", 0.5, "end_percent", 0.5, strict=True)


def test_number_list_parses_and_quotes_the_bad_token():
    assert v.number_list("face_indices", "2, 0; -1", int, -1) == [2, 0, -1]
    assert v.number_list("identity_weights", " 1, 0.8 ,1.2", float, 0, 3) == [1.0, 0.8, 1.2]
    assert v.number_list("face_indices", "  ", int) is None and v.number_list("face_indices", None, int) is None
    cases = {
        "0, x, 2": r"item 2 'x' of '0, x, 2' is not a number",
        "0,,2": r"item 2 '' of '0,,2' is empty",
        "1, nan": r"item 2 'nan' of '1, nan' is not a finite number",
        "1.5": r"item 1 '1.5' of '1.5' is not a whole number",
        "0, 999": None,
    }
    for text, message in cases.items():
        if message is None:
            assert v.number_list("face_indices", text, int, -1) == [0, 999]   # existence is the caller's check
            continue
        with pytest.raises(v.BadInput, match=r"^face_indices: " + message):
            v.number_list("face_indices", text, int, -1)
    with pytest.raises(v.BadInput, match=r"^identity_weights: item 1 '1e30' of '1e30' is outside its range: "
                                         r"give a number from 0 to 3"):
        v.number_list("identity_weights", "1e30", float, 0, 3)
    with pytest.raises(v.BadInput, match=r"item 2 '-5' .* outside its range"):
        v.number_list("identity_weights", "1, -5", float, 0, 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_images_masks_and_latents_must_be_finite(bad):
    img = torch.rand(2, 8, 8, 3)
    img[1, 3, 3, 0] = bad
    with pytest.raises(v.BadInput, match=r"^image_before: 1 of its 384 pixel values are NaN or infinite; fix the "
                                         r"node that makes image_before"):
        v.image("image_before", img)
    m = np.ones((1, 8, 8), np.float32)
    m[0, 0, :2] = bad
    with pytest.raises(v.BadInput, match=r"^person_mask: 2 of its 64 mask values are NaN or infinite"):
        v.mask("person_mask", m)
    lat = {"samples": torch.zeros(1, 4, 8, 8)}
    lat["samples"][0, 0, 0, 0] = bad
    with pytest.raises(v.BadInput, match=r"^latent_image: 1 of its 256 latent values .* re-encode the picture"):
        v.latent("latent_image", lat)


def test_good_images_masks_and_latents_pass_and_come_back_batched():
    assert v.image("image", torch.rand(8, 8, 3)).shape == (1, 8, 8, 3)
    assert v.image("image", torch.rand(2, 8, 8, 4)).shape == (2, 8, 8, 4)
    assert v.mask("mask", torch.rand(8, 8)).shape == (1, 8, 8)
    assert v.latent("latent", {"samples": torch.zeros(2, 4, 8, 8)}).shape == (2, 4, 8, 8)


def test_empty_and_misshapen_batches_are_named():
    with pytest.raises(v.BadInput, match=r"^image is empty \(0 images of 8x8\)"):
        v.image("image", torch.zeros(0, 8, 8, 3))
    with pytest.raises(v.BadInput, match=r"^image has 5 channels"):
        v.image("image", torch.zeros(1, 8, 8, 5))
    with pytest.raises(v.BadInput, match=r"^image is not an image batch"):
        v.image("image", torch.zeros(8, 8))
    with pytest.raises(v.BadInput, match=r"^face_mask is empty"):
        v.mask("face_mask", torch.zeros(1, 0, 8))
    with pytest.raises(v.BadInput, match=r"^latent_image holds no latent batch"):
        v.latent("latent_image", {"noise": torch.zeros(1, 4, 8, 8)})
    with pytest.raises(v.BadInput, match=r"^latent_image is empty"):
        v.latent("latent_image", {"samples": torch.zeros(0, 4, 8, 8)})


def test_batches_must_match_or_share_one():
    v.batch_matches("person_mask", 1, "skeleton_map", 4)
    v.batch_matches("person_mask", 4, "skeleton_map", 4)
    with pytest.raises(v.BadInput, match=r"^person_mask has 3 items but skeleton_map has 4: give 1 or 4"):
        v.batch_matches("person_mask", 3, "skeleton_map", 4)
    with pytest.raises(v.BadInput, match=r"give 4$"):
        v.batch_matches("faces", 1, "image", 4, one_is_shared=False)


def test_aspect_ratios_must_agree():
    v.same_aspect("person_mask", (443, 640), "skeleton_map", (886, 1280))
    with pytest.raises(v.BadInput, match=r"^person_mask is 640x640 but skeleton_map is 1280x886: .* stretched"):
        v.same_aspect("person_mask", (640, 640), "skeleton_map", (886, 1280))


# --- what users type, quoted short ---------------------------------------------------------------

def test_a_long_input_is_quoted_as_an_excerpt_and_read_quickly():
    text = "0, " * 130000 + "first"       # about 400 kB
    started = time.perf_counter()
    with pytest.raises(v.BadInput) as refused:
        v.number_list("face_indices", text, int, -1)
    seconds = time.perf_counter() - started
    message = str(refused.value)
    assert message.startswith("face_indices: item 130001 'first' of '0, 0, ") and "(390005 characters)" in message
    assert len(message) < 300
    print(f"refused in {seconds:.2f} s")     # the log only; it took 89 s when every token quoted the whole text
    assert v.excerpt("short") == "'short'" and v.excerpt(list(range(3))) == "[0, 1, 2]"
    with pytest.raises(v.BadInput, match=r"^zoom_size is 'bbbb.*\.\.\. \(5000 characters\), not a number"):
        v.number("zoom_size", "b" * 5000)


# --- values from other packs -------------------------------------------------------------------

def test_numbers_need_the_count_and_finite_values():
    np.testing.assert_array_equal(v.numbers("bbox", torch.tensor([1, 2, 3, 4])), [1, 2, 3, 4])
    for value, message in [(None, r"^bbox is missing"), ("box", r"^bbox is 'box', not x1"),
                           ([1, 2, 3], r"^bbox has 3 numbers \(\[1.0, 2.0, 3.0\]\): give 4"),
                           ([1, math.nan, 3, 4], r"^bbox holds NaN or infinite values"),
                           ([[1, 2], [3]], r"^bbox is \[\[1, 2\], \[3\]\], not x1")]:
        with pytest.raises(v.BadInput, match=message):
            v.numbers("bbox", value, 4, "x1, y1, x2, y2")


def test_boxes_are_ordered_and_cut_to_the_image():
    np.testing.assert_array_equal(v.box("bbox", [-5, 10, 700, 20], 600, 300), [0, 10, 600, 20])
    np.testing.assert_array_equal(v.box("bbox", [900, 500, 950, 560], 600, 300), [600, 300, 600, 300])
    np.testing.assert_array_equal(v.box("crop_region", [-5, -5, 10, 10]), [-5, -5, 10, 10])   # no size: kept
    with pytest.raises(v.BadInput, match=r"^SEG 0's bbox \[80.0, 40.0, 40.0, 90.0\] is inverted"):
        v.box("SEG 0's bbox", [80, 40, 40, 90], 600, 300)


def test_a_confidence_is_one_number_in_0_to_1():
    assert v.fraction("confidence", np.array([0.75], np.float32)) == 0.75
    assert v.fraction("confidence", 1.0 + 1e-7) == 1.0
    for value, message in [([], r"^confidence is empty"), ([math.nan], "NaN"), (5, r"^confidence is 5, outside 0..1"),
                           ("high", r"^confidence is 'high', not")]:
        with pytest.raises(v.BadInput, match=message):
            v.fraction("confidence", value)


def test_a_crop_mask_matches_its_region_and_holds_0_to_1():
    mask = np.full((4, 6), 0.5, np.float32)
    np.testing.assert_array_equal(v.crop_mask("mask", torch.from_numpy(mask)[None], 4, 6), mask)
    bad = mask.copy()
    bad[1, 1] = math.nan
    for value, message in [(mask[1:], r"^mask is \(3, 6\) but its crop region is 6x4"),
                           (bad, r"^mask: 1 of its 24 mask values are NaN"),
                           (mask * 255, r"^mask has values from 127.5 to 127.5: a mask holds 0..1"),
                           ("a mask", r"^mask is 'a mask', not a mask")]:
        with pytest.raises(v.BadInput, match=message):
            v.crop_mask("mask", value, 4, 6)


def test_vectors_say_what_is_wrong():
    rows = v.vectors("embedding", torch.ones(2, 1, 8), 8)
    assert rows.shape == (2, 8) and rows.dtype == np.float64
    assert v.vectors("embedding", np.ones(8) * 1e30, 8).shape == (1, 8)
    hint = lambda got: f" (got {got})"                        # noqa: E731
    for value, message in [(np.zeros((0, 8)), r"^embedding is empty \(shape \(0, 8\)\)"),
                           (np.ones((1, 5)), r"^embedding has 5 numbers per vector but 8 are needed \(got 5\)"),
                           (np.ones((1, 3, 7)), r"^embedding has shape \(1, 3, 7\): .* \(got 7\)"),
                           (np.r_[np.ones(4), [math.inf], np.ones(3)], r"^embedding: 1 of its 8 values are NaN"),
                           (np.zeros(8), r"^embedding: vector 0 of 1 is all zeros"),
                           ("vector", r"^embedding is 'vector', not an array of numbers")]:
        with pytest.raises(v.BadInput, match=message):
            v.vectors("embedding", value, 8, hint)


def test_encoded_tokens_are_finite_and_bounded():
    v.bounded("text", torch.full((3, 4), 99.0), 100, "check the CLIP")
    with pytest.raises(v.BadInput, match=r"^text reaches 1e\+29, far beyond the usual size \(at most 100\): check"):
        v.bounded("text", torch.full((3, 4), 1e29), 100, "check the CLIP")
    with pytest.raises(v.BadInput, match=r"^text: 12 of its 12 values are NaN"):
        v.bounded("text", torch.full((3, 4), math.nan), 100, "check the CLIP")


@pytest.mark.parametrize("text, weights, quoted", [
    ("a man, (red scarf:1e30), smiling", [1.0, 1e30], r"'\(red scarf:1e30\)' asks for the weight 1e\+30"),
    ("(red scarf:nan)", [math.nan], r"'\(red scarf:nan\)' asks for the weight nan"),
    ("(hat:-12)", [-12.0], r"'\(hat:-12\)' asks for the weight -12"),
    ("(" * 30 + "hat" + ")" * 30, [1.1 ** 30], r"'\(\(\(\(.*\.\.\. \(63 characters\) asks for the weight 17.4494"),
])
def test_absurd_prompt_weights_are_refused_with_their_words(text, weights, quoted):
    with pytest.raises(v.BadInput, match=r"^text: " + quoted + r": give weights from -10 to 10"):
        v.prompt_weights("text", text, weights, 10.0)


def test_usual_prompt_weights_pass():
    v.prompt_weights("text", "(red scarf:1.5), ((hat)), (a: b)", [1.5, 1.21, 1.0, 1.1], 10.0)


def test_a_latent_far_beyond_any_vae_is_named():
    with pytest.raises(v.BadInput, match=r"^latent_image reaches 1e\+30, far beyond any VAE's latents"):
        v.latent("latent_image", {"samples": torch.full((1, 4, 8, 8), 1e30)})
    v.latent("latent_image", {"samples": torch.full((1, 4, 8, 8), 80.0)})
