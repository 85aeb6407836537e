"""The mask-to-layer ownership rule: every face owns a cell at every size, no cell is shared."""

import numpy as np
import pytest

from magicid_core.diffusion.ownership import (bilinear_masks, coverage, crop_and_resize, owner_map,
                                              ownership_masks, validate_masks)

# Cross-attention layer sizes (cells a side) for a 1024 px picture (latent 128).
SD15_SIZES = [128, 64, 32, 16]      # the middle block runs at 16
SDXL_SIZES = [64, 32]               # the middle block runs at 32


def disc_masks(centres, diameter, size=1024):
    """(N, size, size) float masks: one filled disc per face."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return np.stack([((yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2).astype(np.float32)
                     for cx, cy in centres])


# Six 40 px faces packed in a row, 48 px apart: at 16 cells (64 px each) they crowd 4 cells.
SIX_SMALL = [(300 + 48 * i, 500) for i in range(6)]


@pytest.mark.parametrize("size", sorted(set(SD15_SIZES + SDXL_SIZES)))
def test_six_40px_faces_each_own_a_cell_and_share_none(size):
    masks = disc_masks(SIX_SMALL, 40)
    owned = ownership_masks(masks, size, size)
    assert (owned.reshape(6, -1).sum(axis=1) >= 1).all(), "a face lost its identity at this size"
    assert owned.sum(axis=0).max() == 1, "a cell has two owners"


def test_bilinear_shrinking_loses_or_shares_those_faces():
    """What peers do, at SD1.5's coarsest layer: the same layout does not survive."""
    masks = disc_masks(SIX_SMALL, 40)
    shrunk = bilinear_masks(masks, 16, 16)
    strongest = shrunk.reshape(6, -1).max(axis=1)
    assert strongest.max() < 0.5          # no face reaches half strength anywhere
    assert (strongest == 0).sum() >= 2    # and some faces vanish: their identity acts nowhere


def test_random_crowds_keep_ownership():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        masks = disc_masks(rng.uniform(40, 984, size=(n, 2)), rng.uniform(20, 200), size=1024)
        masks = masks[[i for i in range(n) if masks[i].any()]]
        for size in (16, 32, 64):
            owner = owner_map(masks, size, size)
            assert set(range(len(masks))) <= set(owner.ravel().tolist())


def test_majority_rule_on_large_faces():
    """A face covering a cell by more than half owns it; a cell it barely touches stays free."""
    masks = disc_masks([(256, 256), (768, 768)], 400, size=1024)
    for size in (16, 64):
        cov = coverage(masks, size, size)
        owner = owner_map(masks, size, size)
        majority = cov.max(axis=0) >= 0.5
        assert np.array_equal(owner >= 0, majority)
        assert np.array_equal(owner[majority], cov.argmax(axis=0)[majority])


def test_touching_faces_split_their_border_cells():
    left = np.zeros((64, 64), np.float32); left[:, :33] = 1
    right = np.zeros((64, 64), np.float32); right[:, 33:] = 1
    owner = owner_map(np.stack([left, right]), 8, 8)
    assert (owner[:, :4] == 0).all() and (owner[:, 4:] == 1).all()


def test_non_square_layers():
    masks = disc_masks([(100, 100), (150, 100)], 30, size=256)[:, :192]   # 192 x 256 image
    owner = owner_map(masks, 6, 8)
    assert {0, 1} <= set(owner.ravel().tolist())


def test_more_faces_than_cells_is_a_clear_error():
    masks = disc_masks([(8 * i + 4, 4) for i in range(5)], 6, size=32)[:, :8]
    with pytest.raises(ValueError, match="cannot each own a cell"):
        owner_map(masks, 1, 4)


def test_empty_and_nan_masks_are_rejected():
    ok = disc_masks([(50, 50)], 20, size=100)[0]
    with pytest.raises(ValueError, match="empty"):
        validate_masks(np.stack([ok, np.zeros_like(ok)]))
    with pytest.raises(ValueError, match="NaN"):
        validate_masks(np.stack([np.where(ok > 0, np.nan, 0)]))
    with pytest.raises(ValueError, match="stack"):
        validate_masks(ok)


def test_crop_and_resize_follows_the_box():
    masks = disc_masks([(300, 300), (700, 700)], 100)
    crop = crop_and_resize(masks, (200, 200, 456, 456), (512, 512))
    assert crop.shape == (2, 512, 512)
    assert crop[1].max() == 0                               # the other face is outside the box
    ys, xs = np.nonzero(crop[0] > 0.5)                      # face centre (300, 300) -> (200, 200) at 2x
    assert abs(ys.mean() - 200) < 2 and abs(xs.mean() - 200) < 2
    with pytest.raises(ValueError, match="outside"):
        crop_and_resize(masks, (2000, 0, 2100, 10), (64, 64))


def test_preview_shows_every_face_owning_a_cell_at_the_coarsest_layer():
    from magicid_core.diffusion.ownership import PALETTE, ownership_preview

    masks = disc_masks(SIX_SMALL, 40)
    picture = ownership_preview(masks, 16, 16)
    assert picture.shape == (1024, 1024, 3) and np.isfinite(picture).all()
    for i in range(6):                                   # each identity's full colour is somewhere
        assert np.isclose(picture, PALETTE[i], atol=1e-6).all(axis=-1).any()
