"""ComfyUI's CLIP_VISION as the face encoder of FaceID Plus identities (magicid_core.identity.face_clip).

Runs the model as IPAdapter_plus's ``encode_image_masked`` does: crops as float 0..1 (its
``image_to_tensor``), ``comfy.clip_vision.clip_preprocess`` at 224 px, the model called with
``intermediate_output=-2`` and its penultimate hidden states kept.
"""

from __future__ import annotations

import numpy as np
import torch

CLIP_SIZE = 224     # IPAdapter_plus's clipvision_size for every FaceID model but Kolors'


class ComfyFaceCLIPEncoder:
    """``hidden_states(crops)`` and ``negative()`` of magicid_core's FaceCLIPEncoder, on a CLIP_VISION."""

    def __init__(self, clip_vision, name: str = "CLIP vision"):
        if not hasattr(clip_vision, "model") or not hasattr(clip_vision, "patcher"):
            raise ValueError(f"clip_vision must be a CLIP_VISION (CLIPVisionLoader), got {type(clip_vision).__name__}")
        self.clip_vision, self.name = clip_vision, name

    @torch.no_grad()
    def _penultimate(self, pixels: torch.Tensor) -> np.ndarray:
        import comfy.clip_vision
        import comfy.model_management

        comfy.model_management.load_model_gpu(self.clip_vision.patcher)
        pixel_values = comfy.clip_vision.clip_preprocess(pixels.to(self.clip_vision.load_device), size=CLIP_SIZE)
        out = self.clip_vision.model(pixel_values=pixel_values.float(), intermediate_output=-2)
        return out[1].float().cpu().numpy()

    def hidden_states(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB crops -> (N, tokens, width)."""
        pixels = torch.clamp(torch.from_numpy(np.ascontiguousarray(crops)).float() / 255.0, 0, 1)
        return self._penultimate(pixels)

    def negative(self) -> np.ndarray:
        """A black 224 px image: IPAdapter_plus's default ``image_negative`` for Plus models."""
        return self._penultimate(torch.zeros([1, CLIP_SIZE, CLIP_SIZE, 3]))[0]
