"""The face PuLID-Flux's EVA-CLIP sees, prepared as lldacing's ApplyPulidFlux prepares it (align mode 1).

1. Align: the 5 keypoints onto insightface's ArcFace template at 512 px, by insightface's ``estimate_norm``
   rule for a size that is not a multiple of 112 (template x size/128, shifted 8 x size/128 to the right),
   border colour (135, 133, 132) in the reference's BGR, i.e. (132, 133, 135) RGB.
2. Keep the face: a face parser (facexlib's BiSeNet, CelebAMask-HQ labels) on the ImageNet-normalised crop;
   background, ears, earring, neck, necklace, cloth and hat (labels 0, 7, 8, 9, 14, 15, 16, 18) become white,
   the rest the crop in grey (0.299 R + 0.587 G + 0.114 B).
3. Resize to 336 (the reference uses nearest on the CPU and MPS, bicubic on CUDA) and normalise for EVA-CLIP.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..insightface.arcface import arcface_template, similarity_transform
from .eva_clip import IMAGE_SIZE, normalise

ALIGN_SIZE = 512
BORDER_RGB = (132, 133, 135)
BACKGROUND_LABELS = (0, 7, 8, 9, 14, 15, 16, 18)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# parse(image (1, 3, 512, 512) ImageNet-normalised) -> (1, labels, 512, 512) logits
FaceParser = Callable[[torch.Tensor], torch.Tensor]


def align_for_pulid(image_rgb: np.ndarray, keypoints: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 RGB crop of the face, keypoints on the template."""
    matrix = similarity_transform(np.asarray(keypoints, np.float32), arcface_template(size))
    return cv2.warpAffine(image_rgb, matrix, (size, size), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB)


def face_only(aligned_rgb: np.ndarray, parse: FaceParser) -> torch.Tensor:
    """(1, 3, H, W) float in 0..1: the face in grey on white (step 2)."""
    face = torch.from_numpy(np.ascontiguousarray(aligned_rgb)).float().div(255).permute(2, 0, 1)[None]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    labels = parse((face - mean) / std).argmax(dim=1, keepdim=True)
    background = torch.isin(labels, torch.tensor(BACKGROUND_LABELS))
    grey = (0.299 * face[:, 0:1] + 0.587 * face[:, 1:2] + 0.114 * face[:, 2:3]).repeat(1, 3, 1, 1)
    return torch.where(background, torch.ones_like(face), grey)


def eva_input(face: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """(1, 3, 336, 336) EVA-CLIP input from face_only's picture (step 3)."""
    resized = F.interpolate(face, size=(IMAGE_SIZE, IMAGE_SIZE), mode=mode,
                            **({} if mode == "nearest" else {"align_corners": False}))
    return normalise(resized)
