"""IdentityFromImages: one person's reference photos -> an identity appended to IDENTITIES.

IDENTITIES and how MultiIDApply places them: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

from ..magicid_core.identity.embedders import BACKENDS, build_identity, make_embedder
from .common import CATEGORY, IDENTITIES, images_to_numpy
from .host.folders import insightface_roots


class IdentityFromImages:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Reference photos of ONE person (a batch). In each, the most "
                                                "prominent face is used; their embeddings are averaged."}),
                "name": ("STRING", {"default": "", "tooltip": "Who this is; empty = 'person N'."}),
                "backend": (list(BACKENDS), {"default": "auto", "tooltip":
                    "Identity model. arcface = insightface antelopev2/buffalo_l in ComfyUI/models/insightface "
                    "(needs onnxruntime); dlib = offline, shipped weights; auto = arcface when its files exist. "
                    "Use the same backend as FaceDetectMasks."}),
            },
            "optional": {
                "identities": (IDENTITIES, {"tooltip": "Identities built so far; this one is appended."}),
            },
        }

    RETURN_TYPES = (IDENTITIES,)
    RETURN_NAMES = ("identities",)
    FUNCTION = "build"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = "Build one person's identity (a face embedding) from reference images, for MultiIDApply and IDRestore."

    def build(self, images, name, backend, identities=None):
        import comfy.utils

        before = list(identities or [])
        name = name.strip() or f"person {len(before) + 1}"
        if any(i.name == name for i in before):
            raise ValueError(f"an identity named {name!r} is already in the list; give each person their own name")
        references = images_to_numpy(images)
        progress = comfy.utils.ProgressBar(len(references))
        identity = build_identity(name, references, make_embedder(backend, insightface_roots()),
                                  on_image=lambda i: progress.update(1))
        if before and before[0].embedding_model != identity.embedding_model:
            raise ValueError(f"{name!r} was embedded with {identity.embedding_model} but the identities before it "
                             f"with {before[0].embedding_model}; use the same backend for every identity")
        return (before + [identity],)
