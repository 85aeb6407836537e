"""Analyse a photo's faces from the command line (README command 1).

    python -m magicid_core [IMAGE] [--out DIR]

With no IMAGE it analyses the shipped sample ``assets/group6.jpg`` into ``output/sample/``:
preview.png (indices, boxes, keypoints, mesh), mask_00.png..., union_mask.png,
skeleton.png (the body skeletons as an OpenPose control map) and faces.json (with each
face's skeleton and identity embedding), and prints one line per face.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .analyze import ORDERS, AnalysisSettings, analyze_image
from .faces.detection import BACKENDS
from .identity.embedders import BACKENDS as IDENTITY_BACKENDS
from .faces.masks import MASK_MODES
from .faces.control_maps import skeleton_map
from .faces.preview import draw_preview

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "group6.jpg"


def _mask_png(mask: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8), mode="L").save(path)


def write_analysis(image: np.ndarray, settings: AnalysisSettings, out_dir: Path) -> list[str]:
    """Analyse and write preview, masks and faces.json into out_dir; returns the summary lines."""
    faces = analyze_image(image, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_preview(image, faces)).save(out_dir / "preview.png")
    for old in out_dir.glob("mask_*.png"):  # masks of an earlier run with more faces
        old.unlink()
    for face in faces.faces:
        _mask_png(face.mask, out_dir / f"mask_{face.index:02d}.png")
    _mask_png(faces.union_mask(), out_dir / "union_mask.png")
    if settings.skeletons:
        Image.fromarray(skeleton_map(faces, min_confidence=0.3)).save(out_dir / "skeleton.png")
    (out_dir / "faces.json").write_text(json.dumps(faces.to_dict(), indent=1))
    return [f"face {f.index}: box {np.round(f.box).astype(int).tolist()} ({f.width:.0f}x{f.height:.0f} px) "
            f"score {f.score:.2f} detector {f.detector} mesh {'478 points' if f.landmarks is not None else 'none'} "
            f"mask {int((f.mask > 0.5).sum())} px{_identity_summary(f)}" for f in faces.faces]


def _identity_summary(face) -> str:
    parts = []
    if face.skeleton is not None:
        parts.append(f"skeleton {int((face.skeleton[:, 2] > 0).sum())}/18 points")
    if face.embedding is not None:
        parts.append(f"embedding {face.embedding_model} ({len(face.embedding)}-d)")
    return "".join(" " + p for p in parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m magicid_core", description=__doc__.split("\n\n")[0])
    p.add_argument("image", nargs="?", default=str(SAMPLE), help="photo to analyse (default: the shipped sample)")
    p.add_argument("--out", default=None, help="output folder (default: output/sample or output/<image name>)")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--min-face", type=float, default=AnalysisSettings.min_face, help="smallest face in px")
    p.add_argument("--mask-mode", default="face", choices=MASK_MODES)
    p.add_argument("--order", default="left_to_right", choices=ORDERS)
    p.add_argument("--identity-backend", default="auto", choices=IDENTITY_BACKENDS,
                   help="identity embeddings: arcface (insightface models in $MAGICID_INSIGHTFACE_DIR) or dlib")
    p.add_argument("--no-skeletons", action="store_true", help="skip the body skeletons")
    p.add_argument("--no-embeddings", action="store_true", help="skip the identity embeddings")
    args = p.parse_args(argv)

    path = Path(args.image)
    if not path.is_file():
        print(f"no such image: {path}", file=sys.stderr)
        return 2
    name = "sample" if path.resolve() == SAMPLE else path.stem
    out_dir = Path(args.out) if args.out else Path("output") / name
    settings = AnalysisSettings(backend=args.backend, min_face=args.min_face, mask_mode=args.mask_mode,
                                order=args.order, identity_backend=args.identity_backend,
                                skeletons=not args.no_skeletons, embeddings=not args.no_embeddings)
    image = np.asarray(Image.open(path).convert("RGB"))
    lines = write_analysis(image, settings, out_dir)
    print(f"{path.name}: {len(lines)} face(s) -> {out_dir}/")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
