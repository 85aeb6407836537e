"""IdentityFromImages / IdentityFromEmbedding: one person -> an identity appended to IDENTITIES.

IDENTITIES and how MultiIDApply places them: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

from ..magicid_core import validate
from ..magicid_core.analyze import DLIB_IDENTITIES, fallback_note, log_once
from ..magicid_core.identity.embedders import (BACKENDS, build_identity, embedding_models,
                                               identity_from_embeddings, make_embedder)
from ..magicid_core.identity.embedding_models import DLIB
from ..magicid_core.insightface import find_pack_or_reason
from .common import CATEGORY, EVA_CLIP, IDENTITIES, images_to_numpy
from .host.clip_vision import ComfyFaceCLIPEncoder
from .host.folders import insightface_roots
from .host.pulid_models import pulid_encoding


class IdentityFromImages:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Reference photos of ONE person (a batch). In each, the most "
                                                "prominent face is used; their embeddings are averaged."}),
                "name": ("STRING", {"default": "", "tooltip": "Who this is; empty = 'person N'."}),
                "backend": (list(BACKENDS), {"default": "auto", "tooltip":
                    "Identity model. arcface = insightface antelopev2/buffalo_l in ComfyUI/models/insightface/models/<pack> "
                    "(needs onnxruntime); dlib = offline, shipped weights; auto = arcface when its files exist. "
                    "Use the same backend as FaceDetectMasks."}),
            },
            "optional": {
                "identities": (IDENTITIES, {"tooltip": "Identities built so far; this one is appended."}),
                "clip_vision": ("CLIP_VISION", {"tooltip":
                    "For IP-Adapter FaceID Plus / Plus v2 adapters: CLIPVisionLoader with "
                    "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors. Each reference face's aligned crop is "
                    "encoded as IPAdapter_plus does; not needed for FaceID, portrait or InstantID."}),
                "eva_clip": (EVA_CLIP, {"tooltip":
                    "For PuLID-Flux (MultiIDApply on Flux.1): MagicIDEvaClipLoader. Each reference face is also "
                    "encoded as ApplyPulidFlux encodes it: insightface antelopev2's raw ArcFace vector, EVA-CLIP "
                    "of the aligned face with its background removed by facexlib's parsing_bisenet.pth "
                    "(models/facexlib). Needs the antelopev2 pack whatever the backend."}),
            },
        }

    RETURN_TYPES = (IDENTITIES,)
    RETURN_NAMES = ("identities",)
    FUNCTION = "build"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("Build one person's identity (a face embedding, with clip_vision the face's CLIP features "
                   "for FaceID Plus, with eva_clip what PuLID-Flux reads) from reference images, for "
                   "MultiIDApply and IDRestore.")

    def build(self, images, name, backend, identities=None, clip_vision=None, eva_clip=None):
        import comfy.utils

        before = list(identities or [])
        name = name.strip() or f"person {len(before) + 1}"
        if any(i.name == name for i in before):  # before the costly embedding
            raise ValueError(f"an identity named {name!r} is already in the list; give each person their own name")
        references = images_to_numpy(validate.image("images", images))
        progress = comfy.utils.ProgressBar(len(references))
        roots = insightface_roots()
        encoder = None if clip_vision is None else ComfyFaceCLIPEncoder(clip_vision)
        embedder = make_embedder(backend, roots)
        with pulid_encoding(eva_clip, roots) as pulid_encoder:      # None without eva_clip
            identity = build_identity(name, references, embedder, on_image=lambda i: progress.update(1),
                                      clip_encoder=encoder, pulid_encoder=pulid_encoder)
        notes = []
        no_pack = find_pack_or_reason(roots)[1] if backend == "auto" else ""
        if no_pack and identity.embedding_model == DLIB.family:   # say why, on the node and in the log
            notes.append(fallback_note([DLIB_IDENTITIES], no_pack))
            log_once(notes[-1])
        # ui: the report web/magicid.js shows under the node
        return {"ui": {"magicid_notes": notes}, "result": _appended(before, identity)}


def _appended(before: list, identity) -> tuple[list]:
    if any(i.name == identity.name for i in before):
        raise ValueError(f"an identity named {identity.name!r} is already in the list; give each person their own name")
    if before and before[0].embedding_model != identity.embedding_model:
        raise ValueError(f"{identity.name!r} is a {identity.embedding_model} embedding but the identities before it "
                         f"are {before[0].embedding_model}; every identity needs the same model")
    return (before + [identity],)


class IdentityFromEmbedding:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "embedding": ("EMBEDS", {"tooltip": "insightface face embedding(s) of ONE person, (512,) or (N, 512) "
                                                    "(normed_embedding or embedding), e.g. an .ipadpt file loaded by "
                                                    "IPAdapter_plus' IPAdapterLoadEmbeds. Several rows are averaged."}),
                "embedding_model": (embedding_models(), {"tooltip":
                    "The insightface pack that computed it (IPAdapter_plus FaceID: buffalo_l by default; InstantID: "
                    "antelopev2). Faces are compared only with identities of the same model."}),
                "name": ("STRING", {"default": "", "tooltip": "Who this is; empty = 'person N'."}),
            },
            "optional": {
                "identities": (IDENTITIES, {"tooltip": "Identities built so far; this one is appended."}),
            },
        }

    RETURN_TYPES = (IDENTITIES,)
    RETURN_NAMES = ("identities",)
    FUNCTION = "build"
    CATEGORY = f"{CATEGORY}/identity"
    DESCRIPTION = ("An identity from a face embedding another pack already computed (insightface, as IPAdapter "
                   "FaceID and InstantID use it): a normalised embedding passes through unchanged.")

    def build(self, embedding, embedding_model, name, identities=None):
        before = list(identities or [])
        name = name.strip() or f"person {len(before) + 1}"
        vectors = embedding.detach().cpu().float().numpy() if hasattr(embedding, "detach") else embedding
        return _appended(before, identity_from_embeddings(name, vectors, embedding_model))
