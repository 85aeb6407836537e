"""Which model family a MODEL is, as every node that takes one checks it (dit.py's detection)."""

from __future__ import annotations

from ...magicid_core import validate
from .dit import FLUX, NOT_YET, UNET, model_family

__all__ = ["FLUX", "UNET", "check_family"]


def check_family(model, node: str) -> str:
    """UNET (SD1.5 / SDXL) or FLUX (Flux.1); any other family is refused with its users' name for it."""
    try:
        return model_family(model)
    except ValueError:
        name = type(model.model).__name__
        raise validate.BadInput(f"{node} works on SD1.5 / SDXL and Flux.1 (dev, schnell) models; this model is "
                                f"{NOT_YET.get(name, name)}, which it does not support yet") from None

