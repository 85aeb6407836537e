"""Test-only ComfyUI nodes that stand in for the model loaders of the shipped workflows.

The host workflow test links this file into the test server's custom_nodes. Each node
has the outputs of the loader it replaces and returns tiny real ComfyUI models built
in process (tests/host/tiny_models.py): nothing is downloaded, and the nodes between the
loaders and the outputs (the pack's and ComfyUI's) run unchanged.

Why substitute the loaders instead of writing tiny checkpoint files: ComfyUI recognises
a checkpoint by its tensor shapes (SD1.5 needs 320 base channels, a ~1 GB UNet), so a
tiny file with the real key layout is refused as an unknown model type.

The identity model is the one other stand-in: the adapters need 512-d ArcFace embeddings
from insightface's ONNX files, which are not here. TinyIdentityFromImages / TinyIDSimilarity
run the pack's own IdentityFromImages / IDSimilarity with one change, the embedder: the
pack's dlib face finder and descriptor (real, shipped weights) lifted to 512-d by a fixed
orthonormal map and labelled as ArcFace, so different people still get different embeddings.
PuLID-Flux identities (IdentityFromImages with eva_clip) run the pack's PulidFaceEncoder with that
stand-in as antelopev2's ArcFace, an ellipse for facexlib's face parser, and TinyEvaTower, which has
the real EVA-CLIP's interface and sizes, for EVA02-CLIP-L-14-336 (TinyEvaClipLoader).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch


def _sibling(name: str):
    """The module ``name``.py beside this file (its real folder, through ComfyUI's symlink)."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"magicid_tiny_loaders_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


try:
    from . import tiny_models        # imported by the tests as tests.host.tiny_loader_nodes
except ImportError:                  # ComfyUI loads this file alone from its custom_nodes: no package
    tiny_models = _sibling("tiny_models")

CPU = torch.device("cpu")


def tiny_clip(seed: int = 0):
    """A real ComfyUI CLIP (SD1.5 tokenizer and text model) with one 768-wide layer."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    small = {"num_hidden_layers": 1, "intermediate_size": 128}
    clip = comfy.sd.CLIP(target=target, model_options={"clip_l_model_config": small, "load_device": CPU,
                                                       "offload_device": CPU, "dtype": torch.float32})
    tiny_models._seed_weights(clip.cond_stage_model, seed, std=0.02)
    return clip


def tiny_flux_clip(seed: int = 0):
    """A real ComfyUI CLIP of Flux.1's kind (ComfyUI's FluxTokenizer and FluxClipModel: CLIP-L's pooled
    vector, T5-XXL's tokens), one layer each, as wide as the tiny Flux reads them (tiny_models.TINY_FLUX)."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.flux

    flux = tiny_models.TINY_FLUX
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer,
                                                    comfy.text_encoders.flux.FluxClipModel)
    options = {"clip_l_model_config": {"num_hidden_layers": 1, "intermediate_size": 64, "num_attention_heads": 2,
                                       "hidden_size": flux["vec_in_dim"]},
               "t5xxl_model_config": {"num_layers": 1, "d_model": flux["context_in_dim"], "d_ff": 64, "num_heads": 2,
                                      "d_kv": flux["context_in_dim"] // 2},
               "load_device": CPU, "offload_device": CPU, "dtype": torch.float32}
    clip = comfy.sd.CLIP(target=target, model_options=options)
    tiny_models._seed_weights(clip.cond_stage_model, seed, std=0.02)
    return clip


def tiny_controlnet(seed: int = 0):
    """A real ComfyUI ControlNet whose control model matches the tiny UNet's layout."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    config = {k: v for k, v in tiny_models.TINY_SD15_UNET.items() if k != "out_channels"}
    config.update(num_heads=8, num_head_channels=-1,  # what SD15 adds to every UNet config
                  hint_channels=3, operations=comfy.ops.disable_weight_init, dtype=torch.float32, device=CPU)
    control_model = comfy.cldm.cldm.ControlNet(**config)
    tiny_models._seed_weights(control_model, seed, std=0.02)
    return comfy.controlnet.ControlNet(control_model, load_device=CPU, manual_cast_dtype=None)


class TinyCheckpointLoader:
    """Stands in for CheckpointLoaderSimple."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": ""})}}

    def load(self, ckpt_name):
        return (tiny_models.tiny_sd15_model(seed=1), tiny_clip(seed=2), tiny_models.tiny_vae(seed=3))


class TinyControlNetLoader:
    """Stands in for ControlNetLoader."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("CONTROL_NET",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net_name": ("STRING", {"default": ""})}}

    def load(self, control_net_name):
        return (tiny_controlnet(seed=4),)


class TinyUNETLoader:
    """Stands in for UNETLoader (the Flux workflows' diffusion model): ComfyUI's Flux class, tiny widths."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": ("STRING", {"default": ""}), "weight_dtype": ("STRING", {"default": ""})}}

    def load(self, unet_name, weight_dtype):
        return (tiny_models.tiny_flux_model(seed=1),)


class TinyDualCLIPLoader:
    """Stands in for DualCLIPLoader (type flux): tiny_flux_clip."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name1": ("STRING", {"default": ""}), "clip_name2": ("STRING", {"default": ""}),
                             "type": ("STRING", {"default": "flux"})},
                "optional": {"device": ("STRING", {"default": "default"})}}

    def load(self, clip_name1, clip_name2, type, device="default"):
        return (tiny_flux_clip(seed=2),)


class TinyVAELoader:
    """Stands in for VAELoader (Flux's ae.safetensors): a TAESD-layout VAE with Flux's 16 latent channels."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("VAE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": ""})}}

    def load(self, vae_name):
        return (tiny_models.tiny_vae(seed=3, latent_channels=16),)


class TinyCLIPVisionLoader:
    """Stands in for CLIPVisionLoader: a tiny seeded ComfyUI ClipVisionModel, as wide as the
    tiny FaceID Plus v2 files of workflow_server.py read (tiny_models.TINY_CLIP_VISION_WIDTH)."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP_VISION",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": ("STRING", {"default": ""})}}

    def load(self, clip_name):
        return (tiny_models.tiny_clip_vision(seed=6),)


class _LiftedDlibEmbedder:
    """Stands in for ArcFaceEmbedder: the pack's dlib embedder, 128-d -> 512-d (orthonormal)."""

    model_name = "arcface:antelopev2"

    def __init__(self, identity_core):
        import numpy as np

        self.dlib = identity_core.DlibEmbedder()
        self.threshold = self.dlib.threshold
        q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((512, 128)))
        self.lift = q.astype(np.float32)  # columns orthonormal: cosine similarities are kept

    def find_faces(self, image):
        return self.dlib.find_faces(image)

    def embed(self, image, box, keypoints):
        return self.lift @ self.dlib.embed(image, box, keypoints)


def _with_stand_in_embedder(node_type: str, via: str = "make_embedder", **inputs):
    """Run the pack's own node, as the server loaded it, with ArcFace replaced by the
    stand-in embedder for this one call (the ``make_embedder`` name of the module that
    holds the node's function ``via``: the node's own, or the core's analyze for FaceDetectMasks)."""
    import nodes  # ComfyUI's

    cls = nodes.NODE_CLASS_MAPPINGS[node_type]
    module = sys.modules[getattr(sys.modules[cls.__module__], via).__module__] if via != "make_embedder" \
        else sys.modules[cls.__module__]
    identity_core = sys.modules[module.make_embedder.__module__]
    real = module.make_embedder
    module.make_embedder = lambda backend="auto", roots=None: _LiftedDlibEmbedder(identity_core)
    try:
        return getattr(cls(), cls.FUNCTION)(**inputs)
    finally:
        module.make_embedder = real


class _LiftedDlibArcFace(_LiftedDlibEmbedder):
    """Stands in for the antelopev2 ArcFace PuLID-Flux reads: the same lifted dlib vector, as its raw one."""

    def embed_raw(self, image, box, keypoints):
        return self.embed(image, box, keypoints)


class _EllipseParser:
    """Stands in for facexlib's BiSeNet (face_parsing.FaceParser): logits of 19 labels, "skin" (1) inside the
    ellipse the aligned face fills, "background" (0) around it."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        inside = (x / 0.7) ** 2 + (y / 0.85) ** 2 <= 1
        logits = torch.zeros(b, 19, h, w)
        logits[:, 1], logits[:, 0] = inside.float(), (~inside).float()
        return logits

    def to(self, *args, **kwargs):
        return self


class _EvaBlock(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x, rope=None):
        return x + 0.1 * self.norm(x)


class _EvaPatches(torch.nn.Module):
    def __init__(self, width: int, patch: int):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, width, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyEvaTower(torch.nn.Module):
    """Stands in for EVA02-CLIP-L-14-336's visual tower: timm's Eva interface as EvaClipVision drives it
    (patch_embed, _pos_embed, norm_pre, blocks, norm, fc_norm, head) at the real sizes PuLID reads (336 px in
    14 px patches: 577 tokens of 1024, a 768 embedding), with 24 cheap blocks; seeded."""

    WIDTH, PATCH, TOKENS, EMBED, BLOCKS = 1024, 14, 577, 768, 24

    def __init__(self, seed: int = 0):
        super().__init__()
        self.patch_embed = _EvaPatches(self.WIDTH, self.PATCH)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, self.WIDTH))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, self.TOKENS, self.WIDTH))
        self.norm_pre, self.fc_norm = torch.nn.Identity(), torch.nn.Identity()
        self.blocks = torch.nn.ModuleList(_EvaBlock(self.WIDTH) for _ in range(self.BLOCKS))
        self.norm = torch.nn.LayerNorm(self.WIDTH)
        self.head = torch.nn.Linear(self.WIDTH, self.EMBED)
        tiny_models._seed_weights(self, seed, std=0.05)

    def _pos_embed(self, x):
        return torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed, None


def _pack_module(of, name: str):
    """The module that defines ``name`` as the pack module ``of`` sees it (ComfyUI loaded the pack under its own name)."""
    return sys.modules[getattr(of, name).__module__]


class TinyEvaClipLoader:
    """Stands in for MagicIDEvaClipLoader: the pack's MAGICID_EVA_CLIP around TinyEvaTower (the real file is
    856 MB and read through timm, which ComfyUI's requirements do not bring)."""

    CATEGORY = "MagicID tests"
    FUNCTION = "load"
    RETURN_TYPES = ("MAGICID_EVA_CLIP",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eva_clip_name": ("STRING", {"default": ""})}}

    def load(self, eva_clip_name):
        import nodes  # ComfyUI's

        loader = sys.modules[nodes.NODE_CLASS_MAPPINGS["MagicIDEvaClipLoader"].__module__]
        models = _pack_module(loader, "load_eva_clip_file")
        return (models.ComfyEvaClip(models.EvaClipVision(TinyEvaTower(seed=6)), eva_clip_name),)


def _stand_in_pulid_encoding(module, identity_core):
    """IdentityFromImages' ``pulid_encoding`` with stand-ins for the models it finds (antelopev2's ArcFace,
    facexlib's parser); the pack's PulidFaceEncoder runs on them and on the stand-in EVA-CLIP."""
    import contextlib

    encoder_class = _pack_module(_pack_module(module, "pulid_encoding"), "pulid_face_encoder").PulidFaceEncoder

    @contextlib.contextmanager
    def pulid_encoding(eva_clip, roots):
        yield None if eva_clip is None else encoder_class(_LiftedDlibArcFace(identity_core), _EllipseParser(),
                                                          eva_clip.vision)
    return pulid_encoding


class TinyIdentityFromImages:
    """Stands in for IdentityFromImages (same inputs and output)."""

    CATEGORY = "MagicID tests"
    FUNCTION = "build"
    RETURN_TYPES = ("IDENTITIES",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": ""}),
                             "backend": ("STRING", {"default": "auto"})},
                "optional": {"identities": ("IDENTITIES",), "eva_clip": ("MAGICID_EVA_CLIP",),
                             "clip_vision": ("CLIP_VISION",)}}

    def build(self, **inputs):
        if inputs.get("eva_clip") is None:
            return _with_stand_in_embedder("IdentityFromImages", **inputs)
        import nodes  # ComfyUI's

        module = sys.modules[nodes.NODE_CLASS_MAPPINGS["IdentityFromImages"].__module__]
        real = module.pulid_encoding
        module.pulid_encoding = _stand_in_pulid_encoding(module, sys.modules[module.make_embedder.__module__])
        try:
            return _with_stand_in_embedder("IdentityFromImages", **inputs)
        finally:
            module.pulid_encoding = real


class TinyIDSimilarity:
    """Stands in for IDSimilarity (same inputs and outputs)."""

    CATEGORY = "MagicID tests"
    FUNCTION = "score"
    RETURN_TYPES = ("FLOAT", "FLOAT", "STRING", "IMAGE")
    OUTPUT_IS_LIST = (True, True, False, False)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "identities": ("IDENTITIES",), "assignment": ("STRING",)},
                "optional": {"faces": ("FACES",), "image_before": ("IMAGE",)}}

    def score(self, **inputs):
        return _with_stand_in_embedder("IDSimilarity", **inputs)


class TinyFaceDetectMasks:
    """Stands in for FaceDetectMasks (same inputs and outputs): faces embedded by the same
    stand-in as the identities, so both carry one embedding model, as on a real install."""

    CATEGORY = "MagicID tests"
    FUNCTION = "detect"
    RETURN_TYPES = ("FACES", "MASK", "MASK", "IMAGE")
    RETURN_NAMES = ("faces", "face_masks", "union_mask", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        import nodes  # ComfyUI's

        return nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"].INPUT_TYPES()

    def detect(self, **inputs):
        return _with_stand_in_embedder("FaceDetectMasks", via="analyze_batch", **inputs)


# real node -> its stand-in; the stand-in keeps the real node's inputs and outputs
SUBSTITUTES = {"CheckpointLoaderSimple": "TinyCheckpointLoader", "ControlNetLoader": "TinyControlNetLoader",
               "CLIPVisionLoader": "TinyCLIPVisionLoader",
               "IdentityFromImages": "TinyIdentityFromImages", "IDSimilarity": "TinyIDSimilarity",
               "FaceDetectMasks": "TinyFaceDetectMasks",
               "UNETLoader": "TinyUNETLoader", "DualCLIPLoader": "TinyDualCLIPLoader", "VAELoader": "TinyVAELoader",
               "MagicIDEvaClipLoader": "TinyEvaClipLoader"}
NODE_CLASS_MAPPINGS = {"TinyCheckpointLoader": TinyCheckpointLoader, "TinyControlNetLoader": TinyControlNetLoader,
                       "TinyCLIPVisionLoader": TinyCLIPVisionLoader,
                       "TinyIdentityFromImages": TinyIdentityFromImages, "TinyIDSimilarity": TinyIDSimilarity,
                       "TinyFaceDetectMasks": TinyFaceDetectMasks, "TinyUNETLoader": TinyUNETLoader,
                       "TinyDualCLIPLoader": TinyDualCLIPLoader, "TinyVAELoader": TinyVAELoader,
                       "TinyEvaClipLoader": TinyEvaClipLoader}
