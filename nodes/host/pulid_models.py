"""The models behind PuLID-Flux identities, placed as ComfyUI places models: the EVA-CLIP (MAGICID_EVA_CLIP,
from MagicIDEvaClipLoader) in a ModelPatcher that ComfyUI loads onto its device and unloads when it needs
the memory; facexlib's face parser (53 MB) from models/facexlib, read once and moved in and out with it."""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from ...magicid_core.identity.eva_clip import EvaClipVision, load_eva_clip
from ...magicid_core.identity.face_parsing import FaceParser, load_face_parser
from ...magicid_core.identity.pulid_inputs import find_pulid_pack, pulid_face_encoder
from .folders import eva_clip_path, face_parser_path, missing_eva_clip


class ComfyEvaClip:
    """MAGICID_EVA_CLIP: EVA02-CLIP-L-14-336's visual tower and the ModelPatcher ComfyUI manages it by."""

    def __init__(self, vision: EvaClipVision, name: str, load_device=None):
        import comfy.model_management
        import comfy.model_patcher

        self.vision, self.name = vision, name
        self.patcher = comfy.model_patcher.ModelPatcher(
            vision.model, load_device=load_device or comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device())


def eva_clip_dtype(device):
    """The 16-bit dtype ComfyUI would run a model in on ``device`` (bf16 where it is supported, else fp16),
    as the reference runs EVA-CLIP in the Flux model's dtype: 0.6 GB of weights instead of 1.2 GB. float32
    on the CPU (16-bit matrix products are slow there) and where ComfyUI keeps float32."""
    import comfy.model_management as mm

    if mm.should_use_bf16(device):
        return torch.bfloat16
    if mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


def load_eva_clip_file(name: str) -> ComfyEvaClip:
    import comfy.model_management

    path = eva_clip_path(name)
    if path is None:
        raise FileNotFoundError(missing_eva_clip(name))
    device = comfy.model_management.get_torch_device()
    return ComfyEvaClip(load_eva_clip(path, eva_clip_dtype(device)), name, device)


@functools.lru_cache(maxsize=1)
def _face_parser(path: str, modified: float) -> FaceParser:   # keyed by the file's time: a new file is read
    return load_face_parser(path)


@contextlib.contextmanager
def pulid_encoding(eva_clip, insightface_roots: list[str]):
    """The PulidFaceEncoder for IdentityFromImages while its models sit on ComfyUI's device; None without
    an EVA-CLIP. What is missing is named before anything is loaded: the antelopev2 pack, the parser file."""
    if eva_clip is None:
        yield None
        return
    if not isinstance(eva_clip, ComfyEvaClip):
        raise ValueError(f"eva_clip must come from MagicIDEvaClipLoader (MAGICID_EVA_CLIP), got "
                         f"{type(eva_clip).__name__}")
    import comfy.model_management

    pack = find_pulid_pack(insightface_roots)
    path = face_parser_path()
    parser = _face_parser(path, os.path.getmtime(path))
    comfy.model_management.load_models_gpu([eva_clip.patcher], force_full_load=True)
    parser.to(eva_clip.patcher.load_device)
    try:
        yield pulid_face_encoder(pack, parser, eva_clip.vision)
    finally:
        parser.to(eva_clip.patcher.offload_device)
