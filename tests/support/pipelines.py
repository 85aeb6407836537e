"""A restoration pipeline from plain callables, for tests and benchmarks on analytic models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from magicid_core.diffusion.restore import Denoise, Pipeline


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
