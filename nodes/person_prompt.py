"""PersonPrompt: one person's own words, appended to PERSON_PROMPTS for MultiIDApply and IDRestore."""

from __future__ import annotations

import logging

import torch

from ..magicid_core import validate
from ..magicid_core.diffusion.placement import PersonPrompt as PersonWords
from .common import CATEGORY, PERSON_PROMPTS

WEIGHT_LIMIT = 10.0   # largest "(words:weight)": the words' embedding is scaled by it (1e30 made every latent NaN)
TOKEN_LIMIT = 1e5     # encoded text stays far below this (CLIP hidden states are tens, at most hundreds)


class PersonPrompt:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": ("CLIP", {"tooltip": "The CLIP of the checkpoint the model comes from."}),
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "",
                                    "tooltip": "This person's own words, e.g. 'laughing, red scarf'. They act only "
                                               "on this person's face, next to the main prompt. Empty: no words."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                     "tooltip": "1 = exactly as if the words were appended to the main prompt "
                                                "(inside this face); 0 = no effect; above 1 = stronger."}),
                "face": ("INT", {"default": -1, "min": -1, "max": 63, "tooltip":
                    "-1: the face of the identity at this prompt's position in the chain (the first PersonPrompt "
                    "goes with the first identity); without identities, the face at that position. "
                    "0, 1, ...: that numbered face of FaceDetectMasks (a person with words but no reference photo)."}),
            },
            "optional": {
                "person_prompts": (PERSON_PROMPTS, {"tooltip": "Prompts of the people before; this one is appended."}),
            },
        }

    RETURN_TYPES = (PERSON_PROMPTS,)
    RETURN_NAMES = ("person_prompts",)
    FUNCTION = "attach"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("One person's own prompt, for MultiIDApply (and IDRestore): inside that person's face it is "
                   "attended next to the main prompt, outside it does nothing. Chain one per person.")

    def attach(self, clip, text, weight, face, person_prompts=None):
        before = list(person_prompts or [])
        words = text.strip()
        weight = validate.number("weight", weight, 0.0, 3.0)
        if words:
            tokenized = clip.tokenize(text)
            validate.prompt_weights("text", text, _token_weights(tokenized), WEIGHT_LIMIT)
            # what CLIPTextEncode computes for the same text: (1, tokens, width) -> (tokens, width)
            tokens = clip.encode_from_tokens(tokenized)[0].detach().float().cpu()
            validate.bounded("text", tokens, TOKEN_LIMIT, "the CLIP gave values no prompt gives: check the "
                             "checkpoint's CLIP (or a CLIP LoRA), then the prompt's weights")
        else:
            logging.info("PersonPrompt %d: empty text, this person gets no words of their own", len(before) + 1)
            tokens = torch.zeros((0, 0))
        face_index = None if face < 0 else int(face)
        return (before + [PersonWords(tokens, float(weight), face_index, label=words[:40])],)


def _token_weights(tokenized):
    """Every weight ComfyUI's tokenizer gave: {encoder: [[(token, weight[, word id]), ...], ...]}."""
    for sequences in (tokenized.values() if isinstance(tokenized, dict) else []):
        for sequence in sequences if isinstance(sequences, list) else []:
            for token in sequence:
                if isinstance(token, tuple) and len(token) >= 2 and isinstance(token[1], (int, float)):
                    yield token[1]
