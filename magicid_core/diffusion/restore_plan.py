"""DIIR planning: the settings, and per face the crop box, zoom and masks to restore it with.

DIIR: DDIM-inversion identity restoration (IDRestore); see docs/ARCHITECTURE.md, glossary.

Nothing here runs a model: ``plan_faces`` turns FACES and the images into one
:class:`FaceJob` per face (its feathered paste mask, the zoomed crop and the mask under
it); restore.py runs the jobs through a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import validate
from ..faces import crops
from ..faces.control_maps import draw_face68, draw_face_mesh
from ..faces.masks import ellipse_mask
from ..faces.records import Face, FaceSet
from .inversion import DEFAULT_REFINEMENT

# With a working size of at least 256 px and a context of at most 1 (crop = 3x the face),
# every face of 48 px or less (crop <= 144 px) is zoomed.
MIN_ZOOM_SIZE, MAX_CONTEXT = 256, 1.0


@dataclass
class RestoreSettings:
    steps: int = 20              # steps of the full schedule; strength keeps the last part
    strength: float = 0.5        # 0 = return the input, 1 = invert to the schedule's top
    zoom_size: int = 512         # working size: smaller crops are zoomed up to it, larger ones shrunk (1024 for SDXL)
    context: float = 0.5         # crop margin around the face, as a fraction of its size
    feather: int = 4             # extra softening of the face mask's edge, in pixels
    refinement: int = DEFAULT_REFINEMENT  # most refinement calls an inversion step may spend
    batch_size: int = 8          # at most this many faces of one working size denoised together

    def validate(self) -> None:
        """Each setting checked under the name of IDRestore's input for it."""
        validate.number("steps", self.steps, 1, integer=True)
        validate.number("strength", self.strength, 0.0, 1.0)
        validate.number("zoom_size", self.zoom_size, MIN_ZOOM_SIZE, integer=True)
        validate.number("context", self.context, 0.0, MAX_CONTEXT)
        validate.number("feather", self.feather, 0, integer=True)
        validate.number("refinement", self.refinement, 0, integer=True)
        validate.number("batch_size", self.batch_size, 1, integer=True)


@dataclass
class FaceJob:
    """One face to restore: where it is, and its crop at working size."""

    image_index: int
    face: Face
    plan: crops.CropPlan
    mask: np.ndarray            # the feathered paste mask under plan.box (plan.crop_hw), image pixels
    work: np.ndarray            # (h, w, 3) the zoomed, padded crop
    work_mask: np.ndarray       # (h, w) the paste mask under the crop
    image_hw: tuple[int, int] = (0, 0)   # (H, W) of the image the face is in

    def full_mask(self) -> np.ndarray:
        """(H, W) float32: the paste mask on the whole image (zeros outside the crop box)."""
        out = np.zeros(self.image_hw, np.float32)
        x0, y0, x1, y1 = self.plan.box
        out[y0:y1, x0:x1] = self.mask
        return out


def plan_faces(images: list[np.ndarray], faces: FaceSet, settings: RestoreSettings,
               indices: list[int] | None = None, latent_scale: int = 8) -> tuple[list[FaceJob], list[str]]:
    """The face jobs of a batch, after checking that FACES belongs to these images."""
    if len(faces) != len(images):
        raise validate.BadInput(f"faces describes {len(faces)} image(s) but image holds {len(images)}: "
                                "run FaceDetectMasks on this very image batch")
    _check_selection(faces, indices)
    jobs, messages = [], []
    for i, (image, found) in enumerate(zip(images, faces.images)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise validate.BadInput(f"image {i} has shape {image.shape}; IDRestore needs RGB (H, W, 3)")
        if (found.height, found.width) != image.shape[:2]:
            raise validate.BadInput(f"faces were found on a {found.width}x{found.height} image but image {i} is "
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


def _check_selection(faces: FaceSet, indices: list[int] | None) -> None:
    """Every selected face exists in some image (as MultiIDApply refuses a face that is not there)."""
    if indices is None:
        return
    present = {f.index for frame in faces.images for f in frame.faces}
    missing = sorted(set(indices) - present)
    if missing:
        have = f"faces 0..{max(present)}" if present else "no face at all"
        raise validate.BadInput(f"faces_to_restore {', '.join(map(str, missing))}: no such face, the images have "
                                f"{have}; give face numbers from FaceDetectMasks' preview, or 'all'")


def _face_job(i: int, image: np.ndarray, face: Face, settings: RestoreSettings, latent_scale: int):
    height, width = image.shape[:2]
    if face.mask is None:      # a record without a mask: the ellipse inscribed in its box
        mask, region = ellipse_mask(face.box, height, width)
    else:
        mask, region = face.mask, face.mask_region(height, width)
    # Feather on the mask's region grown by the radius: the blur spreads no further.
    r = max(int(settings.feather), 0)
    gx0, gy0 = max(region[0] - r, 0), max(region[1] - r, 0)
    gx1, gy1 = min(region[2] + r, width), min(region[3] + r, height)
    grown = np.zeros((max(gy1 - gy0, 0), max(gx1 - gx0, 0)), np.float32)
    grown[region[1] - gy0:region[3] - gy0, region[0] - gx0:region[2] - gx0] = mask
    grown = crops.feather(grown, settings.feather)
    support = crops.support_box(grown)
    if support is None:
        return None
    x0, y0, x1, y1 = support[0] + gx0, support[1] + gy0, support[2] + gx0, support[3] + gy0
    bx0, by0, bx1, by1 = (float(v) for v in face.box)
    region = (min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1))
    plan = crops.plan_crop(region, (height, width), settings.context, settings.zoom_size, latent_scale)
    paste_mask = _window(grown, (gx0, gy0), plan.box)
    return FaceJob(i, face, plan, paste_mask, crops.extract(image, plan), crops.extract_mask(paste_mask, plan),
                   (height, width))


def _window(mask: np.ndarray, origin: tuple[int, int], box) -> np.ndarray:
    """The part of a mask placed at ``origin`` (x, y) that lies under ``box``, zeros elsewhere."""
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    ox, oy = origin
    cx0, cy0 = max(x0, ox), max(y0, oy)
    cx1, cy1 = min(x1, ox + mask.shape[1]), min(y1, oy + mask.shape[0])
    if cx0 < cx1 and cy0 < cy1:
        out[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = mask[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox]
    return out


def landmark_hint(job: FaceJob) -> np.ndarray:
    """(h, w, 3) float 0..1: the face's MediaPipe-face landmark map (control_maps' drawing)
    at working size, for a face-landmark ControlNet; black when the face has no mesh,
    as the annotator gives when it finds no face."""
    canvas = np.zeros(job.plan.padded + (3,), np.uint8)
    if job.face.landmarks is not None:
        draw_face_mesh(canvas, crops.to_work(np.asarray(job.face.landmarks)[:, :2], job.plan))
    elif job.face.landmarks68 is not None:   # no mesh: OpenPose-face points
        draw_face68(canvas, crops.to_work(np.asarray(job.face.landmarks68), job.plan))
    return canvas.astype(np.float32) / 255


def latent_mask(work_mask: np.ndarray, latent_scale: int) -> torch.Tensor:
    """(1, 1, h/s, w/s): the mask's coverage per latent pixel, grown by one latent pixel
    so the regenerated latent covers every pixel the paste will take."""
    m = torch.from_numpy(work_mask)[None, None]
    m = F.avg_pool2d(m, latent_scale)
    return F.max_pool2d(m, 3, stride=1, padding=1)


def parse_indices(text: str) -> list[int] | None:
    """"all" or "" -> None (every face); "0, 2" -> [0, 2] (faces_to_restore, IDRestore's input)."""
    if text.strip().lower() == "all":
        return None
    return validate.number_list("faces_to_restore", text, int, example="'0, 2' or 'all'")
