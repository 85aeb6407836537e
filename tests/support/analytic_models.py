"""Analytic stand-ins for a latent diffusion model, whose answers are known in closed form.

- ``PatchVAE``: an exact, invertible "VAE": each 8x8x3 pixel patch becomes one
  192-channel latent pixel (pixel unshuffle), scaled to -1..1.
- ``gaussian_denoiser``: the posterior mean under a Gaussian prior N(mean, var I):
  E[x0 | x] = mean + var / (var + sigma^2) * (x - mean). It knows nothing of faces.
- ``knowing_denoiser``: the posterior mean of a Gaussian mixture
  (``tests/support/analytic.py``) whose components are the clean face crop and two wrong
  faces: a model that "knows the clean face".
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from magicid_core.faces import crops
from tests.support.analytic import GaussianMixtureDenoiser
from tests.support.pipelines import CallablePipeline
from magicid_core.diffusion.restore_plan import FaceJob


class PatchVAE:
    def __init__(self, scale: int = 8):
        self.scale = scale

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() * 2 - 1
        return F.pixel_unshuffle(x, self.scale)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(latent, self.scale)
        return ((x + 1) / 2).permute(0, 2, 3, 1)


def _as_column(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(x).reshape(-1, *([1] * (x.ndim - 1)))


def gaussian_denoiser(mean: float = 0.0, var: float = 1.0):
    def denoise(x, sigma, **cond):
        s2 = _as_column(sigma, x) ** 2
        return mean + var / (var + s2) * (x - mean)
    return denoise


def knowing_denoiser(clean: np.ndarray, job: FaceJob) -> GaussianMixtureDenoiser:
    """A model that knows the clean face of ``job``: the Gaussian mixture of the clean crop
    and two wrong faces (the face mirrored, the camera man) in the same surroundings,
    each with std 0.03, in PatchVAE's latent space at the crop's working size."""
    work = crops.extract(clean, job.plan)
    wm = job.work_mask[..., None]
    other = cv2.resize(skimage.data.camera(), work.shape[1::-1]).astype(np.float32)[..., None] / 255
    options = [work, work[:, ::-1] * wm + work * (1 - wm), other * wm + work * (1 - wm)]
    means = PatchVAE().encode(torch.from_numpy(np.stack(options).astype(np.float32)))
    return GaussianMixtureDenoiser(means, std=0.03)


def karras_sigmas(steps: int, sigma_min: float = 0.03, sigma_max: float = 14.6, rho: float = 7.0):
    """The Karras et al. schedule, descending, with a final 0 (as ComfyUI's "karras")."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])


def analytic_pipeline(denoise, invert_denoise=None, scale: int = 8) -> CallablePipeline:
    vae = PatchVAE(scale)
    return CallablePipeline(vae.encode, vae.decode, denoise, karras_sigmas,
                            invert_denoise=invert_denoise, latent_scale=scale)


def psnr(a, b) -> float:
    mse = float(((torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
