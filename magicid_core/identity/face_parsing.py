"""Face parsing for PuLID-Flux identities: facexlib's BiSeNet, as ApplyPulidFlux runs it.

The weights are ``parsing_bisenet.pth`` in ComfyUI's models/facexlib (where PuLID users have them; facexlib
would otherwise download them). The network is facexlib's own class, so its labels are the reference's
(CelebAMask-HQ's 19); the file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os

import torch

from ..optional import require

PARSING_FILE = "parsing_bisenet.pth"
LABELS = 19


class FaceParser:
    """parse(image (B, 3, H, W) ImageNet-normalised) -> (B, 19, H, W) logits (BiSeNet's first output), on the
    CPU; the network runs where it sits (``to``)."""

    def __init__(self, network: torch.nn.Module):
        self.network = network.eval()

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        weight = next(self.network.parameters())
        return self.network(image.to(weight.device, weight.dtype))[0].float().cpu()

    def to(self, *args, **kwargs) -> "FaceParser":
        self.network.to(*args, **kwargs)
        return self


def load_face_parser(path: str) -> FaceParser:
    require("facexlib", "PuLID-Flux's face parsing")
    from facexlib.parsing.bisenet import BiSeNet

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download, or pickled objects beyond tensors
        raise ValueError(f"cannot read {path} as plain weights ({type(error).__name__}): "
                         f"download {PARSING_FILE} again") from None
    network = BiSeNet(num_class=LABELS)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{os.path.basename(path)} is not facexlib's BiSeNet ({str(error).splitlines()[0]}): "
                         f"use {PARSING_FILE}") from None
    return FaceParser(network)


def missing_parser_message(folders: list[str]) -> str:
    return (f"PuLID-Flux identities need facexlib's {PARSING_FILE} (face parsing, 53 MB): put it into "
            f"{' or '.join(folders)} (ComfyUI's models/facexlib, where PuLID users keep it)")
