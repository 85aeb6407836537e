"""Install what MagicID needs on top of ComfyUI, keeping the runtimes the user already has.

ComfyUI-Manager runs this file (after the lines of requirements.txt). By hand, with ComfyUI's python:

    python install.py             # or: python install.py --dry-run, to see the plan only
    python install.py --flux      # also what PuLID-Flux identities need (MultiIDApply on Flux.1)

1. ``pip install -r requirements.txt``: packages that no other distribution installs under another name.
2. ONNX Runtime: every build (onnxruntime, onnxruntime-gpu, -directml, -openvino, -silicon, ...) installs
   the same ``onnxruntime`` folder, so a second build overwrites the first and other packs lose CUDA or
   DirectML. An installed build is kept; the CPU build ``onnxruntime`` is installed only when none is there.
3. dlib: a dlib the user compiled and the prebuilt ``dlib-bin`` install the same ``dlib`` files. An
   importable dlib is kept; ``dlib-bin`` (no compiler needed) is installed only when none is there.
4. With ``--flux``, or when the ComfyUI this pack sits in holds PuLID-Flux's files (models/pulid/*flux*,
   the EVA-CLIP in models/clip or models/text_encoders: a Flux user, for whom ComfyUI-Manager runs this file
   without options): timm (EVA-CLIP) and facexlib (face parsing), where not importable. facexlib with
   ``--no-deps``: it declares opencv-python and numba, which would put another opencv variant over the
   user's and another numpy; its face parser needs only torch and torchvision. Both need the torchvision
   ComfyUI brings: without it nothing is installed (pip would fetch a torchvision pinned to another torch).

Standard library only: it runs before anything else of the pack is installed. docs/install.md says more.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONNXRUNTIME_CPU = "onnxruntime>=1.16"
DLIB_PREBUILT = "dlib-bin>=19.24"
TIMM = "timm>=1.0"
FACEXLIB = "facexlib>=0.3"
EVA_CLIP_FILE = "EVA02_CLIP_L_336_psz14_s6B.pt"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def distributions_of(module: str) -> list[str]:
    """Installed distributions that put ``module/`` (or ``module*.so`` / ``.pyd``) into site-packages,
    e.g. "onnxruntime-gpu" for onnxruntime; sorted, each named once."""
    found = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        top_level = (dist.read_text("top_level.txt") or "").split()
        files = dist.files or []
        if module in top_level or any(f.parts and (f.parts[0] == module or f.parts[0].startswith(f"_{module}")
                                                   or f.parts[0].startswith(f"{module}.")) for f in files):
            found.add(_canonical(name))
    return sorted(found)


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan(onnxruntime_dists: list[str], onnxruntime_importable: bool,
         dlib_dists: list[str], dlib_importable: bool) -> tuple[list[str], list[str]]:
    """(requirements to pip install, notes for the user) given what is installed now."""
    install, notes = [], []
    if onnxruntime_dists or onnxruntime_importable:
        kept = ", ".join(onnxruntime_dists) or "an onnxruntime module"
        notes.append(f"ONNX Runtime: keeping {kept}")
        if len(onnxruntime_dists) > 1:
            notes.append(f"ONNX Runtime: {' and '.join(onnxruntime_dists)} are all installed and share one "
                         "'onnxruntime' folder, so one overwrote the other: uninstall all of them, then "
                         "install the one you want (e.g. onnxruntime-gpu for CUDA)")
        elif not onnxruntime_importable:
            notes.append(f"ONNX Runtime: {kept} is installed but 'import onnxruntime' fails: reinstall it")
    else:
        install.append(ONNXRUNTIME_CPU)
        notes.append("ONNX Runtime: none installed, installing the CPU build (for CUDA install "
                     "onnxruntime-gpu instead, before or after: this script keeps it)")
    if dlib_importable:
        notes.append(f"dlib: keeping {', '.join(dlib_dists) or 'the installed dlib'}")
    else:
        install.append(DLIB_PREBUILT)
        notes.append("dlib: none importable, installing the prebuilt dlib-bin")
    return install, notes


def flux_plan(timm_importable: bool, facexlib_importable: bool,
              torchvision_importable: bool) -> tuple[list[list[str]], list[str]]:
    """(pip install argument lists, notes) for PuLID-Flux's optional packages."""
    if not torchvision_importable:
        return [], ["PuLID-Flux: torchvision is not installed, so timm and facexlib are not either (pip would "
                    "bring a torchvision pinned to another torch): install the torchvision that matches your "
                    "torch, from where your torch came from, then run install.py --flux again"]
    install, notes = [], []
    for module, present, args in (("timm", timm_importable, [TIMM]),
                                  ("facexlib", facexlib_importable, ["--no-deps", FACEXLIB])):
        if present:
            notes.append(f"PuLID-Flux: keeping the installed {module}")
        else:
            install.append(args)
            notes.append(f"PuLID-Flux: installing {' '.join(args)}")
    return install, notes


def pulid_flux_files(pack_dir: Path = HERE) -> list[Path]:
    """PuLID-Flux's files in the models folder of the ComfyUI whose custom_nodes hold ``pack_dir``
    (PuLID-Flux weights in models/pulid, the EVA-CLIP in models/clip or models/text_encoders); [] elsewhere."""
    if pack_dir.parent.name != "custom_nodes":
        return []
    models = pack_dir.parent.parent / "models"
    found = sorted(f for f in (models / "pulid").glob("*") if "flux" in f.name.lower() and f.is_file())
    return found + [models / folder / EVA_CLIP_FILE for folder in ("clip", "text_encoders")
                    if (models / folder / EVA_CLIP_FILE).is_file()]


def pip_command() -> list[str]:
    """pip of this interpreter; uv's pip where the environment has no pip (uv-made venvs)."""
    if importable("pip"):
        return [sys.executable, "-m", "pip"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "--python", sys.executable]
    raise SystemExit(f"MagicID install: {sys.executable} has no pip (python -m ensurepip adds it)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be installed, install nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="pass -q to pip")
    parser.add_argument("--flux", action="store_true",
                        help="also install timm and facexlib (--no-deps), for PuLID-Flux identities")
    args = parser.parse_args(argv)
    pip = pip_command()
    requirements = ["-q"] * args.quiet + ["-r", str(HERE / "requirements.txt")]
    if args.dry_run:
        print("MagicID install: would run", " ".join(pip + ["install"] + requirements))
    else:
        subprocess.check_call(pip + ["install"] + requirements)
    install, notes = plan(distributions_of("onnxruntime"), importable("onnxruntime"),
                          distributions_of("dlib"), importable("dlib"))
    for note in notes:
        print("MagicID install:", note)
    commands = [install] if install else []
    flux_files = [] if args.flux else pulid_flux_files()
    if flux_files:
        print(f"MagicID install: PuLID-Flux's files are here ({', '.join(f.name for f in flux_files)}): "
              "also what PuLID-Flux identities need")
    if args.flux or flux_files:
        flux_installs, flux_notes = flux_plan(importable("timm"), importable("facexlib"), importable("torchvision"))
        commands += flux_installs
        for note in flux_notes:
            print("MagicID install:", note)
    for command in commands:
        if args.dry_run:
            print("MagicID install: would run", " ".join(pip + ["install"] + command))
        else:
            subprocess.check_call(pip + ["install"] + ["-q"] * args.quiet + command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
