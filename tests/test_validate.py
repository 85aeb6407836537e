"""The validation layer: every check accepts good values, and refuses bad ones with a message
that names the input, quotes the value and says what to give instead."""

import math

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
