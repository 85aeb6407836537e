"""IP-Adapter FaceID Plus / Plus v2 files built by IPAdapter_plus's own classes, seeded.

The ``image_proj`` state dict is that of IPAdapter_plus's ``ProjModelFaceIdPlus`` (imported from
its ``image_proj_models.py`` in MAGICID_PEERS_DIR, never copied), so its key layout and sizes are
the reference's, not our reading of them; ``ip_adapter`` holds to_k_ip / to_v_ip per layer and
FaceID's LoRA keys (``0.to_q_lora.down.weight`` is how IPAdapter_plus recognises a FaceID file).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from tests.support.mgmica_layouts import ip_layers

IPADAPTER_PLUS = "ComfyUI_IPAdapter_plus"


def reference_module_path() -> Path | None:
    peers = os.environ.get("MAGICID_PEERS_DIR", "")
    path = Path(peers, IPADAPTER_PLUS, "image_proj_models.py") if peers else None
    return path if path is not None and path.is_file() else None


def reference_missing() -> str:
    if reference_module_path() is None:
        return f"MAGICID_PEERS_DIR is not set or lacks {IPADAPTER_PLUS}/image_proj_models.py"
    if importlib.util.find_spec("einops") is None:
        return "IPAdapter_plus's image_proj_models.py needs einops"
    return ""


def image_proj_models():
    """IPAdapter_plus's ``image_proj_models`` module, loaded from its file."""
    path = reference_module_path()
    spec = importlib.util.spec_from_file_location("ipadapter_plus_image_proj_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded_reference_projection(context_dim: int, clip_dim: int, seed: int, tokens: int = 4):
    """IPAdapter_plus's ProjModelFaceIdPlus as IPAdapter builds it for a FaceID Plus file
    (``init_proj_faceid``: 512-d identity, ``num_tokens`` 4), with seeded weights (LayerNorm gains near 1)."""
    module = image_proj_models()
    torch.manual_seed(seed)   # the reference's own init draws from the global generator
    proj = module.ProjModelFaceIdPlus(cross_attention_dim=context_dim, id_embeddings_dim=512,
                                      clip_embeddings_dim=clip_dim, num_tokens=tokens)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in proj.modules():
            for name, p in sub.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen) * 0.05
                p.copy_(1 + noise if isinstance(sub, torch.nn.LayerNorm) and name == "weight" else noise)
    return proj.eval()


def faceid_plus_state_dict(widths: list[int], context_dim: int, clip_dim: int, seed: int) -> tuple[dict, object]:
    """(the file's nested state dict, the reference projection it came from)."""
    proj = seeded_reference_projection(context_dim, clip_dim, seed)
    state = {"image_proj": {k: v.clone() for k, v in proj.state_dict().items()},
             "ip_adapter": ip_layers(torch.Generator().manual_seed(seed + 1), widths, context_dim, with_lora=True)}
    return state, proj
