"""IDRestore: repair the faces of any picture; every pixel outside the face masks stays as it was."""

from __future__ import annotations

import logging

import numpy as np

from ..magicid_core.diffusion.inversion import DEFAULT_REFINE_ITERS
from ..magicid_core.diffusion.restore import report, restore_faces, side_by_side
from ..magicid_core.diffusion.restore_plan import RestoreSettings, parse_indices
from .common import CATEGORY, FACES, images_to_numpy, numpy_to_images
from .comfy_pipeline import ComfyPipeline


class IDRestore:
    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture(s) whose faces to repair."}),
                "faces": (FACES, {"tooltip": "Faces of this very IMAGE, from FaceDetectMasks."}),
                "model": ("MODEL", {"tooltip": "SD1.5 / SDXL model, plain or patched by MultiIDApply."}),
                "vae": ("VAE",),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200,
                                  "tooltip": "Steps of the full schedule; strength keeps the last part of it."}),
                "strength": ("FLOAT", {"default": 0.45, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "How far each face is inverted towards noise; 0 returns the input."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 30.0, "step": 0.1}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "karras"}),
                "zoom_size": ("INT", {"default": 512, "min": 256, "max": 2048, "step": 64,
                                      "tooltip": "Working size: smaller face crops are zoomed up to it (512 SD1.5, 1024 SDXL)."}),
                "context": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "Margin around each face in the crop, as a fraction of the face size."}),
                "feather": ("INT", {"default": 4, "min": 0, "max": 64,
                                    "tooltip": "Extra softening of the face mask's edge in pixels (changes stay inside the mask grown by this)."}),
                "inversion_refine": ("INT", {"default": DEFAULT_REFINE_ITERS, "min": 0, "max": 100,
                                             "tooltip": "Most refinement calls per inversion step, as in DDIMInvert; "
                                                        "steps stop early once exact. 0 = plain inversion."}),
                "face_indices": ("STRING", {"default": "all",
                                            "tooltip": "'all', or the face indices to repair, like '0, 2'."}),
            },
            "optional": {
                "control_net": ("CONTROL_NET", {"tooltip": "A face-landmark ControlNet, fed each face's landmark map."}),
                "control_strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 2.0, "step": 0.05}),
            },
        }

    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("image", "face_preview", "report")
    OUTPUT_TOOLTIPS = ("The picture with its faces repaired.", "Each face before | after.",
                       "What was restored and what was left alone.")
    FUNCTION = "restore"
    CATEGORY = CATEGORY

    def restore(self, image, faces, model, vae, positive, negative, steps, strength, cfg, scheduler,
                zoom_size, context, feather, inversion_refine, face_indices, control_net=None,
                control_strength=0.8):
        import comfy.utils

        settings = RestoreSettings(steps=steps, strength=strength, zoom_size=zoom_size, context=context,
                                   feather=feather, refine_iters=inversion_refine)
        indices = parse_indices(face_indices)
        pipeline = ComfyPipeline(model, vae, positive, negative, cfg, scheduler, control_net, control_strength,
                                 only_identified=indices is None)
        bar = comfy.utils.ProgressBar(1)
        restored = restore_faces(images_to_numpy(image), faces, pipeline, settings, indices,
                                 progress=lambda done, total: bar.update_absolute(done, total))
        for message in restored.messages:
            logging.info("IDRestore: %s", message)
        previews = [side_by_side(r.before, r.after) for r in restored.faces] or [np.zeros((64, 128, 3), np.float32)]
        return numpy_to_images(restored.images), numpy_to_images(previews), report(restored)
