"""A ComfyUI base directory in which the shipped workflows run in seconds on a CPU.

Used by tests/host/test_workflows_host.py and test_workflow_layout_host.py, and by the
workflow generator when it measures and photographs the workflows in the real app.

What is substituted, and why:
- Model loaders: CheckpointLoaderSimple and ControlNetLoader become the test-only nodes
  of tiny_loader_nodes.py (same outputs), which return tiny real ComfyUI models: ComfyUI
  recognises a checkpoint by its tensor shapes, so a tiny file with the real key layout
  would be refused, and the real files are gigabytes. SDXL workflows get the same tiny
  SD1.5-shaped model (the graph is what is exercised).
- Identity model: IdentityFromImages becomes TinyIdentityFromImages (the pack's code with
  a dlib-based stand-in for insightface's ArcFace files; see tiny_loader_nodes.py).
- Adapter files: MagicIDAdapterLoader runs unchanged on tiny files written under the real
  names into models/ipadapter, in the real FaceID and FaceID Plus v2 key layouts, sized for the
  tiny UNet; so does LoraLoaderModelOnly on the FaceID LoRAs (models/loras: kohya keys, as h94's
  files, rank 4).
- CLIP vision: CLIPVisionLoader becomes TinyCLIPVisionLoader (a tiny seeded ComfyUI
  ClipVisionModel, as wide as the tiny Plus v2 files read); IdentityFromImages encodes each
  reference face with it through the pack's own code.
- Flux.1: UNETLoader, DualCLIPLoader and VAELoader become tiny ComfyUI Flux models (ComfyUI's Flux
  class and FluxClipModel at tiny widths, a 16-channel TAESD-layout VAE); pulid_flux_v0.9.1.safetensors
  in models/pulid is a seeded file of the real key layout sized for that Flux, written by the
  reference's own classes as tests/host/test_pulid_flux_host.py writes its file (the pack's own
  classes, same key names, where MAGICID_PEERS_DIR does not hold the reference).
- The other model files the workflows name (checkpoints, ControlNets) are empty files under their
  real names, never read (their loaders are substituted): the front end sees a complete install.
- Work size: step counts, IDRestore's working size and the group workflows' pixel budget are
  turned down (FAST): the tiny UNet attends over every latent cell, so SDXL's 1 MP takes
  minutes a step on a CPU. Every node still runs its full code path.
- Input pictures: the example files the workflows name, made from the pack's sample photo.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from safetensors.torch import save_file

from tests.host.comfy_server import PACK_DIR, PACK_NAME
from tests.host.pulid_reference import TINY_CA, TINY_IDFORMER
from tests.host.example_inputs import write_input_pictures
from tests.host.tiny_loader_nodes import SUBSTITUTES  # noqa: F401  (re-exported for the callers)
from tests.host.tiny_models import TINY_CLIP_VISION_WIDTH
from tests.support.mgmica_layouts import faceid_state_dict
from tests.support.pulid_layouts import pulid_flux_state_dict, reference_dir, reference_encoders
from tools.workflow_models import FACEID_LORAS, MODELS

HERE = Path(__file__).resolve().parent

# the tiny UNet's cross-attention widths in diffusers order: down, up, mid
TINY_UNET_WIDTHS = [32, 64] + [64, 64, 32, 32] + [64]
# the same layers by their diffusers names, as kohya LoRA keys spell them
TINY_UNET_ATTENTIONS = ["down_blocks_0_attentions_0", "down_blocks_1_attentions_0", "up_blocks_0_attentions_0",
                        "up_blocks_0_attentions_1", "up_blocks_1_attentions_0", "up_blocks_1_attentions_1",
                        "mid_block_attentions_0"]
ADAPTER_FILES = ("ip-adapter-faceid_sd15.bin", "ip-adapter-faceid_sdxl.bin",
                 "ip-adapter-faceid-plusv2_sd15.bin", "ip-adapter-faceid-plusv2_sdxl.bin")
PULID_FILE = "pulid_flux_v0.9.1.safetensors"
FAST = {"steps": 2, "zoom_size": 256, "megapixels": 0.25}
FAST_PER_NODE = {"IDRestore": {"refinement": 0}}  # DDIMInvert keeps its refinement


def make_workflow_base_dir(base: Path) -> Path:
    """Fill ``base`` (an empty folder): the pack and the stand-in loaders in custom_nodes,
    the example pictures in input, tiny FaceID adapter files in models/ipadapter."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_DIR, target_is_directory=True)
    (base / "custom_nodes" / "magicid_tiny_loaders.py").symlink_to(HERE / "tiny_loader_nodes.py")
    write_input_pictures(base / "input")
    for name, model in MODELS.items():
        (base / "models" / model.folder).mkdir(exist_ok=True)
        (base / "models" / model.folder / name).touch()  # the front end lists it; the adapters and LoRAs follow
    for i, name in enumerate(ADAPTER_FILES):
        state = (faceid_plus_state_dict if "faceid-plus" in name else faceid_state_dict)(
            widths=TINY_UNET_WIDTHS, context_dim=768, seed=i)
        torch.save(state, base / "models" / "ipadapter" / name)
        save_file(faceid_lora_state_dict(seed=10 + i), base / "models" / "loras" / FACEID_LORAS[name])
    save_file(pulid_flux_state_dict(pulid_flux_classes(), encoder_dims=TINY_IDFORMER, ca_dims=TINY_CA),
              str(base / "models" / "pulid" / PULID_FILE))
    return base


def pulid_flux_classes():
    """What writes the tiny PuLID-Flux file: the reference's IDFormer / PerceiverAttentionCA where
    MAGICID_PEERS_DIR holds it, else the pack's, whose parameter names are the file's keys
    (tests/test_pulid_flux.py holds them to the reference's)."""
    if reference_dir() is not None:
        return reference_encoders()
    from magicid_core.identity import pulid_flux

    return SimpleNamespace(IDFormer=pulid_flux.IDFormer, PerceiverAttentionCA=pulid_flux.PulidCrossAttention)


def faceid_plus_state_dict(widths: list[int], context_dim: int, seed: int) -> dict:
    """A FaceID Plus v2 file for the tiny UNet and TinyCLIPVisionLoader: FaceID's layers and an
    ``image_proj`` with ProjModelFaceIdPlus's keys (test_peer_parity_faceid_plus.py holds the pack's
    reading of them to IPAdapter_plus's own class), shrunk to one perceiver layer of one head."""
    from magicid_core.identity.projections import FaceIDPlusProjection

    state = faceid_state_dict(widths=widths, context_dim=context_dim, seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        proj = FaceIDPlusProjection(embedding_dim=512, hidden=1024, context_dim=context_dim, tokens=4,
                                    clip_dim=TINY_CLIP_VISION_WIDTH, depth=1, heads=1, ff_hidden=64)
    state["image_proj"] = proj.state_dict()
    return state


def faceid_lora_state_dict(rank: int = 4, seed: int = 0) -> dict:
    """A FaceID LoRA for the tiny UNet in h94's key layout (kohya: lora_unet_<diffusers name>, with
    lora_down / lora_up / alpha) on every attention projection."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for block, width in zip(TINY_UNET_ATTENTIONS, TINY_UNET_WIDTHS):
        for attn, proj, fan_in in [(a, p, 768 if a == "attn2" and p in ("to_k", "to_v") else width)
                                   for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out_0")]:
            key = f"lora_unet_{block}_transformer_blocks_0_{attn}_{proj}"
            state[f"{key}.lora_down.weight"] = torch.randn(rank, fan_in, generator=gen) * 0.02
            state[f"{key}.lora_up.weight"] = torch.randn(width, rank, generator=gen) * 0.02
            state[f"{key}.alpha"] = torch.tensor(float(rank))
    return state
