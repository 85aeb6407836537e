"""The face PuLID's EVA-CLIP sees: aligned as insightface's estimate_norm + cv2.warpAffine align it for
ApplyPulidFlux (512 px, its border colour), and kept by a parser's labels as the reference keeps it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from magicid_core.identity.pulid_face import BACKGROUND_LABELS, align_for_pulid, eva_input, face_only

KPS = np.array([[210, 240], [300, 236], [256, 300], [220, 350], [295, 346]], np.float32)


def _photo():
    return np.random.default_rng(0).integers(0, 256, (600, 520, 3), dtype=np.uint8)


def test_alignment_equals_insightface_estimate_norm_with_the_references_border():
    face_align = pytest.importorskip("insightface.utils.face_align", reason="insightface is the reference here")
    rgb = _photo()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    matrix = face_align.estimate_norm(KPS, image_size=512)           # as ApplyPulidFlux calls it, on BGR
    theirs = cv2.warpAffine(bgr, matrix, (512, 512), borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(135, 133, 132))[..., ::-1]
    ours = align_for_pulid(rgb, KPS)
    assert ours.shape == (512, 512, 3)
    # the same similarity transform to float rounding: a pixel may round the other way
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    assert (ours != theirs).mean() < 0.01


def test_background_labels_turn_white_and_the_face_grey():
    aligned = np.full((512, 512, 3), (200, 100, 50), np.uint8)
    labels = torch.zeros(1, 19, 512, 512)
    labels[:, 1, :, :256] = 1                      # skin on the left half, background (0) on the right
    labels[:, 16, 400:, :256] = 2                  # cloth at the bottom left
    out = face_only(aligned, lambda image: labels)
    grey = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert torch.allclose(out[0, :, :400, :256], torch.full((3, 400, 256), grey), atol=1e-6)
    assert torch.equal(out[0, :, :, 256:], torch.ones(3, 512, 256))
    assert torch.equal(out[0, :, 400:, :256], torch.ones(3, 112, 256))
    assert 16 in BACKGROUND_LABELS and 1 not in BACKGROUND_LABELS


def test_eva_input_is_336_and_normalised():
    x = eva_input(torch.ones(1, 3, 512, 512))
    assert x.shape == (1, 3, 336, 336)
    assert torch.allclose(x[0, :, 0, 0], (1 - torch.tensor([0.48145466, 0.4578275, 0.40821073]))
                          / torch.tensor([0.26862954, 0.26130258, 0.27577711]))
