"""EVA-CLIP through timm against the EVA-CLIP code lldacing/ComfyUI_PuLID_Flux_ll vendors, at real dims.

The vendored tower (its own ``_build_vision_tower`` from its EVA02-CLIP-L-14-336 config, its own
initialisation, seeded and perturbed) writes the
file in the real format (a torch.save'd state dict, ``visual.*`` keys plus text-tower keys, 16-bit); the
vendored tower reads it back through the reference's own reader (which, for this config, drops the file's
rotary tables and keeps its float32 ones), ours through timm; for the same image the embedding and the 5
hidden states PuLID reads agree to float32 rounding (1e-5 of the largest value). Needs timm (with
torchvision) and MAGICID_PEERS_DIR; the vendored code imports ftfy for its tokenizer, which is a stand-in
module here when missing (unused). tests/host/test_pulid_identity_host.py runs the reference's whole loader.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from magicid_core.identity.eva_clip import HIDDEN_BLOCKS, load_eva_clip, normalise
from tests.support.pulid_layouts import eva_clip_file_state, missing_reference, reference_eva_clip

TOLERANCE = 1e-5


def _missing() -> str:
    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("torchvision") is None:
        return "timm (with torchvision) is not installed: python install.py --flux (or pip install timm) to read EVA-CLIP"
    return missing_reference()


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "present")


def test_eva_clip_through_timm_equals_the_vendored_eva_clip(tmp_path, monkeypatch):
    tower, state = eva_clip_file_state(seed=7)
    _, reference_read = reference_eva_clip()
    path = tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt"
    torch.save(state, path)
    monkeypatch.setenv("RoPE", "1")      # as the reference's create_model sets it for EVA02-CLIP-L-14-336
    as_read = reference_read(str(path))
    assert "visual.rope.freqs_cos" in state and "visual.rope.freqs_cos" not in as_read
    tower.load_state_dict({k[len("visual."):]: v for k, v in as_read.items() if k.startswith("visual.")},
                          strict=False)      # strict=False as its load_checkpoint: the rotary tables stay its own
    image = normalise(torch.rand(1, 3, 336, 336, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        their_embedding, their_hidden = tower(image, return_all_features=False, return_hidden=True, shuffle=False)
    del tower
    embedding, hidden = load_eva_clip(str(path)).features(image)
    assert len(hidden) == len(their_hidden) == len(HIDDEN_BLOCKS)
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    measured = [rel(embedding, their_embedding)] + [rel(a, b) for a, b in zip(hidden, their_hidden)]
    print("EVA-CLIP through timm, relative differences (embedding, hidden states):", [f"{m:.2g}" for m in measured])
    assert all(h.shape == (1, 577, 1024) for h in hidden)
    assert max(measured) < TOLERANCE


def test_eva_clip_in_16_bits_agrees_with_float32(tmp_path):
    """On a GPU MagicIDEvaClipLoader runs EVA-CLIP in bf16 (fp16 where bf16 is not supported), as the
    reference runs it in the Flux model's dtype (nodes/host/pulid_models.eva_clip_dtype): the features
    PuLID reads stay those of float32 within 16-bit rounding (measured on this seeded tower: embedding
    cosine 0.9995 in bf16, 0.999996 in fp16)."""
    _, state = eva_clip_file_state(seed=7)
    path = tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt"
    torch.save(state, path)
    image = normalise(torch.rand(1, 3, 336, 336, generator=torch.Generator().manual_seed(0)))
    embedding, hidden = load_eva_clip(str(path)).features(image)
    for dtype, cosine_floor, hidden_tolerance in ((torch.bfloat16, 0.999, 0.05), (torch.float16, 0.99999, 0.005)):
        tower = load_eva_clip(str(path), dtype)
        assert next(tower.model.parameters()).dtype == dtype
        half_embedding, half_hidden = tower.features(image)
        cosine = float(torch.nn.functional.cosine_similarity(half_embedding.float(), embedding))
        worst = max(float((a.float() - b).abs().max() / b.abs().max()) for a, b in zip(half_hidden, hidden))
        assert cosine >= cosine_floor and worst <= hidden_tolerance, f"{dtype}: cosine {cosine}, hidden {worst}"
