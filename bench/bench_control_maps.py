"""MMFControlMaps' cost: person masks by full-canvas dilation (before) vs crop-sized row runs (now).

    python bench/bench_control_maps.py

The shipped sample (assets/group6.jpg) is analysed at 1280x886 and 4096x4096 (six people).
For each size it prints the time of person_region by full-canvas cv2.dilate (the old code, kept as
the reference in tests/test_control_maps.py; skipped at 4096^2 where it runs for many minutes),
the time of the new person_region, whether both masks are equal, and the whole of mmf_maps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magicid_core.faces import control_maps as cm  # noqa: E402
from magicid_core.analyze import AnalysisSettings, analyze_image  # noqa: E402
from magicid_core.faces.records import FaceSet  # noqa: E402
from tests.test_control_maps import person_region_by_full_canvas_dilation  # noqa: E402

MIN_CONFIDENCE = 0.3   # MMFControlMaps' default


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    sample = cv2.imread(str(ROOT / "assets" / "group6.jpg"))[..., ::-1]
    for width, height, run_old in ((1280, 886, True), (4096, 4096, False)):
        frame = analyze_image(cv2.resize(sample, (width, height)), AnalysisSettings(embeddings=False))
        new, t_new = timed(lambda: cm.person_region(frame, MIN_CONFIDENCE))
        _, t_all = timed(lambda: cm.mmf_maps(FaceSet([frame]), MIN_CONFIDENCE))
        if run_old:
            old, t_old = timed(lambda: person_region_by_full_canvas_dilation(frame, MIN_CONFIDENCE))
            old_text = f"full-canvas dilation {t_old:7.2f} s | equal masks: {bool((old == new).all())} | "
            ratio = f" | {t_old / t_new:.0f}x faster"
        else:
            old_text, ratio = "full-canvas dilation (skipped: minutes) | ", ""
        print(f"{width}x{height}, {len(frame.faces)} people: {old_text}person_region {t_new:.3f} s{ratio} | "
              f"whole mmf_maps {t_all:.3f} s")


if __name__ == "__main__":
    main()
