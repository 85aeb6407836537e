"""facexlib's BiSeNet loaded by us gives what facexlib's own loader (ApplyPulidFlux's) gives, on a seeded
``parsing_bisenet.pth`` in models/facexlib (facexlib finds it there and downloads nothing)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from magicid_core.identity.face_parsing import PARSING_FILE, load_face_parser

pytestmark = pytest.mark.skipif(importlib.util.find_spec("facexlib") is None
                                or importlib.util.find_spec("torchvision") is None,
                                reason="facexlib (with torchvision) is not installed: pip install facexlib")


def test_our_parser_equals_facexlibs_loader(tmp_path):
    from facexlib.parsing import init_parsing_model
    from facexlib.parsing.bisenet import BiSeNet

    torch.manual_seed(0)
    network = BiSeNet(num_class=19)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    torch.save(network.state_dict(), tmp_path / PARSING_FILE)
    theirs = init_parsing_model("bisenet", device="cpu", model_rootpath=str(tmp_path))
    image = torch.randn(1, 3, 512, 512, generator=gen)
    with torch.no_grad():
        expected = theirs(image)[0]
    assert torch.equal(load_face_parser(str(tmp_path / PARSING_FILE))(image), expected)


def test_a_foreign_file_is_refused_by_name(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "parsing_parsenet.pth")
    with pytest.raises(ValueError, match="parsing_parsenet.pth is not facexlib's BiSeNet"):
        load_face_parser(str(tmp_path / "parsing_parsenet.pth"))
