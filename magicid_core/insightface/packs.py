"""Find an insightface model pack on disk and open its ONNX files with clear errors.

Peers (InstantID, PuLID, IPAdapter FaceID) keep packs in ``ComfyUI/models/insightface/<pack>/``.
The antelopev2 zip unpacks to ``antelopev2/antelopev2/*.onnx`` when extracted into a folder
of the same name, so the nested layout is accepted too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MAGICID_INSIGHTFACE_DIR"

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


def _candidate_folders(root: Path, pack: str) -> list[Path]:
    """Where a pack may sit under one root: flat, nested, or the root is the pack itself."""
    folders = [root / pack, root / pack / pack]
    if root.name == pack:
        folders.insert(0, root)
    return folders


def _expected_text(packs) -> str:
    return "; or ".join(f"{p}/ with {' and '.join(PACKS[p])}" for p in packs)


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
            "no insightface models folder given: put the models in ComfyUI/models/insightface/ or set "
            f"{ENV_VAR}. Expected: {_expected_text(packs)}")
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
        f"no insightface model pack found in {searched}{detail}. Expected: {_expected_text(packs)} "
        f"(the nested layout <pack>/<pack>/ is accepted too)")


def load_session(path: Path):
    """An onnxruntime CPU session for one model file; unreadable or corrupt -> error naming the file."""
    try:
        import onnxruntime
    except ImportError as e:
        raise InsightFaceModelError(
            "onnxruntime is not installed; it runs the insightface models: pip install onnxruntime") from e
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3   # onnxruntime's own warnings are noise for users
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, NoSuchFile)
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InsightFaceModelError(
            f"insightface model file {path} could not be loaded ({first_line[:200]}); it is probably "
            "incomplete or corrupt: download it again") from e
