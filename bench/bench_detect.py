"""Face detection and whole-face analysis, every backend side by side in one run.

Part 1, detection: on the shipped sample at full, 1/2 and 1/3 size, the test suite's group of faces
from 24 to 128 px, and a 1280x886 six-person group (like insightface's t1.jpg) at full and 1/3 size,
each installed backend at the default min_face (32 px): faces found of those >= min_face (and
detections that are no face), median wall ms, CPU ms, and the ratio to the mediapipe path.

Part 2, the whole analysis (detection, landmarks, keypoints, masks, skeletons, embeddings) of the
1280x886 six-person photo: the mediapipe path (tiled BlazeFace + 478-point mesh + Pose) against the
path without mediapipe (dlib HOG + dlib 68 points + head-only skeletons), both with dlib embeddings;
then the six faces' embeddings alone, dlib-bin's own network against ours (numpy, same file).

    python bench/bench_detect.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

import magicid_core.analyze as analyze  # noqa: E402
from magicid_core.analyze import AnalysisSettings, analyze_image  # noqa: E402
from magicid_core.faces.detection import make_detector  # noqa: E402
from magicid_core.faces.geometry import DEFAULT_MIN_FACE  # noqa: E402
from magicid_core.faces.dlib_stack import model_path  # noqa: E402
from magicid_core.faces.records import Face  # noqa: E402
from magicid_core.identity.embedders import make_embedder  # noqa: E402
from magicid_core.insightface import InsightFaceModelError, find_pack  # noqa: E402
from magicid_core.optional import mediapipe_available  # noqa: E402
from tests.support.face_scenes import group6, match, scene, sizes_scene  # noqa: E402

T1_PEOPLE = [("hopper", 104, 180, 330, False), ("astronaut", 96, 400, 290, True), ("hopper", 116, 640, 340, True),
             ("astronaut", 120, 870, 300, False), ("hopper", 92, 1090, 360, False), ("astronaut", 110, 450, 640, False)]


def t1_like(factor: int = 1):
    """1280x886, six people with 92..120 px faces (t1.jpg's layout); factor 3 gives 427x295, faces 30..40 px."""
    people = [(who, size / factor, x / factor, y / factor, mirrored) for who, size, x, y, mirrored in T1_PEOPLE]
    return scene(round(1280 / factor), round(886 / factor), people, seed=21)


def scenes():
    yield "sample 1200x600", *group6(1)
    yield "sample 1/2", *group6(2)
    yield "sample 1/3", *group6(3)
    yield "sizes 24..128 px", *sizes_scene()
    yield "t1-like 1280x886", *t1_like(1)
    yield "t1-like 427x295", *t1_like(3)


def timed(call, repeats: int):
    """Median wall and CPU ms of call() after one warm-up run, and its last result."""
    result = call()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = call()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu), result


def recall(dets, ovals, min_face: float) -> tuple[str, int]:
    faces = [Face(index=i, box=d.box, score=d.score, keypoints=d.keypoints, head_box=d.box) for i, d in enumerate(dets)]
    hits = match(faces, ovals)
    wanted = [h for o, h in zip(ovals, hits) if o[3] >= min_face - 0.5]   # a "32 px" face may be 31.99
    extra = len(faces) - len({h for h in hits if h is not None})
    return f"{sum(h is not None for h in wanted)}/{len(wanted)}", extra


def detectors():
    out = []
    if mediapipe_available():
        out.append(("mediapipe tiled", make_detector("mediapipe", min_face=DEFAULT_MIN_FACE)))
    out.append(("dlib HOG (+CNN check)", make_detector("dlib_hog", min_face=DEFAULT_MIN_FACE)))
    try:
        find_pack()
        out.append(("insightface SCRFD", make_detector("insightface", min_face=DEFAULT_MIN_FACE)))
    except InsightFaceModelError:
        print("insightface: no pack in $MAGICID_INSIGHTFACE_DIR, not benchmarked")
    return out


def part1(repeats: int) -> None:
    print(f"\n1. detection, min_face {DEFAULT_MIN_FACE:.0f} px (found = faces >= min_face found; extra = no face)")
    print(f"{'scene':<18} {'backend':<24} {'found':>6} {'extra':>5} {'ms':>8} {'cpu ms':>8} {'x mp':>6}")
    dets = detectors()
    for label, image, ovals in scenes():
        base = None
        for name, detector in dets:
            ms, cpu, found = timed(lambda: detector.detect(image), repeats)
            base = base or (ms if name.startswith("mediapipe") else None)
            ratio = f"{ms / base:6.2f}" if base else "     -"
            got, extra = recall(found, ovals, DEFAULT_MIN_FACE)
            print(f"{label:<18} {name:<24} {got:>6} {extra:>5} {ms:8.0f} {cpu:8.0f} {ratio}")
        if image.shape[1] <= 430:   # the CNN alone: seconds per megapixel on CPU, so only on the small images
            ms, cpu, found = timed(lambda: make_detector("dlib_cnn", min_face=DEFAULT_MIN_FACE).detect(image), 1)
            got, extra = recall(found, ovals, DEFAULT_MIN_FACE)
            ratio = f"{ms / base:6.2f}" if base else "     -"
            print(f"{label:<18} {'dlib CNN':<24} {got:>6} {extra:>5} {ms:8.0f} {cpu:8.0f} {ratio}")
        print()


def part2(repeats: int) -> None:
    image, ovals = t1_like(1)
    print(f"2. whole analysis of the {image.shape[1]}x{image.shape[0]} six-person photo (embeddings: dlib ResNet)")
    print(f"{'path':<58} {'faces':>5} {'ms':>8} {'cpu ms':>8} {'x mp':>6}")
    paths = []
    if mediapipe_available():
        paths.append(("mediapipe: tiled + 478 mesh + Pose", AnalysisSettings(
            backend="mediapipe", landmark_backend="mediapipe_mesh", identity_backend="dlib"), True))
    paths.append(("no mediapipe: dlib HOG + 68 points + head-only skeletons", AnalysisSettings(
        backend="dlib_hog", landmark_backend="dlib_68", identity_backend="dlib"), False))
    paths.append(("no mediapipe, without embeddings", AnalysisSettings(
        backend="dlib_hog", landmark_backend="dlib_68", embeddings=False), False))
    base = None
    for name, settings, with_mediapipe in paths:
        # the no-mediapipe paths are run as they run without the package: no Pose, head-only skeletons
        analyze.mediapipe_available = (lambda: True) if with_mediapipe else (lambda: False)
        ms, cpu, faces = timed(lambda: analyze_image(image, settings), repeats)
        base = base or (ms if with_mediapipe else None)
        ratio = f"{ms / base:6.2f}" if base else "     -"
        print(f"{name:<58} {len(faces.faces):>5} {ms:8.0f} {cpu:8.0f} {ratio}")
    analyze.mediapipe_available = mediapipe_available
    embeddings_alone(image, repeats)


def embeddings_alone(image: np.ndarray, repeats: int) -> None:
    """The six faces' descriptors: dlib-bin's own network against ours (numpy) on the same chips."""
    import dlib
    embedder = make_embedder("dlib")
    boxes = [face.box for face in analyze_image(image, AnalysisSettings(
        backend="dlib_hog", landmark_backend="dlib_68", embeddings=False)).faces]
    shapes = embedder.shapes5(image, boxes)
    dlibs_own = dlib.face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))
    base_ms, base_cpu, theirs = timed(lambda: np.array(dlibs_own.compute_face_descriptor(image, shapes, 0)), repeats)
    ms, cpu, ours = timed(lambda: embedder.raw_descriptors(image, boxes), repeats)
    print(f"\n   the {len(boxes)} faces' descriptors alone (5-point shape, chip and network)")
    print(f"{'dlib-bin compute_face_descriptor':<58} {len(boxes):>5} {base_ms:8.0f} {base_cpu:8.0f} {1:6.2f}  (x dlib)")
    print(f"{'numpy network (identity.dlib_resnet), same file':<58} {len(boxes):>5} {ms:8.0f} {cpu:8.0f} "
          f"{ms / base_ms:6.2f}  max |difference| {np.abs(ours - theirs).max():.1e}")


def main():
    p = argparse.ArgumentParser()
    cpu_bench(p, "face analysis runs on mediapipe, dlib and onnxruntime's CPU provider")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"median of {args.repeats} runs after a warm-up; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (wall ms grows with other load, cpu ms much less); "
          f"mediapipe {'installed' if mediapipe_available() else 'NOT installed'}")
    part1(args.repeats)
    part2(args.repeats)


if __name__ == "__main__":
    main()
