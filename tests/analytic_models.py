"""Analytic stand-ins for a latent diffusion model, whose answers are known in closed form.

- ``PatchVAE``: an exact, invertible "VAE": each 8x8x3 pixel patch becomes one
  192-channel latent pixel (pixel unshuffle), scaled to -1..1.
- ``gaussian_denoiser``: the posterior mean under a Gaussian prior N(mean, var I):
  E[x0 | x] = mean + var / (var + sigma^2) * (x - mean). It knows nothing of faces.
- ``MixtureDenoiser``: the posterior mean under a Gaussian mixture with means mu_j and
  variance var each (equal weights), with x = x0 + sigma * eps:
  r_j(x) ∝ exp(-|x - mu_j|^2 / (2 (var + sigma^2)))
  E[x0 | x] = sum_j r_j * (mu_j + var / (var + sigma^2) * (x - mu_j))
  Given the clean face as one of the mu_j it "knows the clean face".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from magicid_core.restore import CallablePipeline


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


class MixtureDenoiser:
    """Posterior mean of a Gaussian mixture; counts its calls (one call = one batch)."""

    def __init__(self, means: torch.Tensor, var: float = 1e-3):
        self.means = means            # (K, C, h, w)
        self.var = var
        self.calls = 0

    def __call__(self, x, sigma, **cond):
        self.calls += 1
        s2 = _as_column(sigma, x) ** 2                              # (B, 1, 1, 1)
        diff = x[:, None] - self.means[None]                        # (B, K, C, h, w)
        d2 = diff.flatten(2).pow(2).sum(-1)                         # (B, K)
        r = torch.softmax(-d2 / (2 * (self.var + s2.flatten()[:, None])), dim=1)
        shrink = self.var / (self.var + s2)                         # (B, 1, 1, 1)
        per_component = self.means[None] + shrink[:, None] * diff   # (B, K, C, h, w)
        return (r[:, :, None, None, None] * per_component).sum(1)


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
