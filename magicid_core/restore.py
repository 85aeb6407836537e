"""DIIR: repair each face of a picture and leave every other pixel exactly as it was.

Per face: crop with context, zoom small faces to the working size, encode, invert the
crop to the strength's sigma keeping the whole trajectory, denoise back while the
latent outside the face mask is pinned to that trajectory at every step (so the new
face grows out of its own surroundings: no seam), decode, shrink back and paste in
pixel space through the feathered mask (outside it the output is the input's bits).

The diffusion model is reached through a :class:`Pipeline` (encode, decode, a denoiser
per stage), so this runs on analytic models in tests and on ComfyUI's model in the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import crops, validate
from .control_maps import draw_face_mesh
from .inversion import DEFAULT_REFINE_ITERS, euler_step, invert, partial_sigmas
from .faces import Face, FaceSet
from .progress import Progress

Denoise = Callable[..., torch.Tensor]            # denoise(x, sigma (B,), **cond) -> x0
Program = Callable[[Denoise, torch.Tensor], torch.Tensor]

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
    refine_iters: int = DEFAULT_REFINE_ITERS  # most refinement calls an inversion step may spend
    batch_size: int = 8          # at most this many faces of one working size denoised together

    def validate(self) -> None:
        """Each setting checked under the name of IDRestore's input for it."""
        validate.number("steps", self.steps, 1, integer=True)
        validate.number("strength", self.strength, 0.0, 1.0)
        validate.number("zoom_size", self.zoom_size, MIN_ZOOM_SIZE, integer=True)
        validate.number("context", self.context, 0.0, MAX_CONTEXT)
        validate.number("feather", self.feather, 0, integer=True)
        validate.number("refinement", self.refine_iters, 0, integer=True)
        validate.number("batch_size", self.batch_size, 1, integer=True)


class Pipeline:
    """What restoration needs from a latent diffusion model.

    ``run(stage, latent, sigmas, program, jobs)`` calls ``program(denoise, latent)`` with
    the denoiser for ``stage`` ("invert": plain model, no identity or control, no CFG;
    "regenerate": identity, landmark control, CFG) set up for the faces in ``jobs`` and
    the schedule ``sigmas``, and returns what the program returns.
    """

    latent_scale: int = 8

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:      # (B, H, W, 3) 0..1 -> (B, C, h, w)
        raise NotImplementedError

    def decode(self, latent: torch.Tensor) -> torch.Tensor:      # (B, C, h, w) -> (B, H, W, 3)
        raise NotImplementedError

    def sigmas(self, steps: int) -> torch.Tensor:                # full schedule, descending to 0
        raise NotImplementedError

    def run(self, stage: str, latent: torch.Tensor, sigmas: torch.Tensor, program: Program,
            jobs: list) -> torch.Tensor:
        raise NotImplementedError

    def batch_limit(self, latent_hw: tuple[int, int]) -> int:
        """How many faces of this latent size one model call can take (memory)."""
        return 1 << 30

    def skip_reason(self, job: "FaceJob") -> str | None:
        """Why this face should be left alone (e.g. no identity matched it), or None."""
        return None


@dataclass
class CallablePipeline(Pipeline):
    """A pipeline from plain callables; ``invert_denoise`` defaults to ``denoise``."""

    encode_fn: Callable[[torch.Tensor], torch.Tensor]
    decode_fn: Callable[[torch.Tensor], torch.Tensor]
    denoise: Denoise
    sigmas_fn: Callable[[int], torch.Tensor]
    invert_denoise: Denoise | None = None
    latent_scale: int = 8

    def encode(self, pixels):
        return self.encode_fn(pixels)

    def decode(self, latent):
        return self.decode_fn(latent)

    def sigmas(self, steps):
        return self.sigmas_fn(steps)

    def run(self, stage, latent, sigmas, program, jobs):
        denoise = self.invert_denoise if stage == "invert" and self.invert_denoise else self.denoise
        return program(denoise, latent)


@dataclass
class FaceJob:
    """One face to restore: where it is, and its crop at working size."""

    image_index: int
    face: Face
    plan: crops.CropPlan
    mask: np.ndarray            # (H, W) the feathered paste mask, image pixels
    work: np.ndarray            # (h, w, 3) the zoomed, padded crop
    work_mask: np.ndarray       # (h, w) the paste mask under the crop


@dataclass
class FaceResult:
    image_index: int
    face_index: int
    box: tuple[int, int, int, int]
    zoomed: bool
    before: np.ndarray          # the crop as it was (crop pixels)
    after: np.ndarray           # the crop as pasted (crop pixels)
    inversion_error: float      # estimated relative RMSE of regenerating the crop from its inversion
    shrunk: bool = False        # the crop was larger than the working size and shrunk to it


@dataclass
class Restored:
    images: list[np.ndarray]
    faces: list[FaceResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


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
        raise validate.BadInput(f"restore_faces {', '.join(map(str, missing))}: no such face, the images have "
                                f"{have}; give face numbers from FaceDetectMasks' preview, or 'all'")


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


def pinned_regenerate(denoise: Denoise, trajectory: list[torch.Tensor], sigmas: torch.Tensor,
                      mask: torch.Tensor, progress: Progress | None = None, **cond) -> torch.Tensor:
    """Denoise from trajectory[0] with everything outside ``mask`` held on the trajectory;
    progress(steps done, steps) after each step (one model call).

    x_{k+1} = euler_step(x_k, sigma_k -> sigma_{k+1})
    x_{k+1} <- m * x_{k+1} + (1 - m) * trajectory[k+1]
    """
    x = trajectory[0]
    for k in range(len(sigmas) - 1):
        x = euler_step(denoise, x, sigmas[k], sigmas[k + 1], **cond)
        x = mask * x + (1 - mask) * trajectory[k + 1]
        if progress is not None:
            progress(k + 1, len(sigmas) - 1)
    return x


def restore_faces(images: list[np.ndarray], faces: FaceSet, pipeline: Pipeline, settings: RestoreSettings,
                  indices: list[int] | None = None, progress: Progress | None = None) -> Restored:
    """Restore the faces of ``images`` (each (H, W, 3) float32 in 0..1; gray and RGBA
    come back as RGB).

    Returns new images (bit-identical to the input wherever the feathered face
    masks are 0), one result per restored face, and messages about what was skipped.
    ``progress(done, total)`` counts face-steps of inversion and regeneration; it is also
    called between the model calls of a step (see progress.py), so raising from it stops
    the work within one call.
    """
    settings.validate()
    images = [_as_rgb(np.asarray(im, np.float32)) for im in images]
    jobs, messages = plan_faces(images, faces, settings, indices, pipeline.latent_scale)
    skipped = {id(job): pipeline.skip_reason(job) for job in jobs}
    messages += [f"image {job.image_index} face {job.face.index}: {skipped[id(job)]}, left unchanged"
                 for job in jobs if skipped[id(job)]]
    jobs = [job for job in jobs if not skipped[id(job)]]
    out = [im.copy() for im in images]
    sigmas = pipeline.sigmas(settings.steps)
    sigmas = partial_sigmas(sigmas, settings.strength) if settings.strength > 0 else sigmas[-1:]
    steps = len(sigmas) - 1
    if steps < 1 or not jobs:
        if steps < 1:
            messages.append(f"strength {settings.strength} keeps no step of {settings.steps}: images returned unchanged")
        return Restored(out, [], messages)

    total, done = 2 * steps * len(jobs), 0
    results = []
    for group in _groups(jobs, settings.batch_size, pipeline):
        # face-steps of this group so far -> the whole batch's count
        group_progress = None if progress is None else (lambda n, before=done: progress(before + n, total))
        after, inversion_error = _restore_group(pipeline, group, sigmas, settings, group_progress)
        done += 2 * steps * len(group)
        for job, work in zip(group, after):
            crop = np.clip(crops.shrink(work, job.plan), 0.0, 1.0)
            x0, y0, x1, y1 = job.plan.box
            before = images[job.image_index][y0:y1, x0:x1].copy()
            out[job.image_index] = crops.paste(out[job.image_index], crop, job.mask, job.plan)
            results.append(FaceResult(job.image_index, job.face.index, job.plan.box, job.plan.zoomed,
                                      before, out[job.image_index][y0:y1, x0:x1].copy(), inversion_error,
                                      job.plan.shrunk))
    return Restored(out, results, messages)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Gray (H, W) / (H, W, 1) / gray+alpha -> 3 equal channels; RGBA -> RGB (alpha dropped).
    Values are kept as they are (no quantisation), so unchanged pixels keep their bits."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim == 3 and image.shape[2] in (1, 2):
        return np.repeat(image[..., :1], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    return image


def _groups(jobs: list[FaceJob], batch_size: int, pipeline: Pipeline):
    """Jobs of one working size, as many at a time as ``batch_size`` and memory allow."""
    by_size: dict[tuple[int, int], list[FaceJob]] = {}
    for job in jobs:
        by_size.setdefault(job.plan.padded, []).append(job)
    for (h, w), same in by_size.items():
        n = max(1, min(batch_size, pipeline.batch_limit((h // pipeline.latent_scale, w // pipeline.latent_scale))))
        for start in range(0, len(same), n):
            yield same[start:start + n]


@torch.no_grad()
def _restore_group(pipeline: Pipeline, group: list[FaceJob], sigmas: torch.Tensor,
                   settings: RestoreSettings, progress) -> tuple[list[np.ndarray], float]:
    """Encode, invert, pinned-regenerate and decode a batch of same-size crops; the
    working pictures and the inversion's estimated error (worst face of the batch).
    ``progress(n)``: n face-steps of this batch done (inversion, then regeneration)."""
    pixels = torch.from_numpy(np.stack([job.work for job in group]))
    latent = pipeline.encode(pixels)
    mask = torch.cat([latent_mask(job.work_mask, pipeline.latent_scale) for job in group])
    held = {}
    steps = len(sigmas) - 1

    def stage(first: int):
        """The core's progress(done, steps) of one stage -> face-steps of the batch."""
        return None if progress is None else (lambda done, _steps: progress((first + done) * len(group)))

    def do_invert(denoise, x):
        inv = invert(denoise, x, sigmas.to(x.device), refine_iters=settings.refine_iters, progress=stage(0))
        held["trajectory"], held["error"] = inv.trajectory, inv.reconstruction_error()
        return inv.latent

    def do_regenerate(denoise, x):
        m = mask.to(device=x.device, dtype=x.dtype)
        return pinned_regenerate(denoise, held["trajectory"], sigmas.to(x.device), m, progress=stage(steps))

    pipeline.run("invert", latent, sigmas, do_invert, group)
    restored = pipeline.decode(pipeline.run("regenerate", latent, sigmas, do_regenerate, group))
    if not torch.isfinite(restored).all():
        raise ValueError("the model or the VAE gave NaN or Inf for a face; try a lower cfg, or run "
                         "the VAE in float32 (ComfyUI's --fp32-vae)")
    return [a for a in restored.detach().cpu().float().numpy()], held["error"]


def side_by_side(before: np.ndarray, after: np.ndarray, size: int = 256) -> np.ndarray:
    """(size, 2 * size, 3) preview: the crop before | after, each fitted into a square."""
    return np.concatenate([_fit_square(before, size), _fit_square(after, size)], axis=1)


def _fit_square(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = cv2.resize(np.ascontiguousarray(image, np.float32), (nw, nh),
                                                   interpolation=cv2.INTER_AREA).reshape(nh, nw, -1)[..., :3]
    return out


def parse_indices(text: str) -> list[int] | None:
    """"all" or "" -> None (every face); "0, 2" -> [0, 2] (restore_faces, IDRestore's input)."""
    if text.strip().lower() == "all":
        return None
    return validate.number_list("restore_faces", text, int, example="'0, 2' or 'all'")


def report(restored: Restored) -> str:
    """A short text of what was restored and what was left alone."""
    lines = [f"image {r.image_index} face {r.face_index}: restored in box {list(r.box)}"
             + (" (zoomed)" if r.zoomed else " (shrunk to the working size)" if r.shrunk else "") + f", inversion error {100 * r.inversion_error:.2f}%"
             for r in restored.faces]
    return "\n".join(lines + restored.messages)
