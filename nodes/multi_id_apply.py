"""MultiIDApply and MagicIDAdapterLoader: several identities, each confined to its own face."""

from __future__ import annotations

import math
import os

import torch

from ..magicid_core.identity.adapters import load_adapter_file
from ..magicid_core.diffusion.attention import MultiIDAttention
from ..magicid_core.parsing import parse_number_list
from ..magicid_core.diffusion.placement import multi_id_patch

from .common import CATEGORY, FACES, IDENTITIES

ADAPTER = "MAGICID_ADAPTER"  # a magicid_core.adapters.IdentityAdapter
ADAPTER_FOLDERS = ("ipadapter", "instantid")  # the folders peer packs use, under ComfyUI/models


def register_adapter_folders() -> None:
    """Make models/ipadapter and models/instantid known to folder_paths (if no other pack did)."""
    import folder_paths

    for name in ADAPTER_FOLDERS:
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = (
                [os.path.join(folder_paths.models_dir, name)], folder_paths.supported_pt_extensions)


def adapter_choices() -> list[str]:
    import folder_paths

    register_adapter_folders()
    return [f"{folder}/{name}" for folder in ADAPTER_FOLDERS for name in folder_paths.get_filename_list(folder)]


class MagicIDAdapterLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"adapter_file": (adapter_choices(), {
            "tooltip": "IP-Adapter FaceID (models/ipadapter: ip-adapter-faceid_sd15.bin, "
                       "ip-adapter-faceid_sdxl.bin, FaceID portrait) or InstantID (models/instantid: ip-adapter.bin)"})}}

    RETURN_TYPES = (ADAPTER,)
    RETURN_NAMES = ("adapter",)
    FUNCTION = "load"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = "Loads a face identity adapter for MultiIDApply."

    def load(self, adapter_file):
        import folder_paths

        register_adapter_folders()
        folder, _, name = adapter_file.partition("/")
        if folder not in ADAPTER_FOLDERS or not name:
            raise ValueError(f"{adapter_file!r}: pick a file from models/ipadapter or models/instantid")
        path = folder_paths.get_full_path(folder, name)
        if path is None:
            raise FileNotFoundError(f"{name} is not in models/{folder}: put ip-adapter-faceid_sd15.bin / "
                                    "ip-adapter-faceid_sdxl.bin into models/ipadapter or InstantID's "
                                    "ip-adapter.bin into models/instantid")
        return (load_adapter_file(path),)


class MultiIDApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "adapter": (ADAPTER, {"tooltip": "From MagicIDAdapterLoader."}),
                "identities": (IDENTITIES, {"tooltip": "One identity per person (IdentityFromImages)."}),
                "faces": (FACES, {"tooltip": "The faces of the composition image (FaceDetectMasks): "
                                             "each identity acts only inside its face's mask."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                     "tooltip": "Strength of every identity (0 = model unchanged)."}),
                "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                            "tooltip": "Sampling progress at which the identities start acting."}),
                "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                          "tooltip": "Sampling progress at which they stop."}),
            },
            "optional": {
                "face_indices": ("STRING", {"default": "", "tooltip":
                    "Which face each identity goes to, e.g. '2, 0, -1' (-1 = nowhere). Empty: match "
                    "identities to faces by embedding when both come from the same model, else in order."}),
                "identity_weights": ("STRING", {"default": "", "tooltip":
                    "Per-identity multipliers of weight, e.g. '1, 0.8, 1.2'. Empty: all 1."}),
                "image_index": ("INT", {"default": 0, "min": 0, "max": 4095,
                                        "tooltip": "Which image of FACES gives the face layout."}),
            },
        }

    RETURN_TYPES = ("MODEL", "IMAGE")
    RETURN_NAMES = ("model", "ownership")
    OUTPUT_TOOLTIPS = ("The model with the identities in its cross-attention.",
                       "Who owns which cell at the coarsest attention layer (the middle block): "
                       "each identity's mask dimmed, its cells bright. Every face keeps a cell.")
    FUNCTION = "apply"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("Puts several identities into one picture, each confined to its own face inside "
                   "cross-attention (MGMICA). Generate at the size (or aspect) of the FACES image.")

    def apply(self, model, adapter, identities, faces, weight, start_percent, end_percent,
              face_indices="", identity_weights="", image_index=0):
        if len(faces) == 0 or image_index >= len(faces):
            raise ValueError(f"FACES holds {len(faces)} image(s); image_index {image_index} does not exist")
        image = faces[image_index]
        layers = cross_attention_layers(model)
        adapter.check_fits([(w, c) for _, w, c in layers], type(model.model).__name__)
        multipliers = parse_number_list(identity_weights, float, "identity_weights")
        sampling = model.get_model_object("model_sampling")
        patch = multi_id_patch(
            adapter, identities, image, {key: i for i, (key, _, _) in enumerate(layers)},
            face_indices=parse_number_list(face_indices, int, "face_indices"),
            weights=[weight * m for m in (multipliers or [1.0] * len(identities))],
            sigma_range=(sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent)),
            attention=comfy_attention)
        if patch is None:  # every identity assigned to no face: the model is unchanged
            return (model, torch.zeros((1, image.height, image.width, 3)))
        preview = patch.preview(*coarsest_layer_size(model, image.height, image.width))
        return (register_patch(model.clone(), patch, [key for key, _, _ in layers]),
                torch.from_numpy(preview)[None])


def comfy_attention(q, k, v, heads, extra_options):
    """The host's own attention, called as the unpatched layer calls it (bit-identical text path)."""
    from comfy.ldm.modules.attention import optimized_attention

    return optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"),
                               transformer_options=extra_options)


def cross_attention_layers(model) -> list[tuple[tuple, int, int]]:
    """(block key, width, context width) of every cross-attention layer, in diffusers order
    (input blocks, output blocks, middle block) -- the order adapter files number them in."""
    unet = model.model.diffusion_model
    if not all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        raise ValueError(f"MultiIDApply needs an SD1.5 or SDXL UNet; this model is a {type(model.model).__name__}")
    found = []
    for name, blocks in (("input", unet.input_blocks), ("output", unet.output_blocks), ("middle", [unet.middle_block])):
        for block_id, block in enumerate(blocks):
            for module in block:
                for index, tb in enumerate(getattr(module, "transformer_blocks", [])):
                    attn2 = getattr(tb, "attn2", None)
                    if attn2 is not None:
                        found.append(((name, block_id, index), *attn2.to_k.weight.shape))
    if not found:
        raise ValueError("this model has no UNet cross-attention layers: MultiIDApply needs an SD1.5 or SDXL model")
    return found


def coarsest_layer_size(model, height: int, width: int) -> tuple[int, int]:
    """Cells of the middle block for an image of height x width (latent = image / 8)."""
    unet = model.model.diffusion_model
    downsamples = sum(type(m).__name__ == "Downsample" for block in unet.input_blocks for m in block)
    h, w = math.ceil(height / 8), math.ceil(width / 8)
    for _ in range(downsamples):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def register_patch(model, patch: MultiIDAttention, keys):
    """Register one patch object on every key, stacked on any attn2 patch already there."""
    existing = model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    previous = {k: p for k, p in existing.items() if k in keys or k in {key[:2] for key in keys}}
    patch = patch.stacked_on(previous) if previous else patch
    for key in keys:
        model.set_model_attn2_replace(patch, *key)
    return model


def multi_id_patches(model) -> dict:
    """MultiIDApply's attn2 patches of a model, by block key.

    Duck-typed on ``cropped``: a second import of the pack (a reload) makes a second
    MultiIDAttention class.
    """
    attn2 = model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    return {key: p for key, p in attn2.items() if callable(getattr(p, "cropped", None))}


def without_multi_id_patches(model):
    """The model without MultiIDApply's patches (each layer gets back the patch it wrapped,
    if any): IDRestore inverts with it, since identity must act only while regenerating."""
    ours = multi_id_patches(model)
    if not ours:
        return model
    clone = model.clone()
    attn2 = clone.model_options["transformer_options"]["patches_replace"]["attn2"]
    for key, patch in ours.items():
        wrapped = patch.previous.get(key) or patch.previous.get(key[:2])
        if wrapped is None:
            del attn2[key]
        else:
            attn2[key] = wrapped
    return clone


def crop_multi_id_patches(model, box_xyxy, out_hw):
    """For IDRestore: a clone whose MultiIDApply patches act on a zoomed crop of the image.

    box_xyxy: the crop in the FACES image's pixels; out_hw: the crop's new (height, width).
    Returns the model itself when it carries no MultiIDApply patch.
    """
    ours = multi_id_patches(model)
    if not ours:
        return model
    clone, done = model.clone(), {}
    for key, patch in ours.items():
        clone.set_model_attn2_replace(patch.cropped(box_xyxy, out_hw, done), *key)
    return clone
