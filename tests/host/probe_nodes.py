"""Test-only ComfyUI nodes for the bad-input test (tests/host/test_bad_inputs.py).

- ``MagicIDTestTensor`` makes the IMAGE, MASK and LATENT values no stock node makes on
  purpose: any batch size (0 included), any size and channel count, with NaN or infinities
  written into them, or a real picture poisoned the same way.
- ``MagicIDFiniteProbe`` is an output node that takes what a pack node gave and raises
  unless every number in it is finite; its UI part says what it checked.
- ``MagicIDEmbeddingProbe`` is an output node whose UI part names the embedding model of every face
  and identity it is given (tests/host/test_insightface_layouts_host.py).
"""

from __future__ import annotations

import math

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
                             "poison": (list(POISONS),)},
                "optional": {"image": ("IMAGE", {"tooltip": "poison this picture instead of making one"})}}

    def make(self, batch, height, width, channels, fill, poison, image=None):
        g = torch.Generator().manual_seed(0)
        make = {"rand": lambda *s: torch.rand(*s, generator=g), "zeros": torch.zeros, "ones": torch.ones}[fill]
        picture = image if image is not None else make(batch, height, width, channels)
        mask = make(batch, height, width) if image is None else picture[..., 0]
        latent = make(batch, 4 if channels == 3 else channels, max(height // 8, 0), max(width // 8, 0))
        return (_poison(picture, poison), _poison(mask, poison), {"samples": _poison(latent, poison)})


class MagicIDFiniteProbe:
    CATEGORY = "MagicID tests"
    FUNCTION = "check"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"image": ("IMAGE",), "mask": ("MASK",), "latent": ("LATENT",),
                             "number": ("FLOAT", {"forceInput": True}),
                             "identities": ("IDENTITIES",), "faces": ("FACES",),
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
    elif isinstance(value, (int, float)):
        yield name, float(value)
    elif isinstance(value, dict):               # LATENT
        for key, v in value.items():
            if isinstance(v, torch.Tensor):
                yield f"{name}[{key}]", v.detach().float()
    elif isinstance(value, (list, tuple)):      # IDENTITIES, CONDITIONING
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


NODE_CLASS_MAPPINGS = {"MagicIDTestTensor": MagicIDTestTensor, "MagicIDFiniteProbe": MagicIDFiniteProbe,
                       "MagicIDEmbeddingProbe": MagicIDEmbeddingProbe}
