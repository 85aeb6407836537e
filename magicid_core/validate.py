"""Checks of what a user types or wires into a node, with messages that name the input,
the value and what to do.

Why a layer of its own: ComfyUI's min/max check on FLOAT widgets lets NaN through (NaN
compares false both ways), and a wired IMAGE, MASK or LATENT is never checked at all. A
NaN that slips in comes out later as an IndexError deep in a sampler, a black map or a NaN
latent. Every node therefore checks its inputs here, at its boundary, before any work.

Each check returns the value it accepted (converted: a float, a list of numbers), so a
node reads ``weight = validate.number("weight", weight, 0, 3)``. Every failure is a
``BadInput``, a ValueError whose text starts with the input's name.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


class BadInput(ValueError):
    """An input the node cannot use; the message names it, shows the value and says what to do."""


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else f"{value}"


# --- numbers --------------------------------------------------------------------------

def number(name: str, value, low: float | None = None, high: float | None = None, *,
           integer: bool = False) -> float | int:
    """``value`` as a finite number with low <= value <= high (either bound may be None)."""
    span = _span(low, high)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} is {_show(value)}, not a number: give {span}") from None
    if not math.isfinite(x):
        raise BadInput(f"{name} is {x}: give a finite number, {span}")
    if (low is not None and x < low) or (high is not None and x > high):
        raise BadInput(f"{name} is {_show(value)}, outside its range: give {span}")
    if integer:
        if x != int(x):
            raise BadInput(f"{name} is {_show(value)}: give a whole number, {span}")
        return int(x)
    return x


def _span(low, high) -> str:
    if low is not None and high is not None:
        return f"a number from {low:g} to {high:g}"
    if low is not None:
        return f"a number of at least {low:g}"
    if high is not None:
        return f"a number of at most {high:g}"
    return "a number"


def ordered(first_name: str, first: float, second_name: str, second: float, *, strict: bool = False,
            consequence: str = "") -> None:
    """first <= second (first < second when ``strict``): e.g. start_percent before end_percent."""
    if first < second or (first == second and not strict):
        return
    relation = "below" if strict else "at most"
    why = f" ({consequence})" if consequence else ""
    raise BadInput(f"{first_name} {first} is not {relation} {second_name} {second}{why}: "
                   f"set {first_name} {relation} {second_name}")


def number_list(name: str, text: str, kind=float, low: float | None = None, high: float | None = None,
                example: str = "'0, 2'") -> list | None:
    """A comma-separated list typed into a STRING widget ("0, 2, -1") -> list; blank -> None.

    A token that is not a number of ``kind``, or is NaN / infinite / outside low..high, is quoted
    in the message, with the position it holds in the list."""
    text = (text or "").replace(";", ",").strip()
    if not text:
        return None
    tokens = [t.strip() for t in text.split(",")]
    values = []
    for position, token in enumerate(tokens, start=1):
        where = f"{name}: item {position} {token!r} of {text!r}"
        if not token:
            raise BadInput(f"{where} is empty: write numbers separated by commas, like {example}")
        try:
            x = float(token)
        except ValueError:
            raise BadInput(f"{where} is not a number: write numbers separated by commas, like {example}") from None
        if not math.isfinite(x):
            raise BadInput(f"{where} is not a finite number: give {_span(low, high)}")
        if kind is int and x != int(x):
            raise BadInput(f"{where} is not a whole number: write whole numbers, like {example}")
        if (low is not None and x < low) or (high is not None and x > high):
            raise BadInput(f"{where} is outside its range: give {_span(low, high)}")
        values.append(int(x) if kind is int else float(x))
    return values


# --- tensors and arrays ---------------------------------------------------------------

def _non_finite(values) -> int:
    """How many entries are NaN or infinite (torch tensors and numpy arrays)."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point():
            return 0
        return int((~torch.isfinite(values)).sum())
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return 0
    return int((~np.isfinite(values)).sum())


def finite(name: str, values, kind: str = "values", source_hint: str = "") -> None:
    """No NaN or infinity anywhere in ``values``; the message counts them and points at their source."""
    bad = _non_finite(values)
    if bad:
        hint = source_hint or f"fix the node that makes {name} (a VAE decode in float16 often does: " \
                              "run ComfyUI with --fp32-vae)"
        raise BadInput(f"{name}: {bad} of its {int(np.prod(tuple(values.shape)))} {kind} are NaN or "
                       f"infinite; {hint}")


def _batched(name: str, value, ndim: int, kind: str, connect: str):
    """``value`` with its batch axis (``ndim`` axes in all), non-empty, or a BadInput saying what to connect."""
    if not isinstance(value, (torch.Tensor, np.ndarray)) or value.ndim not in (ndim - 1, ndim):
        shape = getattr(value, "shape", type(value).__name__)
        raise BadInput(f"{name} is not {kind} batch (got {_show(shape)}): connect {connect}")
    batch = value if value.ndim == ndim else value[None]
    b, h, w = batch.shape[:3]
    if b == 0 or h == 0 or w == 0:
        raise BadInput(f"{name} is empty ({b} {kind.split()[-1]}s of {w}x{h}): connect one with pixels")
    return batch


def image(name: str, value) -> torch.Tensor:
    """A ComfyUI IMAGE: (B, H, W, C) (or one (H, W, C)) with B, H, W >= 1, C in 1..4, finite."""
    batch = _batched(name, value, 4, "an image", "an IMAGE, e.g. from Load Image or VAE Decode")
    if not 1 <= batch.shape[3] <= 4:
        raise BadInput(f"{name} has {batch.shape[3]} channels per pixel: give gray, RGB or RGBA pictures "
                       "(IMAGE is batch, height, width, channels)")
    finite(name, batch, "pixel values")
    return batch


def mask(name: str, value) -> torch.Tensor:
    """A ComfyUI MASK: (B, H, W) (or one (H, W)) with B, H, W >= 1, finite."""
    batch = _batched(name, value, 3, "a mask", "a MASK, e.g. from MMFControlMaps or FaceDetectMasks")
    finite(name, batch, "mask values", "fix the node that makes this mask")
    return batch


def latent(name: str, value) -> torch.Tensor:
    """A ComfyUI LATENT's samples: a dict with a finite (B, C, h, w) (or 5-d video) tensor, B >= 1."""
    samples = value.get("samples") if isinstance(value, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5):
        shape = getattr(samples, "shape", type(samples).__name__)
        raise BadInput(f"{name} holds no latent batch (samples: {_show(shape)}): connect a LATENT, "
                       "e.g. from VAE Encode")
    if samples.shape[0] == 0 or min(samples.shape[2:]) == 0:
        raise BadInput(f"{name} is empty (shape {tuple(samples.shape)}): encode at least one picture")
    finite(name, samples, "latent values", "re-encode the picture, or fix the node that made this latent")
    return samples


def batch_matches(name: str, count: int, other_name: str, other_count: int, *, one_is_shared: bool = True,
                  what_to_do: str = "") -> None:
    """``count`` items for ``other_count``: equal, or one (shared by all) when ``one_is_shared``."""
    if count == other_count or (one_is_shared and count == 1):
        return
    allowed = f"1 or {other_count}" if one_is_shared and other_count != 1 else f"{other_count}"
    raise BadInput(f"{name} has {count} items but {other_name} has {other_count}: give {allowed}"
                   + (f" ({what_to_do})" if what_to_do else ""))


def same_aspect(name: str, size_hw: Sequence[int], other_name: str, other_hw: Sequence[int],
                tolerance: float = 0.02) -> None:
    """Two pictures of one aspect ratio (within ``tolerance``): one will be resized onto the other."""
    (h, w), (oh, ow) = size_hw, other_hw
    if abs((w / h) / (ow / oh) - 1.0) > tolerance:
        raise BadInput(f"{name} is {w}x{h} but {other_name} is {ow}x{oh}: their shapes differ, so one "
                       f"would be stretched onto the other; give {name} the aspect ratio of {other_name}")
