"""IDRestore: repair the faces of any picture; every pixel outside the face masks stays as it was.

The repair is DIIR (magicid_core.diffusion.restore) run on ComfyUI's model through host/pipeline.py; a
model patched by MultiIDApply gives each face its identity (host/attn2.py's patch protocol).
Words: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

import logging

import numpy as np

from ..magicid_core import validate
from ..magicid_core.diffusion.inversion import DEFAULT_REFINEMENT
from ..magicid_core.diffusion.restore import report, restore_faces, side_by_side
from ..magicid_core.diffusion.restore_plan import RestoreSettings, parse_indices
from .common import CATEGORY, FACES, PERSON_PROMPTS, images_to_numpy, numpy_to_images
from .host.pipeline import ComfyPipeline, has_identity_patch
from .host.dit_words import add_flux_words
from .host.family import FLUX, check_family
from .host.words import add_person_words
from .host.progress import comfy_progress


SD_CFG, FLUX_CFG = 5.0, 1.0    # cfg 0 = auto: Flux dev is guidance-distilled (guidance in the conditioning)


class IDRestore:
    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture(s) whose faces to repair."}),
                "faces": (FACES, {"tooltip": "Faces of this very IMAGE, from FaceDetectMasks."}),
                "model": ("MODEL", {"tooltip": "SD1.5 / SDXL or Flux.1 model, plain or patched by MultiIDApply."}),
                "vae": ("VAE",),
                "positive": ("CONDITIONING", {"tooltip": "The prompt; on Flux dev through FluxGuidance (its guidance)."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200,
                                  "tooltip": "Steps of the full schedule; strength keeps the last part of it."}),
                "strength": ("FLOAT", {"default": 0.45, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "How far each face is inverted towards noise; 0 returns the input."}),
                "cfg": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip":
                                  "0 = auto: 1 on Flux (guidance-distilled: no negative pass), 5 on SD. "
                                  "Above 1 the negative is required."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "karras"}),
                "zoom_size": ("INT", {"default": 512, "min": 256, "max": 2048, "step": 64,
                                      "tooltip": "Working size: smaller face crops are zoomed up to it (512 SD1.5, "
                                                 "1024 SDXL and Flux; Flux crops are padded to 16 px)."}),
                "context": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "Margin around each face in the crop, as a fraction of the face size."}),
                "feather": ("INT", {"default": 4, "min": 0, "max": 64,
                                    "tooltip": "Extra softening of the face mask's edge in pixels (changes stay inside the mask grown by this)."}),
                "refinement": ("INT", {"default": DEFAULT_REFINEMENT, "min": 0, "max": 100,
                                       "tooltip": "Most refinement calls per inversion step, as in DDIMInvert; "
                                                  "steps stop early once exact, or at the floor of the model's "
                                                  "precision (fp16/bf16). 0 = plain inversion."}),
                "faces_to_restore": ("STRING", {"default": "all", "tooltip":
                                     "'all', or the numbers of the faces to repair (as FaceDetectMasks shows "
                                     "them), like '0, 2'. With a MultiIDApply model, 'all' skips faces no "
                                     "identity covers; name them to repair them anyway."}),
            },
            "optional": {
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt, used when cfg > 1 (SD's default 5 "
                                                         "needs it; Flux at cfg 1 does not)."}),
                "control_net": ("CONTROL_NET", {"tooltip": "A face-landmark ControlNet, fed each face's landmark map."}),
                "control_strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 2.0, "step": 0.05}),
                "person_prompts": (PERSON_PROMPTS, {"tooltip":
                    "Each face's own words while it regenerates (PersonPrompt chain; face -1 = the face at the "
                    "prompt's position). Positive side only; the background keeps its exact pixels."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("image", "face_preview", "report")
    OUTPUT_TOOLTIPS = ("The picture with its faces repaired.", "Each face before | after.",
                       "What was restored and what was left alone.")
    FUNCTION = "restore"
    CATEGORY = f"{CATEGORY}/restore"
    DESCRIPTION = ("Repairs the faces of any picture (DIIR: each face cropped, inverted, regenerated and pasted "
                   "back through its mask); every pixel outside the face masks keeps its exact value. With a "
                   "model from MultiIDApply each face is regenerated towards its own identity.")

    def restore(self, image, faces, model, vae, positive, steps, strength, cfg, scheduler,
                zoom_size, context, feather, refinement, faces_to_restore, negative=None, control_net=None,
                control_strength=0.8, person_prompts=None):
        image = validate.image("image", image)
        family = check_family(model, "IDRestore")
        cfg = validate.number("cfg", cfg, 0.0, 100.0) or (FLUX_CFG if family == FLUX else SD_CFG)
        if negative is None and cfg != 1.0:
            raise validate.BadInput(f"negative is not connected but cfg is {cfg:g}: connect a negative prompt, "
                                    "or set cfg to 1 (Flux's guidance-distilled sampling needs none)")
        control_strength = validate.number("control_strength", control_strength, 0.0, 10.0)
        settings = RestoreSettings(steps=steps, strength=strength, zoom_size=zoom_size, context=context,
                                   feather=feather, refinement=refinement)
        indices = parse_indices(faces_to_restore)
        # 'all' restores only the faces MultiIDApply gave an identity, when it patched the model
        only_identified = indices is None and has_identity_patch(model)
        if person_prompts:
            if len(image) > 1 or len(faces) != 1:
                raise ValueError(f"person_prompts name the faces of one picture, but IDRestore got {len(image)} "
                                 "pictures: restore them one at a time (or leave person_prompts unconnected)")
            model = (add_flux_words(model, faces[0], person_prompts) if family == FLUX
                     else add_person_words(model, faces[0], person_prompts))
        pipeline = ComfyPipeline(model, vae, positive, negative, cfg, scheduler, control_net, control_strength,
                                 only_identified=only_identified)
        restored = restore_faces(images_to_numpy(image), faces, pipeline, settings, indices,
                                 progress=comfy_progress())
        for message in restored.messages:
            logging.info("IDRestore: %s", message)
        previews = [side_by_side(r.before, r.after) for r in restored.faces] or [np.zeros((64, 128, 3), np.float32)]
        return numpy_to_images(restored.images), numpy_to_images(previews), report(restored)
