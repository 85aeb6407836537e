"""MultiIDApply's PuLID-Flux injection against lldacing/ComfyUI_PuLID_Flux_ll's ApplyPulidFlux, in ComfyUI.

A tiny Flux (ComfyUI's own Flux class, Flux.1's 19 + 38 blocks, 64 wide) and a seeded PuLID-Flux file
of the real key layout written by the reference's own classes at the tiny width (the reference's
hard-coded IDFormer / CA dims are set to the tiny model's; its code is otherwise run as shipped,
forward_orig swap included). Both sides get the same ArcFace vector and EVA-CLIP features:
- one identity over the whole image gives ApplyPulidFlux's denoised latents;
- four identities in disjoint quadrants, in one pass, give four chained ApplyPulidFlux nodes, each
  with its quadrant as attn_mask (every token then gets what its identity alone gives it);
at the first, a middle and the last step, to 1e-5 of the largest latent.

The reference's inputs are stand-ins: insightface's FaceAnalysis returns a given face, the EVA-CLIP
model returns given features, and facexlib (the reference's face parser, whose output only feeds
that EVA-CLIP) is a stand-in module when it is not installed; so are timm and ftfy, which the
vendored EVA-CLIP imports and nothing here runs.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from magicid_core.diffusion.token_identities import TokenIdentities
from magicid_core.identity.pulid_flux import hooked_blocks, load_pulid_flux
from tests.host.tiny_models import TINY_FLUX, flux_conditioning, tiny_flux_model
from tests.support.pulid_layouts import PEER, missing_reference, pulid_flux_state_dict, reference_dir

pytestmark = pytest.mark.skipif(bool(missing_reference()), reason=missing_reference() or "present")

TOLERANCE = 1e-5                     # of the largest latent
STEPS = 3
LATENT = 16                          # 16 x 16 latent: an 8 x 8 token grid, a 128 px image
SIZE = LATENT * 8
TINY_IDFORMER = dict(dim=64, depth=5, heads=1, output_dim=32)
TINY_CA = dict(dim=TINY_FLUX["hidden_size"], dim_head=128, heads=2, kv_dim=32)
FILE = "pulid_flux_tiny.safetensors"
KPS = np.array([[50, 55], [78, 55], [64, 70], [52, 88], [76, 88]], np.float32)


# -- the reference's inputs -------------------------------------------------------------------------

class FaceAnalysisStandIn:
    """insightface FaceAnalysis as ApplyPulidFlux uses it: ``det_model.input_size``, ``get(image)``."""

    def __init__(self, raw_embedding: np.ndarray):
        self.det_model = SimpleNamespace(input_size=(640, 640))
        self.raw_embedding = raw_embedding.astype(np.float32)

    def get(self, image):
        from insightface.app.common import Face as InsightFace

        return [InsightFace(bbox=np.array([40, 40, 90, 100], np.float32), kps=KPS.copy(), det_score=0.9,
                            embedding=self.raw_embedding.copy())]


class EvaClipStandIn:
    """The EVA-CLIP visual tower as ApplyPulidFlux calls it, returning given features."""

    image_size = 336
    image_mean = (0.48145466, 0.4578275, 0.40821073)
    image_std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, embedding: torch.Tensor, hidden: list[torch.Tensor]):
        self.embedding, self.hidden = embedding, hidden

    def to(self, *args, **kwargs):
        return self

    def __call__(self, image, return_all_features=False, return_hidden=True, shuffle=False):
        return self.embedding.clone(), [h.clone() for h in self.hidden]


def _import_only_stand_in(*names: str) -> dict:
    """Modules whose every name is a placeholder: the vendored EVA-CLIP imports timm's layers at import
    time, and nothing of it runs here (the EVA-CLIP model is the stand-in above)."""
    def placeholder(attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return type(attribute, (), {"__init__": lambda self, *a, **k: None})
    modules = {name: types.ModuleType(name) for name in names}
    for module in modules.values():
        module.__getattr__ = placeholder
    return modules


def _facexlib_stand_in() -> dict:
    """facexlib's entry points the reference imports; its parser's output only feeds the EVA-CLIP stand-in."""
    parse = lambda image: (torch.zeros(image.shape[0], 19, image.shape[2], image.shape[3]),)  # noqa: E731
    modules = {name: types.ModuleType(name) for name in
               ("facexlib", "facexlib.detection", "facexlib.parsing", "facexlib.utils", "facexlib.utils.misc")}
    modules["facexlib.detection"].init_detection_model = lambda *a, **k: None
    modules["facexlib.parsing"].init_parsing_model = lambda *a, **k: parse
    modules["facexlib.utils.misc"].img2tensor = modules["facexlib.utils.misc"].imwrite = lambda *a, **k: None
    return modules


def identity_inputs(seed: int):
    """An insightface-like raw ArcFace vector, an EVA-CLIP embedding and its 5 hidden states."""
    gen = torch.Generator().manual_seed(100 + seed)
    raw = (torch.randn(512, generator=gen) * 1.1).numpy()
    return raw, torch.randn(1, 768, generator=gen), [torch.randn(1, 577, 1024, generator=gen) for _ in range(5)]


# -- the two sides ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    import folder_paths

    stand_ins = {} if _importable("facexlib") else _facexlib_stand_in()
    if not _importable("timm"):
        stand_ins.update(_import_only_stand_in("timm", "timm.layers", "timm.models", "timm.models.layers", "timm.loss"))
    if not _importable("ftfy"):
        stand_ins.update(_import_only_stand_in("ftfy"))
    added = [name for name in stand_ins if name not in sys.modules]
    sys.modules.update({name: stand_ins[name] for name in added})
    models_dir = folder_paths.models_dir
    folder_paths.models_dir = str(tmp_path_factory.mktemp("peer_models"))   # the reference makes folders there
    try:
        loaded = asyncio.run(comfy_nodes.load_custom_node(str(reference_dir())))
    finally:
        folder_paths.models_dir = models_dir
    assert loaded, f"ComfyUI's custom-node loader failed to load {PEER} (see the log above)"
    reference = next(m for name, m in sys.modules.items() if name.endswith(f"{PEER}.pulidflux"))
    encoders = next(m for name, m in sys.modules.items() if name.endswith(f"{PEER}.encoders_flux"))
    # re-parametrised to the tiny Flux: the reference builds IDFormer() and PerceiverAttentionCA() by default
    reference.IDFormer = functools.partial(encoders.IDFormer, **TINY_IDFORMER)
    reference.PerceiverAttentionCA = functools.partial(encoders.PerceiverAttentionCA, **TINY_CA)
    folder = tmp_path_factory.mktemp("pulid")
    save_file(pulid_flux_state_dict(encoders, encoder_dims=TINY_IDFORMER, ca_dims=TINY_CA), str(folder / FILE))
    folder_paths.add_model_folder_path("pulid", str(folder))
    yield SimpleNamespace(classes=comfy_nodes.NODE_CLASS_MAPPINGS, path=str(folder / FILE),
                          base=tiny_flux_model(seed=1))
    for name in added:
        sys.modules.pop(name, None)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def apply_pulid_flux(host, model, seed, weight, start=0.0, end=1.0, mask=None):
    (pulid,) = host.classes["PulidFluxModelLoader"]().load_model(FILE)
    raw, eva, hidden = identity_inputs(seed)
    image = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():            # as ComfyUI's executor runs every node
        return host.classes["ApplyPulidFlux"]().apply_pulid_flux(
            model, pulid, EvaClipStandIn(eva, hidden), FaceAnalysisStandIn(raw), image, weight, start, end,
            attn_mask=None if mask is None else torch.from_numpy(mask)[None])[0]


def pack_module(host, name: str):
    """A module of this pack as ComfyUI loaded it (its nodes package is not importable by name)."""
    import importlib

    return importlib.import_module(host.classes["MultiIDApply"].__module__.rsplit(".", 1)[0] + "." + name)


def ours(host, seeds, masks, weights, start=0.0, end=1.0):
    add_pulid_identities = pack_module(host, "host.dit").add_pulid_identities
    sigma_window = pack_module(host, "host.sampling").sigma_window
    pulid = load_pulid_flux(host.path)
    tokens = torch.cat([pulid.identity_tokens(torch.from_numpy(raw)[None], eva, hidden)
                        for raw, eva, hidden in (identity_inputs(s) for s in seeds)])
    identities = TokenIdentities(tokens, np.stack(masks), weights, sigma_window(host.base, start, end))
    return add_pulid_identities(host.base, identities, pulid, hooked_blocks(19, 38))


def denoised_steps(model, cfg=2.0, seed=3) -> torch.Tensor:
    """Denoised latents of the first, a middle and the last of STEPS euler steps (cond + uncond batched)."""
    import comfy.sample

    latent = torch.zeros(1, 16, LATENT, LATENT)
    seen = []
    comfy.sample.sample(model, comfy.sample.prepare_noise(latent, seed), STEPS, cfg, "euler", "simple",
                        flux_conditioning(1), flux_conditioning(2), latent,
                        callback=lambda i, x0, x, n: seen.append(x0.clone()), disable_pbar=True, seed=seed)
    assert len(seen) == STEPS
    return torch.stack([seen[0], seen[STEPS // 2], seen[-1]])


def check_close(label, a, b):
    scale = float(b.abs().max())
    diff = float((a - b).abs().max())
    print(f"{label}: max |ours - reference| = {diff:.3g} (largest latent {scale:.3g})")
    assert diff <= TOLERANCE * scale, f"{label}: {diff:.3g} > {TOLERANCE:g} x {scale:.3g}"


def quadrant(i: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    half = SIZE // 2
    m[(i // 2) * half:(i // 2 + 1) * half, (i % 2) * half:(i % 2 + 1) * half] = 1
    return m


# -- the tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [(0.0, 1.0), (0.0, 0.5)])
def test_one_identity_over_the_whole_image_equals_apply_pulid_flux(host, window):
    theirs = denoised_steps(apply_pulid_flux(host, host.base, 0, 0.9, *window))
    mine = denoised_steps(ours(host, [0], [np.ones((SIZE, SIZE), np.float32)], [0.9], *window))
    check_close(f"one identity, window {window}", mine, theirs)
    assert float((mine - denoised_steps(host.base)).abs().max()) > 1e-3, "the identity must change the picture"


def test_four_identities_in_quadrants_equal_four_masked_apply_pulid_flux(host):
    weights = [1.0, 0.6, 1.2, 0.8]
    chained = host.base
    for i, w in enumerate(weights):
        chained = apply_pulid_flux(host, chained, i, w, mask=quadrant(i))
    mine = denoised_steps(ours(host, [0, 1, 2, 3], [quadrant(i) for i in range(4)], weights))
    check_close("four identities", mine, denoised_steps(chained))
