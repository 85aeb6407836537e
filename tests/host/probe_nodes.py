"""Test-only ComfyUI nodes for the bad-input test (tests/host/test_bad_inputs.py).

- ``MagicIDTestTensor`` makes the IMAGE, MASK and LATENT values no stock node makes on
  purpose: any batch size (0 included), any size and channel count, with NaN or infinities
  written into them, or a real picture poisoned the same way.
- ``MagicIDTestValue`` makes the values other packs send: SEGS (a real SEGS with one field of one
  SEG damaged, or any value in its place), POSE_KEYPOINT and EMBEDS, from a JSON spec (JSON as
  Python reads it: NaN and Infinity are allowed).
- ``MagicIDFiniteProbe`` is an output node that takes what a pack node gave and raises
  unless every number in it is finite; its UI part says what it checked.
- ``MagicIDEmbeddingProbe`` is an output node whose UI part names the embedding model of every face
  and identity it is given (tests/host/test_insightface_layouts_host.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

POISONS = {"none": None, "nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _poison(t: torch.Tensor, poison: str) -> torch.Tensor:
    if POISONS[poison] is None or t.numel() == 0:
        return t
    t = t.clone()
    t.view(-1)[t.numel() // 2] = POISONS[poison]          # one value in the middle
    return t


class MagicIDTestTensor:
    CATEGORY = "MagicID tests"
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE", "MASK", "LATENT")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"batch": ("INT", {"default": 1, "min": 0, "max": 64}),
                             "height": ("INT", {"default": 64, "min": 0, "max": 4096}),
                             "width": ("INT", {"default": 64, "min": 0, "max": 4096}),
                             "channels": ("INT", {"default": 3, "min": 0, "max": 16}),
                             "fill": (["rand", "zeros", "ones"],),
                             "poison": (list(POISONS),),
                             "scale": ("FLOAT", {"default": 1.0, "min": -1e38, "max": 1e38})},
                "optional": {"image": ("IMAGE", {"tooltip": "poison this picture instead of making one"})}}

    def make(self, batch, height, width, channels, fill, poison, scale=1.0, image=None):
        g = torch.Generator().manual_seed(0)
        make = {"rand": lambda *s: torch.rand(*s, generator=g), "zeros": torch.zeros, "ones": torch.ones}[fill]
        picture = image if image is not None else make(batch, height, width, channels)
        mask = make(batch, height, width) if image is None else picture[..., 0]
        latent = make(batch, 4 if channels == 3 else channels, max(height // 8, 0), max(width // 8, 0))
        return (_poison(picture, poison), _poison(mask, poison), {"samples": _poison(latent * scale, poison)})


def _damaged_mask(mask, how: str):
    mask = np.asarray(mask, np.float32)
    if how == "nan":
        mask = mask.copy()
        mask.flat[mask.size // 2] = math.nan
        return mask
    return {"255": lambda: mask * 255, "wrong_size": lambda: mask[1:], "batched": lambda: mask[None],
            "text": lambda: "a mask", "ones": lambda: np.ones_like(mask)}[how]()


def _damaged_segs(segs, edits):
    """A real SEGS with edits: {"whole": v} (the SEGS replaced), {"size": [h, w]}, {"items": v}, or
    {"seg": i, field: value, ...} (a field of SEG i; "mask": nan / 255 / wrong_size / batched / text)."""
    shape, items = segs
    items = list(items)
    for edit in edits if isinstance(edits, list) else [edits]:
        if "whole" in edit:
            return edit["whole"]
        if "size" in edit:
            shape = tuple(edit["size"])
        if "items" in edit:
            items = edit["items"]
        if "seg" in edit:
            seg = items[edit["seg"]]
            fields = {k: v for k, v in edit.items() if k in seg._fields}
            if "mask" in edit:
                fields["cropped_mask"] = _damaged_mask(seg.cropped_mask, edit["mask"])
            items[edit["seg"]] = seg._replace(**fields)
    return shape, items


def _embeds(spec):
    """EMBEDS from {"shape": [...], "fill": rand / zeros / nan / inf, "scale": s}."""
    if not isinstance(spec, dict) or "shape" not in spec:
        return None
    g = torch.Generator().manual_seed(0)
    t = torch.randn(*spec["shape"], generator=g) if spec.get("fill", "rand") != "zeros" else torch.zeros(spec["shape"])
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12) * spec.get("scale", 1.0)
    if spec.get("fill") in ("nan", "inf"):
        t.view(-1)[0] = float(spec["fill"])
    return t


class MagicIDTestValue:
    CATEGORY = "MagicID tests"
    FUNCTION = "make"
    RETURN_TYPES = ("SEGS", "POSE_KEYPOINT", "EMBEDS")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"spec": ("STRING", {"default": "null", "multiline": True})},
                "optional": {"segs": ("SEGS", {"tooltip": "damage this SEGS by the spec's edits"})}}

    def make(self, spec, segs=None):
        value = json.loads(spec)
        return (value if segs is None else _damaged_segs(segs, value), value, _embeds(value))


class MagicIDFiniteProbe:
    CATEGORY = "MagicID tests"
    FUNCTION = "check"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"image": ("IMAGE",), "mask": ("MASK",), "latent": ("LATENT",),
                             "number": ("FLOAT", {"forceInput": True}),
                             "identities": ("IDENTITIES",), "faces": ("FACES",), "segs": ("SEGS",),
                             "conditioning": ("CONDITIONING",)}}

    INPUT_IS_LIST = True     # IDSimilarity's FLOAT outputs are lists

    def check(self, **inputs):
        checked = []
        for name, values in inputs.items():
            for value in values:
                for path, number in _numbers(name, value):
                    if not torch.isfinite(torch.as_tensor(number, dtype=torch.float64)).all():
                        raise ValueError(f"probe: {path} is not finite")
                checked.append(name)
        if not checked:
            raise ValueError("probe: nothing was connected")
        return {"ui": {"finite": sorted(set(checked))}}


def _numbers(name, value):
    """(where, tensor or float) for every number a ComfyUI value holds."""
    if isinstance(value, torch.Tensor):
        yield name, value.detach().float()
    elif isinstance(value, np.ndarray):         # SEGS masks, boxes and confidences
        yield name, torch.from_numpy(np.asarray(value, np.float64))
    elif isinstance(value, (int, float)):
        yield name, float(value)
    elif isinstance(value, dict):               # LATENT
        for key, v in value.items():
            if isinstance(v, torch.Tensor):
                yield f"{name}[{key}]", v.detach().float()
    elif isinstance(value, (list, tuple)):      # IDENTITIES, CONDITIONING, SEGS
        for i, item in enumerate(value):
            yield from _numbers(f"{name}[{i}]", item)
    elif hasattr(value, "images"):              # FACES
        for i, frame in enumerate(value.images):
            for face in frame.faces:
                for field in ("box", "keypoints", "mask", "landmarks", "skeleton", "embedding"):
                    v = getattr(face, field, None)
                    if v is not None:
                        yield f"{name}[{i}].face{face.index}.{field}", torch.as_tensor(v).float()
    elif hasattr(value, "embedding"):           # one Identity
        yield f"{name}.embedding", torch.as_tensor(value.embedding).float()


class MagicIDEmbeddingProbe:
    CATEGORY = "MagicID tests"
    FUNCTION = "report"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"faces": ("FACES",), "identities": ("IDENTITIES",)}}

    def report(self, faces, identities):
        return {"ui": {"faces": [f.embedding_model for im in faces.images for f in im.faces],
                       "identities": [i.embedding_model for i in identities]}}


NODE_CLASS_MAPPINGS = {"MagicIDTestTensor": MagicIDTestTensor, "MagicIDTestValue": MagicIDTestValue,
                       "MagicIDFiniteProbe": MagicIDFiniteProbe, "MagicIDEmbeddingProbe": MagicIDEmbeddingProbe}
