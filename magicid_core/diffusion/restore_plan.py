"""DIIR planning: the settings, and per face the crop box, zoom and masks to restore it with.

Nothing here runs a model: ``plan_faces`` turns FACES and the images into one
:class:`FaceJob` per face (its feathered paste mask, the zoomed crop and the mask under
it); restore.py runs the jobs through a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..faces import crops
from ..faces.control_maps import draw_face_mesh
from ..faces.records import Face, FaceSet
from .inversion import DEFAULT_REFINE_ITERS
from ..parsing import parse_number_list

# With a working size of at least 256 px and a context of at most 1 (crop = 3x the face),
# every face of 48 px or less (crop <= 144 px) is zoomed.
MIN_ZOOM_SIZE, MAX_CONTEXT = 256, 1.0


@dataclass
class RestoreSettings:
    steps: int = 20              # steps of the full schedule; strength keeps the last part
    strength: float = 0.5        # 0 = return the input, 1 = invert to the schedule's top
    zoom_size: int = 512         # crops smaller than this are zoomed up to it (1024 for SDXL)
    context: float = 0.5         # crop margin around the face, as a fraction of its size
    feather: int = 4             # extra softening of the face mask's edge, in pixels
    refine_iters: int = DEFAULT_REFINE_ITERS  # most refinement calls an inversion step may spend
    batch_size: int = 8          # at most this many faces of one working size denoised together

    def validate(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {self.strength}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.zoom_size < MIN_ZOOM_SIZE:
            raise ValueError(f"zoom size must be at least {MIN_ZOOM_SIZE} px, got {self.zoom_size}")
        if not 0 <= self.context <= MAX_CONTEXT:
            raise ValueError(f"context padding must be between 0 and {MAX_CONTEXT}, got {self.context}")
        if self.feather < 0 or self.refine_iters < 0 or self.batch_size < 1:
            raise ValueError("feather and inversion refinement must be >= 0, batch size >= 1")


@dataclass
class FaceJob:
    """One face to restore: where it is, and its crop at working size."""

    image_index: int
    face: Face
    plan: crops.CropPlan
    mask: np.ndarray            # (H, W) the feathered paste mask, image pixels
    work: np.ndarray            # (h, w, 3) the zoomed, padded crop
    work_mask: np.ndarray       # (h, w) the paste mask under the crop


def plan_faces(images: list[np.ndarray], faces: FaceSet, settings: RestoreSettings,
               indices: list[int] | None = None, latent_scale: int = 8) -> tuple[list[FaceJob], list[str]]:
    """The face jobs of a batch, after checking that FACES belongs to these images."""
    if len(faces) != len(images):
        raise ValueError(f"FACES describes {len(faces)} image(s) but IMAGE holds {len(images)}: "
                         "run FaceDetectMasks on this IMAGE batch")
    jobs, messages = [], []
    for i, (image, found) in enumerate(zip(images, faces.images)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"IMAGE {i} has shape {image.shape}; IDRestore needs RGB (H, W, 3)")
        if (found.height, found.width) != image.shape[:2]:
            raise ValueError(f"FACES were found on a {found.width}x{found.height} image but IMAGE {i} is "
                             f"{image.shape[1]}x{image.shape[0]}: run FaceDetectMasks on this image")
        chosen = [f for f in found.faces if indices is None or f.index in indices]
        if not chosen:
            messages.append(f"image {i}: no face to restore, left unchanged")
        for face in chosen:
            job = _face_job(i, image, face, settings, latent_scale)
            if job is None:
                messages.append(f"image {i} face {face.index}: its mask is empty, left unchanged")
            else:
                jobs.append(job)
    return jobs, messages


def _face_job(i: int, image: np.ndarray, face: Face, settings: RestoreSettings, latent_scale: int):
    mask = face.mask if face.mask is not None else box_ellipse_mask(face.box, image.shape[:2])
    if mask.shape != image.shape[:2]:
        raise ValueError(f"face {face.index} of image {i} has a {mask.shape[1]}x{mask.shape[0]} mask "
                         f"for a {image.shape[1]}x{image.shape[0]} image")
    mask = crops.feather(mask, settings.feather)
    support = crops.support_box(mask)
    if support is None:
        return None
    x0, y0, x1, y1 = support
    bx0, by0, bx1, by1 = (float(v) for v in face.box)
    region = (min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1))
    plan = crops.plan_crop(region, image.shape[:2], settings.context, settings.zoom_size, latent_scale)
    return FaceJob(i, face, plan, mask, crops.extract(image, plan), crops.extract_mask(mask, plan))


def box_ellipse_mask(box, image_hw) -> np.ndarray:
    """The ellipse inscribed in a face box: the mask used when a face record has none."""
    mask = np.zeros(image_hw, np.float32)
    x0, y0, x1, y1 = (float(v) for v in box)
    center = (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2)))
    axes = (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2))))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1.0, thickness=-1)
    return mask


def landmark_hint(job: FaceJob) -> np.ndarray:
    """(h, w, 3) float 0..1: the face's MediaPipe-face landmark map (control_maps' drawing)
    at working size, for a face-landmark ControlNet; black when the face has no mesh,
    as the annotator gives when it finds no face."""
    canvas = np.zeros(job.plan.padded + (3,), np.uint8)
    if job.face.landmarks is not None:
        draw_face_mesh(canvas, crops.to_work(np.asarray(job.face.landmarks)[:, :2], job.plan))
    return canvas.astype(np.float32) / 255


def latent_mask(work_mask: np.ndarray, latent_scale: int) -> torch.Tensor:
    """(1, 1, h/s, w/s): the mask's coverage per latent pixel, grown by one latent pixel
    so the regenerated latent covers every pixel the paste will take."""
    m = torch.from_numpy(work_mask)[None, None]
    m = F.avg_pool2d(m, latent_scale)
    return F.max_pool2d(m, 3, stride=1, padding=1)


def parse_indices(text: str) -> list[int] | None:
    """"all" or "" -> None (every face); "0, 2" -> [0, 2]."""
    if text.strip().lower() == "all":
        return None
    return parse_number_list(text, int, "face indices ('all', or numbers like '0, 2')")
