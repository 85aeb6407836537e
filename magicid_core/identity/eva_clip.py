"""EVA02-CLIP-L-14-336's visual tower as PuLID-Flux reads it: a face's image embedding and 5 hidden states.

The file PuLID users have is ``EVA02_CLIP_L_336_psz14_s6B.pt`` (the whole CLIP: ``visual.*`` and the text
tower's keys), in ComfyUI's models/clip or models/text_encoders, where lldacing's loader looks for it.
timm's ``eva02_large_patch14_clip_336`` is the same network, and timm's own checkpoint filter reads
EVA-CLIP's ``visual.*`` keys (the text tower is left out); its numbers equal those of the EVA-CLIP code
the reference vendors (tests/test_eva_clip.py). The rotary tables stored in the file (16-bit in the 16-bit
file) are not read: the reference's loader drops them too (its ``RoPE`` switch, set by this model's config)
and computes them in float32, as timm does, to the same numbers. What PuLID reads of it:
- the embedding: the head's projection (1024 -> 768) of the final-normed class token;
- the hidden states: the inputs of blocks 4, 8, 12, 16 and 20, each (577, 1024): class token + 24x24 patches.
"""

from __future__ import annotations

import os

import torch

from ..optional import require

EVA_CLIP_FILE = "EVA02_CLIP_L_336_psz14_s6B.pt"
EVA_CLIP_FOLDERS = ("clip", "text_encoders")          # under ComfyUI/models
TIMM_NAME = "eva02_large_patch14_clip_336"
EMBED_DIM = 768
IMAGE_SIZE = 336
MEAN = (0.48145466, 0.4578275, 0.40821073)            # OpenAI CLIP's normalisation, as EVA-CLIP uses it
STD = (0.26862954, 0.26130258, 0.27577711)
HIDDEN_BLOCKS = (4, 8, 12, 16, 20)
PURPOSE = "PuLID-Flux's EVA-CLIP (the face's features)"


class EvaClipVision:
    """The loaded visual tower; ``features`` gives what PuLID's IDFormer reads."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 3, 336, 336) image, normalised with MEAN / STD -> (B, 768) embedding, 5 x (B, 577, 1024)."""
        net = self.model
        weight = next(net.parameters())
        x, rope = net._pos_embed(net.patch_embed(image.to(weight.device, weight.dtype)))
        x = net.norm_pre(x)
        hidden = []
        for index, block in enumerate(net.blocks):
            if index in HIDDEN_BLOCKS:
                hidden.append(x)
            x = block(x, rope=rope)
        embedding = net.head(net.fc_norm(net.norm(x)[:, 0]))
        return embedding, hidden

    def to(self, *args, **kwargs) -> "EvaClipVision":
        self.model.to(*args, **kwargs)
        return self


def normalise(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, 336, 336) RGB in 0..1 -> the tower's input."""
    mean = torch.tensor(MEAN, dtype=image.dtype, device=image.device)[:, None, None]
    std = torch.tensor(STD, dtype=image.dtype, device=image.device)[:, None, None]
    return (image - mean) / std


def eva_clip_from_state_dict(state_dict: dict, name: str = EVA_CLIP_FILE, dtype=torch.float32) -> EvaClipVision:
    """An EVA-CLIP state dict (``visual.*`` keys, text keys ignored) -> EvaClipVision through timm."""
    timm = require("timm", PURPOSE)
    from timm.models.eva import checkpoint_filter_fn

    if not any(k.startswith("visual.") for k in state_dict):
        raise ValueError(f"{name} holds no EVA-CLIP visual tower (visual.* weights): use {EVA_CLIP_FILE}")
    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=EMBED_DIM)
    try:
        model.load_state_dict(checkpoint_filter_fn(state_dict, model), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{name} is not EVA02-CLIP-L-14-336 ({str(error).splitlines()[0]}): "
                         f"use {EVA_CLIP_FILE}") from None
    return EvaClipVision(model.to(dtype))


def load_eva_clip(path: str, dtype=torch.float32) -> EvaClipVision:
    """Read the EVA-CLIP file safely (torch.load with weights_only=True, or safetensors)."""
    name = os.path.basename(path)
    require("timm", PURPOSE)            # before reading 856 MB
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state_dict = load_file(path)
    else:
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickled objects beyond tensors, a truncated download
            raise ValueError(f"cannot read {path} as plain weights ({type(error).__name__}): "
                             f"download {EVA_CLIP_FILE} again") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(state_dict, dict) and isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
    return eva_clip_from_state_dict(state_dict, name, dtype)


def missing_eva_clip_message(folders: list[str]) -> str:
    return (f"PuLID-Flux identities need {EVA_CLIP_FILE} (EVA02-CLIP-L-14-336, about 856 MB): put it into "
            f"{' or '.join(folders)} (ComfyUI's models/clip or models/text_encoders, where PuLID users keep it)")
