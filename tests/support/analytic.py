"""A denoiser whose exact answer is known: the posterior mean of a Gaussian mixture.

Data x0 ~ sum_j pi_j N(mu_j, s^2 I). A noisy latent is x = a x0 + sigma eps with
a = 1 (eps / v-prediction, ComfyUI's convention) or a = 1 - sigma (flow, CONST). Then
x | j ~ N(a mu_j, v I) with v = a^2 s^2 + sigma^2, and

    E[x0 | x] = sum_j w_j(x) (mu_j + (a s^2 / v) (x - a mu_j)),   w = softmax_j(-|x - a mu_j|^2 / 2v)

This is the ideal model for that data, so samplers and inversion can be checked
against it without any network. ``prediction`` says what the "network" outputs and
turns it into x0 the way ComfyUI's model_sampling does, so each parameterisation
goes through its own arithmetic.
"""

from __future__ import annotations

import torch

PREDICTIONS = ("eps", "v", "flow")


class GaussianMixtureDenoiser:
    """``denoise(x, sigma) -> x0`` for a Gaussian mixture, in one of three parameterisations."""

    def __init__(self, means: torch.Tensor, std: float, weights: torch.Tensor | None = None,
                 prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.means = means                     # (J, C, H, W)
        self.std = float(std)
        n = means.shape[0]
        self.log_weights = (torch.full((n,), 1.0 / n) if weights is None else weights).log()
        self.prediction = prediction

    def posterior_mean(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | x] at noise level sigma (B,), computed in float64, returned in x's dtype.

        float64 keeps the softmax of large logits smooth, so the model's own rounding
        does not stand in for the sampler error being measured.
        """
        dtype, x = x.dtype, x.double()
        sigma = sigma.double().reshape(-1, 1)                                # (B, 1)
        a = 1 - sigma if self.prediction == "flow" else torch.ones_like(sigma)
        var = a ** 2 * self.std ** 2 + sigma ** 2                            # (B, 1)
        flat = x.reshape(x.shape[0], 1, -1)                                  # (B, 1, N)
        mu = self.means.to(x).reshape(1, self.means.shape[0], -1)            # (1, J, N)
        centred = flat - a[..., None] * mu                                   # (B, J, N)
        logits = self.log_weights.to(x)[None] - centred.pow(2).sum(-1) / (2 * var)
        w = torch.softmax(logits, dim=1)[..., None]                          # (B, J, 1)
        x0 = (w * (mu + (a * self.std ** 2 / var)[..., None] * centred)).sum(1)
        return x0.reshape(x.shape).to(dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        x0 = self.posterior_mean(x, sigma)
        s = sigma.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
        if self.prediction == "v":
            # v = alpha eps - sigma_vp x0 with alpha = 1/sqrt(1+s^2), sigma_vp = s/sqrt(1+s^2),
            # read back as ComfyUI's V_PREDICTION does: x0 = x / (s^2+1) - v s / sqrt(s^2+1)
            eps = (x - x0) / s
            v = (eps - s * x0) / (s ** 2 + 1) ** 0.5
            return x / (s ** 2 + 1) - v * s / (s ** 2 + 1) ** 0.5
        # eps (x = x0 + s eps) and flow velocity (eps - x0) are both read back as x0 = x - out * s
        out = (x - x0) / s
        return x - out * s

    def sample_data(self, batch: int, generator: torch.Generator, off_data: float = 0.0) -> torch.Tensor:
        """Draws from the mixture; ``off_data`` > 0 adds that much extra noise (an off-data latent)."""
        j = torch.randint(self.means.shape[0], (batch,), generator=generator)
        spread = (self.std ** 2 + off_data ** 2) ** 0.5
        return self.means[j] + spread * torch.randn((batch,) + self.means.shape[1:], generator=generator)
