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
import re
from typing import Sequence

import numpy as np
import torch


LATENT_LIMIT = 1e4   # VAE latents are tens at most (SD, SDXL, Flux); noise latents are a few sigmas


class BadInput(ValueError):
    """An input the node cannot use; the message names it, shows the value and says what to do."""


def excerpt(value, limit: int = 40) -> str:
    """A short quote of what a user gave: the whole of a short value, else its start and its length.

    A message never repeats a whole input: a pasted 400 kB string would make a 400 kB error."""
    text = value if isinstance(value, str) else f"{value}"
    quote = repr if isinstance(value, str) else str
    if len(text) <= limit:
        return quote(text)
    return f"{quote(text[:limit])}... ({len(text)} characters)"


def _show(value) -> str:
    return excerpt(value)


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
        # written only for a bad token, quoting excerpts: a whole 400 kB text quoted for each of its
        # tokens took 89 s and made a 400 kB message
        where = lambda: (   # noqa: E731
            f"{name}: item {position} {excerpt(token, 20)} of {excerpt(text)}")
        if not token:
            raise BadInput(f"{where()} is empty: write numbers separated by commas, like {example}")
        try:
            x = float(token)
        except ValueError:
            raise BadInput(f"{where()} is not a number: write numbers separated by commas, like {example}") from None
        if not math.isfinite(x):
            raise BadInput(f"{where()} is not a finite number: give {_span(low, high)}")
        if kind is int and x != int(x):
            raise BadInput(f"{where()} is not a whole number: write whole numbers, like {example}")
        if (low is not None and x < low) or (high is not None and x > high):
            raise BadInput(f"{where()} is outside its range: give {_span(low, high)}")
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
    largest = float(samples.abs().max())
    if largest > LATENT_LIMIT:   # x1e30 latents made the model return NaN, which was then blamed on the model
        raise BadInput(f"{name} reaches {largest:.3g}, far beyond any VAE's latents (at most about {LATENT_LIMIT:g}): "
                       "re-encode the picture, or fix the node that made this latent")
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


# --- values other packs make (SEGS, POSE_KEYPOINT, embeddings) and typed prompt weights ---------
# They arrive as Python lists, numpy arrays or tensors of any shape and dtype; each check turns
# them into plain numpy values or says, by the input's name and the item's place, what is wrong.

def numbers(name: str, value, count: int | None = None, what: str = "numbers") -> np.ndarray:
    """``value`` (list, array, tensor) as a flat float64 array of finite numbers, ``count`` of them when given."""
    if value is None:
        raise BadInput(f"{name} is missing: give {count or 'some'} {what}")
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise BadInput(f"{name} is {_show(value)}, not {what}: give {count or 'a list of'} numbers") from None
    if count is not None and array.size != count:
        raise BadInput(f"{name} has {array.size} numbers ({_show(array.tolist())}): give {count}, {what}")
    if not np.isfinite(array).all():
        raise BadInput(f"{name} holds NaN or infinite values ({_show(array.tolist())}): give finite {what}; "
                       "the node that made it is damaged")
    return array


def box(name: str, value, width: int | None = None, height: int | None = None) -> np.ndarray:
    """x1, y1, x2, y2 as float32: four finite numbers, top-left corner first; cut to a ``width`` x
    ``height`` image when its size is given (a box entirely outside it comes back empty: x1 == x2)."""
    x1, y1, x2, y2 = numbers(name, value, 4, "x1, y1, x2, y2")
    if x2 < x1 or y2 < y1:
        corners = _show([float(c) for c in (x1, y1, x2, y2)])   # plain floats: numpy 2 would print np.float64(...)
        raise BadInput(f"{name} {corners} is inverted (x2 < x1 or y2 < y1): give x1, y1, x2, y2 "
                       "with the top-left corner first")
    if width is not None and height is not None:
        x1, x2 = (min(max(v, 0.0), float(width)) for v in (x1, x2))
        y1, y2 = (min(max(v, 0.0), float(height)) for v in (y1, y2))
    return np.array([x1, y1, x2, y2], np.float32)


def fraction(name: str, value, what: str = "a confidence") -> float:
    """A number in 0..1 from a number or the first entry of an array (Impact keeps confidences as arrays)."""
    array = numbers(name, value, None, what)
    if array.size == 0:
        raise BadInput(f"{name} is empty: give {what}, a number from 0 to 1")
    x = float(array[0])
    if not -1e-6 <= x <= 1 + 1e-6:
        raise BadInput(f"{name} is {x:g}, outside 0..1: give {what} from 0 to 1")
    return min(max(x, 0.0), 1.0)


def crop_mask(name: str, value, height: int, width: int) -> np.ndarray:
    """A mask at crop size, (height, width) or (1, height, width), finite, in 0..1 -> float32 (height, width)."""
    if value is None:
        raise BadInput(f"{name} is missing: give a float mask of 0..1 the size of its crop region")
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadInput(f"{name} is {_show(value)}, not a mask: give a float array of 0..1") from None
    if array.ndim == 3 and array.shape[0] >= 1:
        array = array[0]           # Impact keeps (1, h, w) masks too; the first frame is the SEG's
    if array.shape != (height, width):
        raise BadInput(f"{name} is {_show(tuple(array.shape))} but its crop region is {width}x{height}: the "
                       "mask must cover its crop region exactly; the node that made it is damaged")
    finite(name, array, "mask values", "the node that made it is damaged")
    if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
        raise BadInput(f"{name} has values from {array.min():g} to {array.max():g}: a mask holds 0..1 "
                       "(a 0..255 mask: divide it by 255)")
    return np.clip(array, 0.0, 1.0)


def vectors(name: str, value, width: int, wrong_width=lambda got: "") -> np.ndarray:
    """One vector (D,), rows (N, D) or single-token rows (N, 1, D) -> float64 (N, width): not empty,
    ``width`` wide (``wrong_width(got)`` says what to do otherwise), finite, no all-zero row."""
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{name} is {_show(value)}, not an array of numbers: give {width}-number vectors") from None
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0]
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2:
        raise BadInput(f"{name} has shape {tuple(array.shape)}: give one vector or rows of {width} numbers"
                       f"{wrong_width(array.shape[-1]) if array.ndim else ''}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise BadInput(f"{name} is empty (shape {tuple(array.shape)}): give at least one vector of {width} numbers")
    if array.shape[1] != width:
        raise BadInput(f"{name} has {array.shape[1]} numbers per vector but {width} are needed"
                       f"{wrong_width(array.shape[1])}")
    finite(name, array, "values", "the node or file that made it is damaged")
    zero = np.flatnonzero(~np.any(array != 0, axis=1))
    if len(zero):
        raise BadInput(f"{name}: vector {int(zero[0])} of {len(array)} is all zeros, which has no direction: "
                       "give the embedding of a face (a zero vector usually means no face was found)")
    return array


def bounded(name: str, values: torch.Tensor, limit: float, what_to_do: str) -> None:
    """Every value finite and within -limit..limit (e.g. encoded text tokens)."""
    finite(name, values, "values", what_to_do)
    largest = float(values.abs().max()) if values.numel() else 0.0
    if largest > limit:
        raise BadInput(f"{name} reaches {largest:.3g}, far beyond the usual size (at most {limit:g}): {what_to_do}")


WEIGHTED_WORDS = re.compile(r"\(([^()]*):\s*([^()]*?)\s*\)")   # ComfyUI's "(words:weight)"


def prompt_weights(name: str, text: str, weights, limit: float) -> None:
    """The weights ComfyUI's tokenizer read from a typed prompt ("(red scarf:1.2)", nested brackets
    multiply by 1.1) each finite and within -limit..limit: the words' embedding is scaled by it, so
    a weight of 1e30 turns every latent value to NaN."""
    for weight in weights:
        weight = float(weight)
        if math.isfinite(weight) and abs(weight) <= limit:
            continue
        quoted = next((m.group(0) for m in WEIGHTED_WORDS.finditer(text) if not _usable_weight(m.group(2), limit)),
                      text)
        raise BadInput(f"{name}: {excerpt(quoted)} asks for the weight {weight:g}: give weights from {-limit:g} "
                       f"to {limit:g} (1 = as typed, 1.1 to 1.5 = stronger)")


def _usable_weight(token: str, limit: float) -> bool:
    try:
        return math.isfinite(float(token)) and abs(float(token)) <= limit
    except ValueError:
        return True       # not a weight: ComfyUI reads such brackets as words
