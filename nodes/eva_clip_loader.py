"""MagicIDEvaClipLoader: EVA02-CLIP-L-14-336 for PuLID-Flux identities (IdentityFromImages' eva_clip).

The identity it serves and the files PuLID-Flux needs: docs/flux.md.
"""

from __future__ import annotations

from ..magicid_core.identity.eva_clip import EVA_CLIP_FILE
from .common import CATEGORY, EVA_CLIP
from .host.folders import eva_clip_choices, eva_clip_path, missing_eva_clip
from .host.pulid_models import load_eva_clip_file


class MagicIDEvaClipLoader:
    @classmethod
    def INPUT_TYPES(cls):
        choices = eva_clip_choices()
        options = {"tooltip": f"{EVA_CLIP_FILE} (EVA02-CLIP-L-14-336, the file PuLID-Flux users have), from "
                              "models/clip or models/text_encoders. Read through the timm package (python "
                              "install.py --flux installs it)."}
        if EVA_CLIP_FILE in choices:
            options["default"] = EVA_CLIP_FILE
        return {"required": {"eva_clip_name": (choices, options)}}

    RETURN_TYPES = (EVA_CLIP,)
    RETURN_NAMES = ("eva_clip",)
    OUTPUT_TOOLTIPS = ("EVA-CLIP's visual tower: connect it to IdentityFromImages' eva_clip to build "
                       "PuLID-Flux identities.",)
    FUNCTION = "load"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = ("Loads EVA02-CLIP-L-14-336 (EVA02_CLIP_L_336_psz14_s6B.pt) for IdentityFromImages, which then "
                   "builds identities for MultiIDApply on Flux.1 (PuLID-Flux).")

    @classmethod
    def VALIDATE_INPUTS(cls, eva_clip_name):
        """A workflow naming a file that is not there is told which file and where, before it runs."""
        return True if eva_clip_path(eva_clip_name) else missing_eva_clip(eva_clip_name)

    def load(self, eva_clip_name):
        return (load_eva_clip_file(eva_clip_name),)
