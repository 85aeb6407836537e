"""PuLID inputs of an identity (magicid_core/identity/pulid_inputs.py) and what is said when a part is missing.

The encoder chain itself is held to lldacing's ApplyPulidFlux in tests/host/test_pulid_identity_host.py (it
needs timm and facexlib, which need torchvision). Here: the missing packages and the missing antelopev2 pack
are named, and build_identity stacks one PulidFace per reference photo (real photos, a seeded antelopev2 pack
through our insightface code; the face parser and the EVA-CLIP are small stand-ins of their interface, their
own parity is tested in test_face_parsing.py and test_eva_clip.py).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.identity.embedders import build_identity, make_embedder, most_prominent, pack_embedder
from magicid_core.identity.eva_clip import load_eva_clip
from magicid_core.identity.face_clip import ipadapter_pixels
from magicid_core.identity.face_parsing import PARSING_FILE, load_face_parser
from magicid_core.identity.pulid_inputs import PulidFaceEncoder, find_pulid_pack
from magicid_core.insightface import InsightFaceModelError
from magicid_core.optional import MissingPackageError
from tests.support.people import astronaut, crop_scaled

pytest.importorskip("onnx", reason="the onnx package builds the seeded packs: pip install -r requirements-test.txt")
from tests.support.insightface_layouts import ONE_FACE_DETECTOR  # noqa: E402
from tests.support.insightface_onnx_models import build_pack  # noqa: E402


def test_without_timm_the_eva_clip_says_what_to_install(tmp_path, monkeypatch):
    torch.save({"visual.patch_embed.proj.weight": torch.zeros(2)}, tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt")
    monkeypatch.setitem(sys.modules, "timm", None)            # import timm fails, as where it is not installed
    with pytest.raises(MissingPackageError, match=r"EVA-CLIP.*needs the package timm: pip install timm.*--flux"):
        load_eva_clip(str(tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt"))


def test_without_facexlib_the_parser_says_to_install_it_without_its_dependencies(tmp_path, monkeypatch):
    torch.save({"weight": torch.zeros(2)}, tmp_path / PARSING_FILE)
    monkeypatch.setitem(sys.modules, "facexlib", None)
    with pytest.raises(MissingPackageError, match=r"face parsing needs the package facexlib: "
                                                  r"pip install --no-deps facexlib .*keeps your opencv and numpy"):
        load_face_parser(str(tmp_path / PARSING_FILE))


def test_buffalo_l_does_not_stand_in_for_antelopev2(tmp_path):
    build_pack(tmp_path / "models", "buffalo_l", **ONE_FACE_DETECTOR)
    with pytest.raises(InsightFaceModelError, match=r"PuLID-Flux identities need insightface's antelopev2 pack.*"
                                                    r"antelopev2/ with scrfd_10g_bnkps.onnx and glintr100.onnx"):
        find_pulid_pack([str(tmp_path)])


class TinyEva:
    """The EvaClipVision interface at its real shapes: features(image) -> (B, 768), 5 x (B, 577, 1024)."""

    def features(self, image):
        assert image.shape[1:] == (3, 336, 336)
        pooled = image.mean(dim=(2, 3))                                  # (B, 3): depends on the picture
        return pooled.repeat(1, 256), [pooled.sum() + torch.zeros(1, 577, 1024) + k for k in range(5)]


def test_build_identity_stacks_one_pulid_face_per_reference(tmp_path):
    build_pack(tmp_path / "models", "antelopev2", **ONE_FACE_DETECTOR)
    arcface = pack_embedder(find_pulid_pack([str(tmp_path)]))
    photos = [crop_scaled(astronaut(), 0, 320, 60, 380, 256), crop_scaled(astronaut(), 20, 300, 80, 360, 256)]
    skin = lambda image: torch.zeros(1, 19, 512, 512).index_fill_(1, torch.tensor([1]), 1.0)  # noqa: E731
    encoder = PulidFaceEncoder(arcface, skin, TinyEva())
    identity = build_identity("Ann", [p.astype(np.float32) / 255 for p in photos], make_embedder("auto", [str(tmp_path)]),
                              pulid_encoder=encoder)
    pulid = identity.pulid
    assert identity.embedding_model == "arcface:antelopev2"
    assert pulid.arcface_raw.shape == (2, 512) and pulid.eva_embedding.shape == (2, 768)
    assert pulid.eva_hidden.shape == (5, 2, 577, 1024)
    for row, photo in enumerate(photos):             # each row is that photo's face, as PuLID's pixels show it
        pixels = ipadapter_pixels(photo.astype(np.float32) / 255)
        face = most_prominent(arcface.find_faces(pixels))
        assert np.array_equal(pulid.arcface_raw[row], arcface.embed_raw(pixels, face.box, face.keypoints))
    assert not np.array_equal(pulid.eva_embedding[0], pulid.eva_embedding[1])
    assert np.array_equal(pulid.eva_hidden[3, 1], pulid.eva_hidden[0, 1] + 3)
