"""Conversions between ComfyUI values and the numpy / torch layouts of magicid_core.

ComfyUI's IMAGE is float BHWC in 0..1, MASK is float BHW; the core works on one
image at a time as HxWx3 uint8 (analysis) or float arrays. The pack's own types (FACES,
IDENTITIES) are described in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import numpy as np
import torch

CATEGORY = "MagicID"
FACES = "FACES"  # the custom type carrying magicid_core.FaceSet between nodes
IDENTITIES = "IDENTITIES"  # a list of magicid_core.Identity, one per person
PERSON_PROMPTS = "PERSON_PROMPTS"  # a list of magicid_core.diffusion.PersonPrompt, one per person
EVA_CLIP = "MAGICID_EVA_CLIP"  # host/pulid_models.ComfyEvaClip: EVA-CLIP for PuLID-Flux identities


def images_to_numpy(image: torch.Tensor) -> list[np.ndarray]:
    """IMAGE (B, H, W, C) float -> list of (H, W, C) float32 arrays."""
    if image.ndim == 3:  # a single image without batch dimension
        image = image[None]
    return [im.detach().cpu().float().numpy() for im in image]


def numpy_to_images(arrays: list[np.ndarray]) -> torch.Tensor:
    """List of (H, W, 3) float or uint8 arrays of one size -> IMAGE (B, H, W, 3).

    Each image is converted straight into its slot of the batch by torch (uint8 / 255 in
    float32, the same values as numpy's), with no float copy per image and no stacking:
    a batch of 4096 px maps is written once."""
    arrays = [np.asarray(a) for a in arrays]
    if not arrays or len({a.shape for a in arrays}) > 1:
        raise ValueError(f"an IMAGE batch needs images of one size, got shapes {[a.shape for a in arrays]}")
    out = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.float32)
    for a, slot in zip(arrays, out):
        a = np.ascontiguousarray(a)
        slot.copy_(torch.from_numpy(a if a.flags.writeable else a.copy()))   # torch warns on read-only arrays
        if a.dtype == np.uint8:
            slot.div_(255.0)
    return out


def numpy_to_masks(masks: np.ndarray, height: int, width: int) -> torch.Tensor:
    """(N, H, W) array -> MASK (N, H, W); an empty stack becomes one empty mask."""
    if len(masks) == 0:
        return torch.zeros((1, height, width), dtype=torch.float32)
    return torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))
