"""lldacing/ComfyUI_PuLID_Flux_ll (ApplyPulidFlux) run as shipped beside a tiny Flux, for the host tests
and bench/bench_pulid_flux.py.

The reference is loaded by ComfyUI's custom-node loader from MAGICID_PEERS_DIR; its hard-coded IDFormer /
CA dims are set to the tiny Flux's (``TINY_IDFORMER``, ``TINY_CA``), its code otherwise unchanged. A seeded
PuLID-Flux file of the real key layout is written by its own classes. Its inputs are stand-ins:
insightface's FaceAnalysis returns a given face, the EVA-CLIP model returns given features, and facexlib
(the face parser, whose output only feeds that EVA-CLIP) is a stand-in module when it is not installed
(installed, its two files are written into the reference's models/facexlib by facexlib's classes); so are
timm and ftfy, which the vendored EVA-CLIP imports, when they are not installed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file

from tests.host.tiny_models import TINY_FLUX
from tests.support.pulid_layouts import PEER, parsing_bisenet_state, pulid_flux_state_dict, reference_dir

TINY_IDFORMER = dict(dim=64, depth=5, heads=1, output_dim=32)
TINY_CA = dict(dim=TINY_FLUX["hidden_size"], dim_head=128, heads=2, kv_dim=32)
FILE = "pulid_flux_tiny.safetensors"
KPS = np.array([[50, 55], [78, 55], [64, 70], [52, 88], [76, 88]], np.float32)


class FaceAnalysisStandIn:
    """insightface FaceAnalysis as ApplyPulidFlux uses it: ``det_model.input_size``, ``get(image)``."""

    def __init__(self, raw_embedding: np.ndarray, kps: np.ndarray = KPS):
        self.det_model = SimpleNamespace(input_size=(640, 640))
        self.raw_embedding, self.kps = raw_embedding.astype(np.float32), np.asarray(kps, np.float32)

    def get(self, image):
        from insightface.app.common import Face as InsightFace

        return [InsightFace(bbox=np.array([40, 40, 90, 100], np.float32), kps=self.kps.copy(), det_score=0.9,
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


def identity_inputs(seed: int):
    """An insightface-like raw ArcFace vector, an EVA-CLIP embedding and its 5 hidden states."""
    gen = torch.Generator().manual_seed(100 + seed)
    raw = (torch.randn(512, generator=gen) * 1.1).numpy()
    return raw, torch.randn(1, 768, generator=gen), [torch.randn(1, 577, 1024, generator=gen) for _ in range(5)]


def _import_only_stand_in(*names: str) -> dict:
    """Modules whose every name is a placeholder class: imported at import time, never run here."""
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


def write_facexlib_files(folder: Path) -> None:
    """The two files ApplyPulidFlux's FaceRestoreHelper loads from models/facexlib (it would download them),
    written by facexlib's own classes: the parser, seeded; the RetinaFace detector, which align mode 1 loads
    but never runs."""
    from facexlib.detection.retinaface import RetinaFace

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(parsing_bisenet_state(), folder / "parsing_bisenet.pth")
    torch.save(RetinaFace(network_name="resnet50", device="cpu").state_dict(), folder / "detection_Resnet50_Final.pth")


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def load_reference(comfy_nodes, work_dir: Path) -> tuple[str, list[str]]:
    """Load the reference into ComfyUI, re-parametrised to the tiny Flux, and write the seeded file into a
    models/pulid folder under ``work_dir``. Returns (the file's path, the stand-in modules added)."""
    import folder_paths

    stand_ins = {} if _importable("facexlib") else _facexlib_stand_in()
    if not _importable("timm"):
        stand_ins.update(_import_only_stand_in("timm", "timm.layers", "timm.models", "timm.models.layers", "timm.loss"))
    if not _importable("ftfy"):
        stand_ins.update(_import_only_stand_in("ftfy"))
    added = [name for name in stand_ins if name not in sys.modules]
    sys.modules.update({name: stand_ins[name] for name in added})
    models_dir = folder_paths.models_dir
    folder_paths.models_dir = str(work_dir / "peer_models")     # the reference makes folders there
    try:
        loaded = asyncio.run(comfy_nodes.load_custom_node(str(reference_dir())))
    finally:
        folder_paths.models_dir = models_dir
    if not loaded:
        raise RuntimeError(f"ComfyUI's custom-node loader failed to load {PEER} (see the log above)")
    reference, encoders = reference_module(), reference_module("encoders_flux")
    if "facexlib" not in stand_ins:
        write_facexlib_files(Path(reference.FACEXLIB_DIR))
    # re-parametrised to the tiny Flux: the reference builds IDFormer() and PerceiverAttentionCA() by default
    reference.IDFormer = functools.partial(encoders.IDFormer, **TINY_IDFORMER)
    reference.PerceiverAttentionCA = functools.partial(encoders.PerceiverAttentionCA, **TINY_CA)
    folder = work_dir / "pulid"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(pulid_flux_state_dict(encoders, encoder_dims=TINY_IDFORMER, ca_dims=TINY_CA), str(folder / FILE))
    folder_paths.add_model_folder_path("pulid", str(folder))
    return str(folder / FILE), added


def reference_module(name: str = "pulidflux"):
    """A module of the reference as ComfyUI's loader imported it (pulidflux: its nodes, FACEXLIB_DIR)."""
    return next(m for key, m in sys.modules.items() if key.endswith(f"{PEER}.{name}"))


def apply_pulid_flux(classes, model, seed, weight, start=0.0, end=1.0, mask=None, size=128, pulid=None, inputs=None):
    """ApplyPulidFlux on ``model`` with identity ``seed``'s inputs (mask: (H, W) array, its attn_mask).
    pulid: PulidFluxModelLoader's output to reuse (one loader feeding chained nodes), else loaded here;
    inputs: identity_inputs(seed), made beforehand."""
    if pulid is None:
        (pulid,) = classes["PulidFluxModelLoader"]().load_model(FILE)
    raw, eva, hidden = identity_inputs(seed) if inputs is None else inputs
    image = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():            # as ComfyUI's executor runs every node
        return classes["ApplyPulidFlux"]().apply_pulid_flux(
            model, pulid, EvaClipStandIn(eva, hidden), FaceAnalysisStandIn(raw), image, weight, start, end,
            attn_mask=None if mask is None else torch.from_numpy(mask)[None])[0]
