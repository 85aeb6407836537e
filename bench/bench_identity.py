"""What skeletons and identity embeddings add to face analysis, on the six-person sample.

Runs analyze_image on assets/group6.jpg with: detection + masks only, + skeletons,
+ embeddings (dlib), and everything; prints median ms, ms per face and the ratio to
the detection-only run, all measured in this one run. Then the matching quality seen
on the sample: each face's best and second-best cosine similarity among the other faces.

    python bench/bench_identity.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

from magicid_core.analyze import AnalysisSettings, analyze_image  # noqa: E402
from magicid_core.identity.embedding_models import threshold_for  # noqa: E402


def median_ms(image, settings, repeats):
    times, faces = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        faces = analyze_image(image, settings)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), faces


def main():
    p = argparse.ArgumentParser()
    cpu_bench(p, "face analysis runs on mediapipe, dlib and onnxruntime's CPU provider")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    image = np.asarray(Image.open(ROOT / "assets" / "group6.jpg").convert("RGB"))
    runs = {
        "detect + mesh + masks": AnalysisSettings(skeletons=False, embeddings=False),
        "+ skeletons": AnalysisSettings(skeletons=True, embeddings=False),
        "+ embeddings (dlib)": AnalysisSettings(skeletons=False, embeddings=True, identity_backend="dlib"),
        "+ both (the default)": AnalysisSettings(identity_backend="dlib"),
    }
    analyze_image(image, AnalysisSettings(identity_backend="dlib"))   # warm-up: models load once
    base = None
    print(f"{'analysis of group6.jpg':<24} {'faces':>5} {'ms':>8} {'ms/face':>8} {'x base':>7}")
    for name, settings in runs.items():
        ms, faces = median_ms(image, settings, args.repeats)
        base = base or ms
        n = len(faces.faces)
        print(f"{name:<24} {n:>5} {ms:>8.0f} {ms / max(n, 1):>8.1f} {ms / base:>7.2f}")
    faces = faces.faces
    vectors = np.stack([f.embedding for f in faces])
    sim = vectors @ vectors.T
    print(f"\nthe sample shows two people three times each (astronaut, Grace Hopper); dlib threshold "
          f"{faces[0].embedding_model} {threshold_for(faces[0].embedding_model)}:")
    for f in faces:
        others = [j for j in np.argsort(-sim[f.index]) if j != f.index]
        ranked = ", ".join(f"{j} ({sim[f.index, j]:.3f})" for j in others)
        print(f"face {f.index}: others by similarity {ranked}; skeleton points {int((f.skeleton[:, 2] > 0).sum())}/18")


if __name__ == "__main__":
    main()
