"""MagicIDAdapterLoader and MultiIDApply: several identities, each confined to its own face (MGMICA).

MultiIDApply adds its identities to the MODEL's cross-attention through the attn2 patch
protocol of host/attn2.py, which IDRestore reads back. Words and the protocol:
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import logging

import torch

from ..magicid_core import validate
from ..magicid_core.identity.adapters import load_adapter_file
from ..magicid_core.identity.embedders import check_dlib_identities
from ..magicid_core.diffusion.placement import multi_id_patch, pulid_patch
from ..magicid_core.identity.pulid_flux import PulidFlux, hooked_blocks, load_pulid_flux

from .common import CATEGORY, FACES, IDENTITIES, PERSON_PROMPTS
from .host.attn2 import add_identities, comfy_attention
from .host.dit import FLUX, add_pulid_identities, flux_blocks, flux_token_grid, model_family
from .host.dit_words import add_person_words, flux_words
from .host.sampling import sigma_window
from .host.folders import adapter_choices, adapter_path, insightface_roots
from .host.unet import UNetTextProjection, coarsest_layer_size, cross_attention_layers

ADAPTER = "MAGICID_ADAPTER"  # magicid_core's IdentityAdapter (SD) or PulidFlux (Flux.1)


class MagicIDAdapterLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"adapter_file": (adapter_choices(), {
            "tooltip": "IP-Adapter FaceID, FaceID Plus or Plus v2, SD1.5 or SDXL, .bin or .safetensors "
                       "(models/ipadapter: ip-adapter-faceid_sd15.bin, ip-adapter-faceid-plusv2_sdxl.bin, "
                       "FaceID portrait, ...) or InstantID (models/instantid: ip-adapter.bin). Plus and Plus v2 "
                       "also need the identities' CLIP vision features (IdentityFromImages' clip_vision). "
                       "For Flux.1: PuLID-Flux (models/pulid: pulid_flux_v0.9.1.safetensors)."})}}

    RETURN_TYPES = (ADAPTER,)
    RETURN_NAMES = ("adapter",)
    FUNCTION = "load"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("Loads a face identity adapter for MultiIDApply (FaceID, FaceID Plus / Plus v2, InstantID); "
                   "the log says which kind it found.")

    def load(self, adapter_file):
        path = adapter_path(adapter_file)
        if adapter_file.startswith("pulid/"):
            return (load_pulid_flux(path),)
        adapter = load_adapter_file(path)
        logging.info("MagicID: loaded %s", adapter.describe())
        return (adapter,)


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
                "person_prompts": (PERSON_PROMPTS, {"tooltip":
                    "Each person's own words (chained PersonPrompt nodes): inside that person's face they are "
                    "attended next to the main prompt, elsewhere they do nothing. Positive side only."}),
                "weight_faceidv2": ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05, "tooltip":
                    "FaceID Plus v2 only (IPAdapterFaceID's weight_faceidv2): how much of the CLIP-refined "
                    "tokens is added to the ArcFace tokens. Other adapters ignore it."}),
            },
        }

    RETURN_TYPES = ("MODEL", "IMAGE")
    RETURN_NAMES = ("model", "ownership")
    OUTPUT_TOOLTIPS = ("The model with the identities in its cross-attention.",
                       "Who owns which cell at the coarsest attention layer (the middle block; on Flux, the "
                       "16 px tokens): each identity's mask dimmed, its cells bright. Every face keeps a cell.")
    FUNCTION = "apply"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("Puts several identities into one picture, each confined to its own face inside "
                   "cross-attention (MGMICA). Generate at the size (or aspect) of the FACES image.")

    def apply(self, model, adapter, identities, faces, weight, start_percent, end_percent,
              face_indices="", identity_weights="", image_index=0, person_prompts=None, weight_faceidv2=1.0):
        if len(faces) == 0 or image_index >= len(faces):
            raise validate.BadInput(f"image_index {image_index} does not exist: faces holds {len(faces)} image(s)")
        weight = validate.number("weight", weight, 0.0, 3.0)
        start_percent = validate.number("start_percent", start_percent, 0.0, 1.0)
        end_percent = validate.number("end_percent", end_percent, 0.0, 1.0)
        weight_faceidv2 = validate.number("weight_faceidv2", weight_faceidv2, -1.0, 5.0)
        validate.ordered("start_percent", start_percent, "end_percent", end_percent, strict=True,
                         consequence="the identities would never act")
        multipliers = validate.number_list("identity_weights", identity_weights, float, 0.0, 3.0, example="'1, 0.8'")
        if multipliers is not None and len(multipliers) != len(identities):
            raise validate.BadInput(f"identity_weights lists {len(multipliers)} weight(s) for {len(identities)} "
                                    "identities: give one per identity, or leave it empty")
        face_indices = validate.number_list("face_indices", face_indices, int, -1, example="'2, 0, -1'")
        image = faces[image_index]
        weights = [weight * m for m in (multipliers or [1.0] * len(identities))]
        if model_family(model) == FLUX:
            return _apply_flux(model, adapter, identities, image, face_indices, weights,
                               sigma_window(model, start_percent, end_percent), person_prompts)
        if isinstance(adapter, PulidFlux):
            raise validate.BadInput(f"{adapter.name} is PuLID-Flux, made for Flux.1, but this model is an SD UNet "
                                    f"({type(model.model).__name__}): load an IP-Adapter FaceID or InstantID file")
        check_dlib_identities(adapter, identities, insightface_roots())
        layers = cross_attention_layers(model)
        adapter.check_fits([(w, c) for _, w, c in layers], type(model.model).__name__)
        sigma_range = sigma_window(model, start_percent, end_percent)
        patch = multi_id_patch(
            adapter, identities, image, {key: i for i, (key, _, _) in enumerate(layers)},
            face_indices=face_indices, weights=weights, sigma_range=sigma_range,
            prompts=list(person_prompts or []), project=UNetTextProjection(model), context_dim=layers[0][2],
            attention=comfy_attention, faceidv2_weight=weight_faceidv2)
        if patch is None:  # every identity and prompt assigned to no face: the model is unchanged
            return (model, torch.zeros((1, image.height, image.width, 3)))
        preview = patch.preview(*coarsest_layer_size(model, image.height, image.width))
        return (add_identities(model, patch, [key for key, _, _ in layers], sigma_range),
                torch.from_numpy(preview)[None])


def _apply_flux(model, adapter, identities, image, face_indices, weights, sigma_range, person_prompts):
    """MultiIDApply on Flux.1: PuLID-Flux's residual per identity, on the image tokens its face owns."""
    if not isinstance(adapter, PulidFlux):
        raise validate.BadInput(f"{getattr(adapter, 'name', 'the adapter')} is an SD adapter "
                                f"({getattr(adapter, 'kind', type(adapter).__name__)}), but this model is Flux.1: "
                                "load pulid_flux_v0.9.1.safetensors from models/pulid")
    double, single, width = flux_blocks(model)
    blocks = hooked_blocks(double, single)
    adapter.check_fits(blocks, width, "Flux")
    identities_patch = pulid_patch(adapter, list(identities), image, face_indices, weights, sigma_range)
    words = flux_words(model, person_prompts, image, identities, face_indices)
    if identities_patch is None and words is None:   # nothing placed on any face: the model is unchanged
        return (model, torch.zeros((1, image.height, image.width, 3)))
    grid = flux_token_grid(model, image.height, image.width)
    shown = identities_patch if identities_patch is not None else words
    if identities_patch is not None:
        identities_patch.owned_tokens(*grid)   # refuses more faces than tokens at the FACES image's size
        model = add_pulid_identities(model, identities_patch, adapter, blocks)
    if words is not None:
        model = add_person_words(model, words)
    return (model, torch.from_numpy(shown.preview(*grid))[None])
