"""Face detection and whole-face analysis, every backend side by side in one run.

Part 1, detection: on the shipped sample at full, 1/2 and 1/3 size, the test suite's group of faces
from 24 to 128 px, and a 1280x886 six-person group (like insightface's t1.jpg) at full and 1/3 size,
each installed backend at the default min_face (32 px): faces found of those >= min_face (and
detections that are no face), median wall ms, CPU ms, and the ratio to the mediapipe path.

Part 2, the whole analysis (detection, landmarks, keypoints, masks, skeletons, embeddings) of the
1280x886 six-person photo: the mediapipe path (tiled BlazeFace + 478-point mesh + Pose) against the
path without mediapipe (dlib HOG + dlib 68 points + head-only skeletons), both with dlib embeddings,
each with today's detector settings and with the detector of issue 23's day (BEFORE: the settings
before the small-face work, its mediapipe tiles one at a time), side by side, and for mediapipe
BEFORE's tile plan run two tiles at a time as today's is (what the new plan alone costs); then the six
faces' embeddings alone, dlib-bin's own network against ours (numpy, same file).

Part 3, recall on the small-face set (tests/support/small_faces.py: real public-domain faces of 32 to
48 px, turned, tilted, low in contrast, dark, cut by the frame), per backend, per face-height band and
per kind, today's settings and BEFORE; and insightface's own sample photo t1.jpg shrunk to 427x295 (the
issue's photo; read from the installed insightface package, not public domain, so bench only), its
truth the mediapipe boxes on the full 1280x886 photo scaled by 1/3.

    python bench/bench_detect.py [--repeats 5] [--parts 1,2,3]
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
from magicid_core.faces.detection import TiledMediapipeDetector, make_detector  # noqa: E402
from magicid_core.faces.geometry import DEFAULT_MIN_FACE  # noqa: E402
from magicid_core.faces.dlib_stack import DlibCnnDetector, DlibHogDetector, model_path  # noqa: E402
from magicid_core.faces.records import Face  # noqa: E402
from magicid_core.identity.embedders import make_embedder  # noqa: E402
from magicid_core.insightface import InsightFaceModelError, find_pack  # noqa: E402
from magicid_core.optional import mediapipe_available  # noqa: E402
from tests.support.face_scenes import group6, match, sizes_scene, t1_like  # noqa: E402
from tests.support.small_faces import (  # noqa: E402
    BANDS, BEFORE, KINDS, Case, TrueFace, band_of, found_faces, small_face_cases)


def scenes():
    yield "sample 1200x600", *group6(1)
    yield "sample 1/2", *group6(2)
    yield "sample 1/3", *group6(3)
    yield "sizes 24..128 px", *sizes_scene()
    yield "t1-like 1280x886", *t1_like(1)
    yield "t1-like 427x295", *t1_like(3)


def timed(call, repeats: int):
    """Median wall and CPU ms of call() after one warm-up run, and its result."""
    [(wall, cpu)], result = alternating([call], repeats)
    return wall, cpu, result


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
    print(f"2. whole analysis of the {image.shape[1]}x{image.shape[0]} six-person photo (embeddings: dlib ResNet); "
          "each path with today's detector and BEFORE's (the detector of issue 23's day), in turn")
    print(f"{'path':<58} {'faces':>5} {'ms':>8} {'cpu ms':>8} {'x mp':>6} {'x before':>8}")
    before_mp = dict(BEFORE["mediapipe"])
    paths = []
    if mediapipe_available():
        paths.append(("mediapipe: tiled + 478 mesh + Pose", AnalysisSettings(
            backend="mediapipe", landmark_backend="mediapipe_mesh", identity_backend="dlib"), True,
            TiledMediapipeDetector(min_face=DEFAULT_MIN_FACE, **before_mp),
            # BEFORE's tile plan with today's threads: what the new plan alone costs
            [("   BEFORE's tiles, run as today's (at once)", TiledMediapipeDetector(
                min_face=DEFAULT_MIN_FACE, **dict(before_mp, tile_threads=None)))]))
    paths.append(("no mediapipe: dlib HOG + 68 points + head-only skeletons", AnalysisSettings(
        backend="dlib_hog", landmark_backend="dlib_68", identity_backend="dlib"), False,
        DlibHogDetector(min_face=DEFAULT_MIN_FACE, **BEFORE["dlib_hog"]), []))
    paths.append(("no mediapipe, without embeddings", AnalysisSettings(
        backend="dlib_hog", landmark_backend="dlib_68", embeddings=False), False,
        DlibHogDetector(min_face=DEFAULT_MIN_FACE, **BEFORE["dlib_hog"]), []))
    base = None
    for name, settings, with_mediapipe, before, others in paths:
        # the no-mediapipe paths are run as they run without the package: no Pose, head-only skeletons
        analyze.mediapipe_available = (lambda: True) if with_mediapipe else (lambda: False)
        rows = [(name, None), ("   the same with BEFORE's detector", before)] + others
        # the detectors take turns run by run, so all see the same load
        figures, faces = alternating([lambda d=d: analyze_image(image, settings, detector=d) for _, d in rows],
                                     repeats)
        base = base or (figures[0][0] if with_mediapipe else None)
        for (label, _), (ms, cpu) in zip(rows, figures):
            vs_mp = f"{ms / base:6.2f}" if base else "     -"
            print(f"{label:<58} {len(faces.faces):>5} {ms:8.0f} {cpu:8.0f} {vs_mp} {ms / figures[1][0]:8.2f}")
    analyze.mediapipe_available = mediapipe_available
    embeddings_alone(image, repeats)


def alternating(calls, repeats: int):
    """[(median wall ms, median CPU ms)] of each call, run in turn (after one warm-up each), and the
    first call's result."""
    result = [call() for call in calls][0]
    times = [([], []) for _ in calls]
    for _ in range(repeats):
        for (wall, cpu), call in zip(times, calls):
            t, c = time.perf_counter(), time.process_time()
            call()
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    return [(statistics.median(wall), statistics.median(cpu)) for wall, cpu in times], result


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


def recall_backends():
    """(label, detector) for part 3: each installed backend with today's settings and with BEFORE's."""
    out = []
    if mediapipe_available():
        out += [("mediapipe", TiledMediapipeDetector(min_face=DEFAULT_MIN_FACE)),
                ("mediapipe BEFORE", TiledMediapipeDetector(min_face=DEFAULT_MIN_FACE, **BEFORE["mediapipe"]))]
    out += [("dlib_hog", DlibHogDetector(min_face=DEFAULT_MIN_FACE)),
            ("dlib_hog BEFORE", DlibHogDetector(min_face=DEFAULT_MIN_FACE, **BEFORE["dlib_hog"])),
            ("dlib_cnn", DlibCnnDetector(min_face=DEFAULT_MIN_FACE))]
    try:
        find_pack()
        out.append(("insightface", make_detector("insightface", min_face=DEFAULT_MIN_FACE)))
    except InsightFaceModelError:
        print("insightface: no model pack in $MAGICID_INSIGHTFACE_DIR, not measured (the tests' seeded-interface "
              "packs have random weights: their recall would mean nothing)")
    return out


def t1_small() -> Case | None:
    """insightface's t1.jpg at 427x295 with the full-size mediapipe (else dlib CNN) boxes scaled by 1/3."""
    try:
        import insightface
    except ImportError:
        return None
    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    if not path.is_file():
        return None
    import cv2
    full = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    truth_detector = make_detector("mediapipe" if mediapipe_available() else "dlib_cnn")
    k = 427 / full.shape[1]
    faces = tuple(TrueFace((float(d.box[0] + d.box[2]) / 2 * k, float(d.box[1] + d.box[3]) / 2 * k, 0.0,
                            float(d.box[3] - d.box[1]) * k), "t1.jpg") for d in truth_detector.detect(full))
    return Case("t1.jpg 427x295", cv2.resize(full, (427, 295), interpolation=cv2.INTER_AREA), faces)


def part3() -> None:
    cases = small_face_cases()
    n_faces = sum(len(c.faces) for c in cases)
    print(f"\n3. recall on the small-face set ({len(cases)} pictures, {n_faces} faces), min_face {DEFAULT_MIN_FACE} px: "
          "found/faces per face-height band and per kind; extra = detections that are no face")
    bands = [f"{lo}-{hi}px" for lo, hi in BANDS]
    print(f"{'backend':<18} " + " ".join(f"{b:>8}" for b in bands) + " " + " ".join(f"{k[:8]:>8}" for k in KINDS)
          + f" {'all':>7} {'extra':>5} {'s':>6}")
    t1 = t1_small()
    t1_rows = []
    for label, detector in recall_backends():
        by_band, by_kind, extra, missed = {}, {}, 0, []
        start = time.perf_counter()
        for case in cases:
            hits, no_face = found_faces(detector.detect(case.image), case.faces)
            extra += no_face
            for face, hit in zip(case.faces, hits):
                for table, key in ((by_band, band_of(face.height)), (by_kind, face.kind)):
                    table.setdefault(key, []).append(hit)
                if not hit:
                    missed.append(f"{case.name}: {face.kind} {face.height:.0f} px")
        seconds = time.perf_counter() - start
        cell = lambda hits: f"{sum(hits)}/{len(hits)}" if hits else "-"  # noqa: E731
        found = [h for hits in by_band.values() for h in hits]
        print(f"{label:<18} " + " ".join(f"{cell(by_band.get(b, [])):>8}" for b in BANDS) + " "
              + " ".join(f"{cell(by_kind.get(k, [])):>8}" for k in KINDS)
              + f" {cell(found):>7} {extra:>5} {seconds:6.1f}")
        if missed:
            print(f"{'':<18}   missed: " + "; ".join(missed))
        if t1 is not None:
            hits, no_face = found_faces(detector.detect(t1.image), t1.faces)
            t1_rows.append(f"{label:<18} {sum(hits)}/{len(hits)} found, {no_face} extra")
    if t1 is None:
        print("insightface's t1.jpg not installed: the issue's photo not measured")
    else:
        heights = sorted(round(f.height) for f in t1.faces)
        print(f"\n   {t1.name} (faces {heights[0]}..{heights[-1]} px, truth: full-size boxes scaled by 1/3)")
        print("\n".join(t1_rows))


def main():
    p = argparse.ArgumentParser()
    cpu_bench(p, "face analysis runs on mediapipe, dlib and onnxruntime's CPU provider")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 2,3")
    args = p.parse_args()
    parts = {int(x) for x in args.parts.split(",")}
    print(f"median of {args.repeats} runs after a warm-up; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (wall ms grows with other load, cpu ms much less); "
          f"mediapipe {'installed' if mediapipe_available() else 'NOT installed'}")
    if 1 in parts:
        part1(args.repeats)
    if 2 in parts:
        part2(args.repeats)
    if 3 in parts:
        part3()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
