"""DIIR: repair each face of a picture and leave every other pixel exactly as it was.

Per face: crop with context, zoom small faces to the working size, encode, invert the
crop to the strength's sigma keeping the whole trajectory, denoise back while the
latent outside the face mask is pinned to that trajectory at every step (so the new
face grows out of its own surroundings: no seam), decode, shrink back and paste in
pixel space through the feathered mask (outside it the output is the input's bits).

The diffusion model is reached through a :class:`Pipeline` (encode, decode, a denoiser
per stage), so this runs on analytic models in tests and on ComfyUI's model in the node.
Which faces, their crop boxes and masks (the plan) are restore_plan.py's; this module runs it.

DIIR: DDIM-inversion identity restoration. Pinned: the latent outside the face mask is put
back on the inverted trajectory after every step. Glossary: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import torch

from ..faces import crops
from ..faces.records import FaceSet
from ..image_io import to_rgb
from .inversion import invert, partial_sigmas, regenerate
from .restore_plan import FaceJob, RestoreSettings, latent_mask, plan_faces
from ..progress import Progress

Denoise = Callable[..., torch.Tensor]            # denoise(x, sigma (B,), **cond) -> x0
Program = Callable[[Denoise, torch.Tensor], torch.Tensor]

class Pipeline:
    """What restoration needs from a latent diffusion model.

    ``run(stage, latent, sigmas, program, jobs)`` calls ``program(denoise, latent)`` with
    the denoiser for ``stage`` ("invert": plain model, no identity or control, no CFG;
    "regenerate": identity, landmark control, CFG) set up for the faces in ``jobs`` and
    the schedule ``sigmas``, and returns what the program returns.
    """

    latent_scale: int = 8
    precision: torch.dtype | None = None   # the dtype the model computes in (None: the latent's); inversion stops at its floor
    size_multiple: int = 0      # crops padded to a multiple of this (0: latent_scale); Flux: whole 2x2 patches

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


def pinned_regenerate(denoise: Denoise, trajectory: list[torch.Tensor], sigmas: torch.Tensor,
                      mask: torch.Tensor, progress: Progress | None = None, **cond) -> torch.Tensor:
    """Denoise from trajectory[0] with everything outside ``mask`` held on the trajectory;
    progress(steps done, steps) after each step (one model call).

    x_{k+1} = euler_step(x_k, sigma_k -> sigma_{k+1})
    x_{k+1} <- m * x_{k+1} + (1 - m) * trajectory[k+1]
    """
    def pin(k, x):
        return mask * x + (1 - mask) * trajectory[k + 1]

    return regenerate(denoise, trajectory[0], sigmas, progress=progress, after_step=pin, **cond)


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
    images = [to_rgb(np.asarray(im, np.float32)) for im in images]
    jobs, messages = plan_faces(images, faces, settings, indices, pipeline.size_multiple or pipeline.latent_scale)
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
    steps = len(sigmas) - 1

    def face_by_face(vae_call, batch: torch.Tensor, face_steps_done: int) -> torch.Tensor:
        """The VAE on one face per call, asking progress (Cancel) before each and after the last:
        a cancel waits for one face's VAE pass (a minute at zoom_size 2048 on a CPU), not the
        whole batch's and then the first model call's (the stages ask after each of their calls)."""
        out = []
        for item in batch.split(1):
            if progress is not None:
                progress(face_steps_done)
            out.append(vae_call(item))
        if progress is not None:
            progress(face_steps_done)
        return torch.cat(out)

    pixels = torch.from_numpy(np.stack([job.work for job in group]))
    latent = face_by_face(pipeline.encode, pixels, 0)
    mask = torch.cat([latent_mask(job.work_mask, pipeline.latent_scale) for job in group])
    held = {}

    def stage(first: int):
        """The core's progress(done, steps) of one stage -> face-steps of the batch."""
        return None if progress is None else (lambda done, _steps: progress((first + done) * len(group)))

    def do_invert(denoise, x):
        inv = invert(denoise, x, sigmas.to(x.device), refinement=settings.refinement, progress=stage(0),
                     precision=pipeline.precision)
        held["trajectory"], held["error"] = inv.trajectory, inv.reconstruction_error()
        return inv.latent

    def do_regenerate(denoise, x):
        m = mask.to(device=x.device, dtype=x.dtype)
        return pinned_regenerate(denoise, held["trajectory"], sigmas.to(x.device), m, progress=stage(steps))

    pipeline.run("invert", latent, sigmas, do_invert, group)
    regenerated = pipeline.run("regenerate", latent, sigmas, do_regenerate, group)
    restored = face_by_face(pipeline.decode, regenerated, 2 * steps * len(group))
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


def report(restored: Restored) -> str:
    """A short text of what was restored and what was left alone."""
    lines = [f"image {r.image_index} face {r.face_index}: restored in box {list(r.box)}"
             + (" (zoomed)" if r.zoomed else " (shrunk to the working size)" if r.shrunk else "") + f", inversion error {100 * r.inversion_error:.2f}%"
             for r in restored.faces]
    return "\n".join(lines + restored.messages)
