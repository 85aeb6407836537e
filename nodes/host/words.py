"""Person prompts without identities, on a MODEL: what IDRestore's person_prompts input adds."""

from __future__ import annotations

import math

from ...magicid_core.diffusion.placement import multi_id_patch
from .attn2 import add_identities, comfy_attention
from .unet import UNetTextProjection, cross_attention_layers


def add_person_words(model, image_faces, prompts):
    """A clone of ``model`` whose faces of ``image_faces`` carry their PersonPrompt words (at every
    sigma), as a MultiIDAttention entry without identities: IDRestore crops it per face like
    MultiIDApply's identities. The model itself when no prompt goes to a face."""
    layers = cross_attention_layers(model)
    keys = [key for key, _, _ in layers]
    patch = multi_id_patch(None, None, image_faces, {key: None for key in keys}, prompts=list(prompts),
                           project=UNetTextProjection(model), context_dim=layers[0][2],
                           attention=comfy_attention)
    if patch is None:
        return model
    return add_identities(model, patch, keys, (math.inf, 0.0))
