"""Find an insightface model pack on disk and open its ONNX files with clear errors.

insightface's ``FaceAnalysis(name, root)`` reads ``root/models/<name>`` (``utils/storage.py``), and the
peer packs (IPAdapter_plus, InstantID, PuLID) call it with ``root = ComfyUI/models/insightface``: so
users have ``ComfyUI/models/insightface/models/antelopev2/``. Under every root (a folder registered as
``insightface``) the pack is looked for in all the layouts users have (``LAYOUTS``): insightface's own,
flat (the root given with its ``models/`` level, or unpacked by hand), and the nested
``<pack>/<pack>/`` the antelopev2 zip leaves when extracted into a folder of its name (insightface's
own download does that). docs/install.md shows them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MAGICID_INSIGHTFACE_DIR"
log = logging.getLogger("magicid")

# pack name -> (detector file, recogniser file), in the order "auto" prefers them.
PACKS = {
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx"),
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
}


class InsightFaceModelError(ValueError):
    """An insightface model pack is missing, incomplete or unreadable."""


@dataclass(frozen=True)
class InsightFacePack:
    name: str          # "antelopev2" or "buffalo_l"
    folder: Path       # the folder holding the .onnx files
    detector: Path     # SCRFD detector
    recognizer: Path   # ArcFace recogniser


def default_models_roots() -> list[Path]:
    """The models root from ``MAGICID_INSIGHTFACE_DIR`` (os.pathsep-separated), or none."""
    value = os.environ.get(ENV_VAR, "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def _as_roots(models_roots) -> list[Path]:
    if models_roots is None:
        return default_models_roots()
    if isinstance(models_roots, (str, os.PathLike)):
        return [Path(models_roots)]
    return [Path(p) for p in models_roots]


# Where a pack sits under one root, in the order looked at ("<pack>" stands for its name).
LAYOUTS = ("models/<pack>", "models/<pack>/<pack>", "<pack>", "<pack>/<pack>")
# The layout the docs and messages recommend: insightface's own, where the peer packs read it.
RECOMMENDED = "ComfyUI/models/insightface/models/<pack>"


def _candidate_folders(root: Path, pack: str) -> list[Path]:
    """Where a pack may sit under one root: the LAYOUTS, or the root is the pack folder itself."""
    folders = [root.joinpath(*layout.replace("<pack>", pack).split("/")) for layout in LAYOUTS]
    if root.name == pack:
        folders.insert(0, root)
    return folders


def _expected_text(packs) -> str:
    files = "; or ".join(f"{p}/ with {' and '.join(PACKS[p])}" for p in packs)
    return f"{files}, e.g. {RECOMMENDED.replace('<pack>', packs[0])}/{PACKS[packs[0]][0]}"


def find_pack(models_roots=None, pack: str | None = None) -> InsightFacePack:
    """The first complete pack under the models root(s); ``pack`` None tries antelopev2, then buffalo_l.

    ``models_roots``: a folder or a list of folders (ComfyUI's ``models/insightface``);
    None means ``$MAGICID_INSIGHTFACE_DIR``. Raises InsightFaceModelError naming the
    folders searched and the exact files expected.
    """
    if pack is not None and pack not in PACKS:
        raise InsightFaceModelError(f"unknown insightface pack {pack!r}; known: {', '.join(PACKS)}")
    roots = _as_roots(models_roots)
    packs = [pack] if pack else list(PACKS)
    if not roots:
        raise InsightFaceModelError(
            f"no insightface models folder given: put the pack in {RECOMMENDED.replace('<pack>', packs[0])}/ "
            f"or set {ENV_VAR}. Expected: {_expected_text(packs)}")
    incomplete = []
    for name in packs:
        det_file, rec_file = PACKS[name]
        for root in roots:
            for folder in _candidate_folders(root, name):
                det, rec = folder / det_file, folder / rec_file
                if det.is_file() and rec.is_file():
                    return InsightFacePack(name, folder, det, rec)
                if folder.is_dir():
                    missing = [f for f in (det_file, rec_file) if not (folder / f).is_file()]
                    incomplete.append(f"{folder} lacks {', '.join(missing)}")
    searched = ", ".join(str(r) for r in roots)
    detail = f" ({'; '.join(incomplete)})" if incomplete else ""
    raise InsightFaceModelError(
        f"no insightface model pack found in {searched} (looked in {', '.join(LAYOUTS)} under each){detail}. "
        f"Expected: {_expected_text(packs)}")


def find_pack_or_reason(models_roots=None) -> tuple[InsightFacePack | None, str]:
    """(the pack ``auto`` uses, "") or (None, why there is none: the folders searched, the files expected)."""
    try:
        return find_pack(models_roots), ""
    except InsightFaceModelError as e:
        return None, str(e)


# GPU execution providers used when the installed ONNX Runtime build offers one (onnxruntime-gpu: CUDA;
# onnxruntime-rocm: ROCm; onnxruntime-directml: DirectML), best first; the CPU always comes after it.
GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
PROVIDERS_ENV_VAR = "MAGICID_ONNX_PROVIDERS"   # e.g. "CPUExecutionProvider" keeps the models off the GPU


def session_providers(available) -> list[str]:
    """The providers a session asks for: ``$MAGICID_ONNX_PROVIDERS`` (comma-separated) when set, else the
    first of GPU_PROVIDERS that ``available`` has, then the CPU."""
    wanted = [p.strip() for p in os.environ.get(PROVIDERS_ENV_VAR, "").split(",") if p.strip()]
    if wanted:
        return [p for p in wanted if p in available] or [CPU_PROVIDER]
    return [p for p in GPU_PROVIDERS if p in available][:1] + [CPU_PROVIDER]


def _session(onnxruntime, path: Path, providers: list[str]):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3   # onnxruntime's own warnings are noise for users
    if "DmlExecutionProvider" in providers:   # DirectML runs neither memory patterns nor parallel execution
        options.enable_mem_pattern = False
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def load_session(path: Path):
    """An onnxruntime session for one model file, on the GPU when the installed build has one
    (``session_providers``), else the CPU; unreadable or corrupt -> error naming the file."""
    try:
        import onnxruntime
    except ImportError as e:
        raise InsightFaceModelError(
            "onnxruntime is not installed; it runs the insightface models: run install.py in the MagicID folder "
            "with ComfyUI's python (it keeps an onnxruntime-gpu you install), or pip install onnxruntime") from e
    providers = session_providers(onnxruntime.get_available_providers())
    try:
        try:
            return _session(onnxruntime, path, providers)
        except Exception as gpu_error:  # a GPU build without its libraries (CUDA, cuDNN): the CPU may still run it
            if providers == [CPU_PROVIDER]:
                raise
            session = _session(onnxruntime, path, [CPU_PROVIDER])   # a corrupt file fails here too: named below
            log.warning("MagicID: onnxruntime could not start %s for %s (%s); it runs on the CPU",
                        providers[0], path.name, _first_line(gpu_error))
            return session
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, NoSuchFile)
        raise InsightFaceModelError(
            f"insightface model file {path} could not be loaded ({_first_line(e)}); it is probably "
            "incomplete or corrupt: download it again") from e


def _first_line(error: Exception) -> str:
    """The first line of an onnxruntime error (they run to pages), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
