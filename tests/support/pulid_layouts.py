"""Seeded PuLID-Flux files built by the reference's own classes (lldacing/ComfyUI_PuLID_Flux_ll's
``encoders_flux``), so the key layout is the reference's, not our assumption of it.

``reference_encoders()`` imports that module from MAGICID_PEERS_DIR (it needs only torch); the
tests skip with ``missing_reference()``'s reason without it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

PEER = "ComfyUI_PuLID_Flux_ll"


def reference_dir() -> Path | None:
    peers = os.environ.get("MAGICID_PEERS_DIR", "")
    path = Path(peers, PEER) if peers else None
    return path if path is not None and (path / "encoders_flux.py").is_file() else None


def missing_reference() -> str:
    if not os.environ.get("MAGICID_PEERS_DIR"):
        return f"MAGICID_PEERS_DIR is not set: point it at a folder holding {PEER} (PuLID-Flux's reference)"
    return "" if reference_dir() else f"MAGICID_PEERS_DIR={os.environ['MAGICID_PEERS_DIR']} lacks {PEER}/encoders_flux.py"


def reference_encoders():
    """The reference's encoders_flux module (IDFormer, PerceiverAttentionCA), imported by path."""
    spec = importlib.util.spec_from_file_location("pulid_reference_encoders_flux", reference_dir() / "encoders_flux.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_module(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Seeded weights of a trained network's scale (layer-norm gains near 1, projections ~std)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            is_norm_gain = p.ndim == 1 and name.endswith("weight")
            p.copy_(1.0 + 0.1 * noise if is_norm_gain else std * noise)
    return module


def encoder_state_dict(encoders, seed: int = 0, **dims) -> dict[str, torch.Tensor]:
    """``pulid_encoder.*`` of a seeded reference IDFormer (its default dims unless given)."""
    encoder = seed_module(encoders.IDFormer(**dims), seed)
    return {f"pulid_encoder.{k}": v for k, v in encoder.state_dict().items()}


def ca_state_dict(encoders, index: int, seed: int = 0, **dims) -> dict[str, torch.Tensor]:
    """``pulid_ca.{index}.*`` of a seeded reference PerceiverAttentionCA."""
    ca = seed_module(encoders.PerceiverAttentionCA(**dims), seed + 1000 + index)
    return {f"pulid_ca.{index}.{k}": v for k, v in ca.state_dict().items()}


def pulid_flux_state_dict(encoders, count: int = 20, seed: int = 0, dtype=torch.bfloat16,
                          encoder_dims=None, ca_dims=None) -> dict[str, torch.Tensor]:
    """A whole PuLID-Flux file's state dict (v0.9.x is stored in 16 bits, as here by default)."""
    as_stored = lambda part: {k: v.to(dtype).contiguous() for k, v in part.items()}  # noqa: E731
    state = as_stored(encoder_state_dict(encoders, seed, **(encoder_dims or {})))
    for i in range(count):   # one CA at a time: a real-width file is 1.2 GB in 16 bits, 2.3 GB in 32
        state.update(as_stored(ca_state_dict(encoders, i, seed, **(ca_dims or {}))))
    return state


# -- EVA-CLIP and face parsing files, written by the reference's own code ------------------------------

EVA_CONFIG = "EVA02-CLIP-L-14-336"


def reference_eva_clip():
    """(build, read): build() makes the vendored EVA-CLIP's visual tower by its own code from its own config
    (seed torch first); read is its file reader ``load_state_dict``. Its tokenizer imports ftfy: a stand-in
    module when missing (unused)."""
    import json
    import sys
    import types

    if "ftfy" not in sys.modules and importlib.util.find_spec("ftfy") is None:
        sys.modules.setdefault("ftfy", types.ModuleType("ftfy"))
    sys.path.insert(0, str(reference_dir()))
    try:
        from eva_clip.factory import load_state_dict
        from eva_clip.model import _build_vision_tower
    finally:
        sys.path.remove(str(reference_dir()))
    config = json.loads((reference_dir() / "eva_clip" / "model_configs" / f"{EVA_CONFIG}.json").read_text())
    assert config["vision_cfg"]["rope"], "the reference's create_model sets RoPE=1 for this config"
    return lambda: _build_vision_tower(config["embed_dim"], config["vision_cfg"]).eval(), load_state_dict


def eva_clip_file_state(seed: int = 7) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """(the vendored tower, the state dict of an EVA02_CLIP_L_336_psz14_s6B.pt in the real format): the tower's
    own initialisation, seeded, every weight moved a little (no gain exactly 1, no bias 0), stored in 16 bits
    as ``visual.*`` with its rotary tables, beside text-tower keys of the real shapes and ``logit_scale``."""
    build, _ = reference_eva_clip()
    torch.manual_seed(seed)
    tower = build()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in tower.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    state = {f"visual.{k}": v.half() for k, v in tower.state_dict().items()}
    state["text.positional_embedding"] = torch.randn(77, 768, generator=gen).half()    # the text tower: ignored
    state["text.ln_final.weight"] = torch.ones(768, dtype=torch.half)
    state["text.ln_final.bias"] = torch.zeros(768, dtype=torch.half)
    state["logit_scale"] = torch.tensor(4.6)
    return tower, state


def parsing_bisenet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """facexlib's own BiSeNet (19 labels), its initialisation seeded and moved a little: parsing_bisenet.pth."""
    from facexlib.parsing.bisenet import BiSeNet

    torch.manual_seed(seed)
    network = BiSeNet(num_class=19)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return network.state_dict()
