"""IDRestore against a crop-and-inpaint detailer pass, side by side in one run.

Both get the same degraded faces, the same crops, steps and strength and the same
analytic model (a Gaussian-mixture posterior mean that knows the clean face; see
tests/analytic_models.py). The detailer does what peer face detailers do: re-noise
the crop with fresh noise to the strength's sigma, denoise the whole crop, paste it
back through a feathered box. IDRestore inverts the crop, pins the non-face latent to
the inverted trajectory and pastes through the face mask.

Printed per method: model calls and CPU time per face, face PSNR against the clean
picture, changed pixels outside the face masks, and PSNR of the non-face part of the
crop: as decoded (against the input crop zoomed and shrunk the same way, so only the
model's change counts) and as pasted (against the input).

    python bench/bench_restore.py
"""

from __future__ import annotations

import math
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

from tests.support.analytic_models import PatchVAE, analytic_pipeline, gaussian_denoiser, knowing_denoiser, psnr  # noqa: E402
from magicid_core.faces import crops  # noqa: E402
from magicid_core.diffusion.inversion import euler_step, partial_sigmas  # noqa: E402
from magicid_core.faces.masks import ellipse_mask  # noqa: E402
from magicid_core.faces.records import Face, FaceSet, ImageFaces  # noqa: E402
from magicid_core.diffusion.restore import restore_faces  # noqa: E402
from magicid_core.diffusion.restore_plan import RestoreSettings, plan_faces  # noqa: E402

SETTINGS = RestoreSettings(steps=20, strength=0.6, zoom_size=256, context=0.5, feather=2, refinement=3, batch_size=1)
SIZES = (160, 320, 512)           # the astronaut at three sizes: faces of about 30, 60 and 100 px
FACE = (175, 70, 265, 180)        # her face box in the 512 px picture


class Counted:
    """Counts model calls (one per face per evaluation: these jobs run one face at a time)."""

    def __init__(self, denoise):
        self.denoise, self.calls = denoise, 0

    def __call__(self, x, sigma, **cond):
        self.calls += x.shape[0]
        return self.denoise(x, sigma, **cond)


def case(size: int, seed: int):
    clean = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    box = np.array(FACE, np.float32) * size / 512
    ellipse, (x0, y0, x1, y1) = ellipse_mask(box, size, size)
    mask = np.zeros((size, size), np.float32)
    mask[y0:y1, x0:x1] = ellipse
    mask = crops.feather(mask, 2)
    face = Face(index=0, box=box, score=1.0, keypoints=np.zeros((5, 2), np.float32), head_box=box, mask=mask)
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(clean, (0, 0), 2.0) + rng.normal(0, 0.06, clean.shape).astype(np.float32)
    degraded = np.clip(clean + mask[..., None] * (blurred - clean), 0, 1).astype(np.float32)
    return clean, degraded, FaceSet([ImageFaces(size, size, [face])])


def detailer(degraded, job, denoise, sigmas, seed):
    """The peer pass: fresh noise to sigma_0, Euler denoise of the whole crop, paste through a feathered box."""
    vae = PatchVAE()
    latent = vae.encode(torch.from_numpy(job.work)[None])
    gen = torch.Generator().manual_seed(seed)
    x = latent + float(sigmas[0]) * torch.randn(latent.shape, generator=gen)
    for k in range(len(sigmas) - 1):
        x = euler_step(denoise, x, sigmas[k], sigmas[k + 1])
    decoded = np.clip(crops.shrink(vae.decode(x)[0].numpy(), job.plan), 0, 1)
    x0, y0, x1, y1 = job.plan.box
    box_mask = np.zeros(degraded.shape[:2], np.float32)
    box_mask[y0:y1, x0:x1] = 1
    box_mask = crops.feather(box_mask, 4) * box_mask        # feathered inwards, like a detailer's crop mask
    return crops.paste(degraded, decoded, box_mask, job.plan), decoded


def idrestore(degraded, faces, denoise):
    decoded = {}

    class Keep(PatchVAE):       # keep the decoded crop to measure it before the paste
        def decode(self, latent):
            out = super().decode(latent)
            decoded["crop"] = out
            return out

    pipeline = analytic_pipeline(denoise, invert_denoise=Counted(gaussian_denoiser()))
    pipeline.decode_fn = Keep().decode
    out = restore_faces([degraded], faces, pipeline, SETTINGS).images[0]
    (job,), _ = plan_faces([degraded], faces, SETTINGS)
    crop = np.clip(crops.shrink(decoded["crop"][0].numpy(), job.plan), 0, 1)
    return out, crop, pipeline.invert_denoise.calls


def measures(out, decoded_crop, clean, degraded, job):
    x0, y0, x1, y1 = job.plan.box
    face = job.full_mask() > 0.5
    outside = job.full_mask() == 0
    crop_outside = outside[y0:y1, x0:x1]
    resampled = crops.shrink(job.work, job.plan)     # the input crop through zoom and shrink alone
    return {
        "face_psnr": psnr(out[face], clean[face]),
        "changed_outside": int((out != degraded).any(axis=2)[outside].sum()),
        "crop_bg_psnr_decoded": psnr(decoded_crop[crop_outside], resampled[crop_outside]),
        "crop_bg_psnr_pasted": psnr(out[y0:y1, x0:x1][crop_outside], degraded[y0:y1, x0:x1][crop_outside]),
    }


REPEATS = 3   # rounds, the two methods interleaved; time = CPU time of the fastest round (shared machine)


def timed_pair(first, second):
    """Run both REPEATS times, alternating; the least CPU ms of each and their last results."""
    best, results = [math.inf, math.inf], [None, None]
    for _ in range(REPEATS):
        for i, run in enumerate((first, second)):
            t = time.process_time()
            results[i] = run()
            best[i] = min(best[i], 1000 * (time.process_time() - t))
    return best, results


def main():
    cpu_bench(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
              "the analytic model and PatchVAE of tests/support, and the crops (numpy, opencv), run on the CPU")
    torch.manual_seed(0)
    print(f"settings: steps {SETTINGS.steps}, strength {SETTINGS.strength}, zoom {SETTINGS.zoom_size}, "
          f"inversion refinement {SETTINGS.refinement}; analytic Gaussian-mixture model, PatchVAE\n")
    head = f"{'face':>10} {'method':>10} {'calls':>6} {'CPU ms':>8} {'face PSNR':>10} {'changed px outside':>19} " \
           f"{'crop-bg PSNR decoded':>21} {'pasted':>8}"
    print(head)
    for n, size in enumerate(SIZES):
        clean, degraded, faces = case(size, n)
        (job,), _ = plan_faces([degraded], faces, SETTINGS)
        sigmas = partial_sigmas(analytic_pipeline(None).sigmas(SETTINGS.steps), SETTINGS.strength)
        label = f"{int(job.face.width)}px{' z' if job.plan.zoomed else ''}"

        ours_model, theirs_model = Counted(knowing_denoiser(clean, job)), Counted(knowing_denoiser(clean, job))
        (ms_ours, ms_theirs), (ours, theirs) = timed_pair(lambda: idrestore(degraded, faces, ours_model),
                                                          lambda: detailer(degraded, job, theirs_model, sigmas, seed=n))
        out, crop, invert_calls = ours
        ours = dict(measures(out, crop, clean, degraded, job), calls=invert_calls + ours_model.calls // REPEATS,
                    ms=ms_ours)
        out, crop = theirs
        theirs = dict(measures(out, crop, clean, degraded, job), calls=theirs_model.calls // REPEATS, ms=ms_theirs)

        for name, r in (("IDRestore", ours), ("detailer", theirs)):
            print(f"{label:>10} {name:>10} {r['calls']:>6} {r['ms']:>8.1f} {r['face_psnr']:>10.2f} "
                  f"{r['changed_outside']:>19} {fmt(r['crop_bg_psnr_decoded']):>21} {fmt(r['crop_bg_psnr_pasted']):>8}")
        face = job.full_mask() > 0.5
        print(f"{'':>10} {'ratio':>10} {ours['calls'] / theirs['calls']:>6.2f} {ours['ms'] / theirs['ms']:>8.2f}"
              f"   (IDRestore / detailer: calls, time; the degraded face: {psnr(degraded[face], clean[face]):.2f} dB)")


def fmt(v: float) -> str:
    return "exact" if math.isinf(v) else f"{v:.2f}"


if __name__ == "__main__":
    main()
