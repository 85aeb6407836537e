"""Face detection on the six-person sample at full, 1/2 and 1/3 size, side by side:
tiled mediapipe (the default backend) vs whole-frame mediapipe (short- and full-range
models) vs dlib's HOG detector. Prints faces found (of 6), median ms and the time ratio
to the tiled detector (wall clock), all measured in this one run. A last block does the same on the
test suite's scene of six faces from 24 to 128 px in one 1200 px picture.

    python bench/bench_detect.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.face_scenes import sizes_scene  # noqa: E402
from magicid_core.faces.detection import (DlibHogDetector, TiledMediapipeDetector,  # noqa: E402
                                    _mediapipe_face_detection, _mediapipe_to_detection)
from magicid_core.faces.geometry import DEFAULT_MIN_FACE, finish, nms  # noqa: E402



class WholeFrameMediapipe:
    """Plain mediapipe: the whole image in one call (model 0 = short range, 1 = full range)."""

    def __init__(self, model_selection: int):
        self.name = f"mediapipe whole frame ({'short' if model_selection == 0 else 'full'} range)"
        self.model_selection = model_selection

    def detect(self, rgb):
        result = _mediapipe_face_detection(self.model_selection, 0.5).process(rgb)
        h, w = rgb.shape[:2]
        dets = []
        for d in result.detections or []:  # relative to (w, h), not a square
            det = _mediapipe_to_detection(d, 0, 0, 1.0)
            det.box *= np.array([w, h, w, h], np.float32)
            det.keypoints *= np.array([w, h], np.float32)
            dets.append(det)
        return finish(nms(dets), 0, 0)


def time_ms(detector, image, repeats):
    """Median wall-clock and CPU milliseconds of detect() (CPU time barely moves when other
    processes share the cores; wall time does), and the number of faces found."""
    detector.detect(image)  # warm-up (graph build, first allocation)
    wall, cpu, found = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        found = detector.detect(image)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu), len(found)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    full = np.asarray(Image.open(ROOT / "assets" / "group6.jpg").convert("RGB"))
    print(f"six-person sample {full.shape[1]}x{full.shape[0]}, faces ~120/60/40 px at 1, 1/2, 1/3; "
          f"median of {args.repeats} runs (dlib: 2); min_face {DEFAULT_MIN_FACE:.0f} px (tiled, dlib) unless noted; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(f"{'image':>5}  {'detector':<46} {'found':>5} {'ms':>8} {'cpu ms':>8} {'x tiled':>8}")
    for factor in (1, 2, 3):
        image = full if factor == 1 else cv2.resize(full, (full.shape[1] // factor, full.shape[0] // factor),
                                                    interpolation=cv2.INTER_AREA)
        compare(f"1/{factor}" if factor > 1 else "full", image, DEFAULT_MIN_FACE, args.repeats)
    compare("sizes", sizes_scene()[0], 20, args.repeats)


def compare(label: str, image: np.ndarray, min_face: float, repeats: int, true_faces: int = 6) -> None:
    detectors = [TiledMediapipeDetector(min_face=min_face), WholeFrameMediapipe(0), WholeFrameMediapipe(1),
                 DlibHogDetector(min_face=min_face)]
    if min_face != 24:
        detectors.insert(1, TiledMediapipeDetector(min_face=24))
    base = None
    for det in detectors:
        ms, cpu, n = time_ms(det, image, repeats if not isinstance(det, DlibHogDetector) else 2)
        base = base or ms
        name = det.name
        if isinstance(det, TiledMediapipeDetector):
            name = f"mediapipe tiled (min_face {det.min_face:.0f}, {det.calls} model runs)"
        elif isinstance(det, DlibHogDetector):
            name = f"dlib HOG (min_face {det.min_face:.0f}, upsample x{2 ** det.upsample})"
        flag = "" if n == true_faces else f"  <- not {true_faces}"
        print(f"{label:>5}  {name:<46} {n:>5} {ms:>8.1f} {cpu:>8.1f} {ms / base:>8.2f}{flag}")
    print()


if __name__ == "__main__":
    main()
