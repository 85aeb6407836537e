"""facexlib's BiSeNet loaded by us gives what facexlib's own loader (ApplyPulidFlux's) gives, on a seeded
``parsing_bisenet.pth`` in models/facexlib (facexlib finds it there and downloads nothing)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from magicid_core.identity.face_parsing import PARSING_FILE, load_face_parser
from tests.support.pulid_layouts import parsing_bisenet_state

pytestmark = pytest.mark.skipif(importlib.util.find_spec("facexlib") is None
                                or importlib.util.find_spec("torchvision") is None,
                                reason="facexlib (with torchvision) is not installed: python install.py --flux "
                                       "(or pip install --no-deps facexlib)")


def test_our_parser_equals_facexlibs_loader(tmp_path):
    from facexlib.parsing import init_parsing_model

    torch.save(parsing_bisenet_state(seed=0), tmp_path / PARSING_FILE)
    theirs = init_parsing_model("bisenet", device="cpu", model_rootpath=str(tmp_path))
    image = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(image)[0]
    assert torch.equal(load_face_parser(str(tmp_path / PARSING_FILE))(image), expected)


def test_a_foreign_file_is_refused_by_name(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "parsing_parsenet.pth")
    with pytest.raises(ValueError, match="parsing_parsenet.pth is not facexlib's BiSeNet"):
        load_face_parser(str(tmp_path / "parsing_parsenet.pth"))
