"""Optional packages: import them with a message that says what to do when they are missing.

The pack installs on Python 3.10-3.13 with numpy 1 or 2. Some accelerators install only on
part of that range (mediapipe 0.10.21, the last release with ``mediapipe.solutions``, needs
Python <= 3.12 and numpy < 2). Code that uses one calls :func:`require`; a missing package
raises :class:`MissingPackageError` naming the package, the Python it needs and the
alternative, never a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class OptionalPackage:
    pip: str          # what to pip install
    python: str       # where it installs
    alternative: str  # what works without it


PACKAGES = {
    "mediapipe": OptionalPackage(
        "mediapipe==0.10.21", "Python 3.9-3.12 with numpy < 2 (later releases have no mediapipe.solutions)",
        "backend dlib_hog or insightface for faces, dlib or insightface 2d106det landmarks, and body skeletons "
        "from controlnet_aux's DWPose/OpenPose POSE_KEYPOINT"),
    "dlib": OptionalPackage(
        "dlib-bin", "Python 3.8-3.13 (prebuilt wheels, no compiler)",
        "insightface models (antelopev2 / buffalo_l) in ComfyUI/models/insightface/models/<pack>, or mediapipe"),
    "face_recognition_models": OptionalPackage(
        "face_recognition_models", "any Python 3", "insightface models (antelopev2 / buffalo_l)"),
    # PuLID-Flux's two: `python install.py --flux` installs both (docs/install.md)
    "timm": OptionalPackage(
        "timm", "Python 3.10-3.13 (with the torchvision ComfyUI brings; or: python install.py --flux)",
        "IP-Adapter FaceID or InstantID on SD1.5 / SDXL (PuLID-Flux identities need EVA-CLIP, read through timm)"),
    # --no-deps: facexlib declares opencv-python and numba, which would replace the user's opencv variant
    # and numpy; its face parser needs only torch and torchvision
    "facexlib": OptionalPackage(
        "--no-deps facexlib", "Python 3.10-3.13 (with the torchvision ComfyUI brings; --no-deps keeps your "
        "opencv and numpy; or: python install.py --flux)",
        "IP-Adapter FaceID or InstantID on SD1.5 / SDXL (PuLID-Flux identities need facexlib's face parsing)"),
    "onnxruntime": OptionalPackage(
        "onnxruntime", "Python 3.10-3.13", "the dlib backends (dlib-bin + face_recognition_models)"),
}


class MissingPackageError(ImportError):
    """An optional package that this step needs is not installed (or is the wrong release)."""


def missing_message(name: str, purpose: str, detail: str = "") -> str:
    need = PACKAGES[name]
    found = f" ({detail})" if detail else ""
    return (f"{purpose} needs the package {name}{found}: pip install {need.pip} (it installs on {need.python}). "
            f"Without it use {need.alternative}.")


def require(name: str, purpose: str) -> ModuleType:
    """The imported package, or MissingPackageError saying what to install or use instead."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise MissingPackageError(missing_message(name, purpose)) from e


@functools.lru_cache(maxsize=None)
def installed(name: str) -> bool:
    """True when the package can be found (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def _mediapipe_solutions_problem() -> str | None:
    try:
        mp = importlib.import_module("mediapipe")
    except ImportError:
        return "not installed"
    try:
        mp.solutions.face_detection  # noqa: B018 - 0.10.30+ has no solutions
    except AttributeError:
        return f"release {getattr(mp, '__version__', '?')} has no mediapipe.solutions"
    return None


def mediapipe_available() -> bool:
    """mediapipe with its ``solutions`` API (0.10.21 and earlier) is importable."""
    return _mediapipe_solutions_problem() is None


def require_mediapipe(purpose: str) -> ModuleType:
    """mediapipe with ``solutions``, or MissingPackageError (also for releases without solutions)."""
    problem = _mediapipe_solutions_problem()
    if problem is not None:
        raise MissingPackageError(missing_message("mediapipe", purpose, "" if problem == "not installed" else problem))
    return importlib.import_module("mediapipe")
