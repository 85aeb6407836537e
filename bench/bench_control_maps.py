"""MMFControlMaps' cost at 1280x886 and 4096x4096, side by side: before vs now.

    python bench/bench_control_maps.py

Two real pictures are analysed as FaceDetectMasks does (no embeddings): the shipped sample
(assets/group6.jpg, six people) at 1280x886, and a 4096x4096 group of 12 people
(bench_faces_memory's scene). For each, best of three runs:

- person masks: person_region by full-canvas cv2.dilate (the first code, kept as the reference in
  tests/test_control_maps.py; skipped at 4096^2 where it runs for many minutes) vs the crop-sized
  row runs of now, and whether both masks are equal;
- the whole node before: four uint8 maps, each turned into ComfyUI's float IMAGE by a numpy
  float copy and a torch.stack; vs now (MMFControlMaps.draw): the maps drawn straight on float32
  IMAGE batches shared with torch, so black pixels are never written; and whether the six
  outputs are equal;
- the goals of issue 15: <= 0.3 s at 1280x886 and a few seconds (aimed at < 3 s) at 4096^2.
The first call of a process imports mediapipe's mesh topology; a warm-up call takes it out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

from magicid_core.analyze import AnalysisSettings, analyze_image  # noqa: E402
from magicid_core.faces import control_maps as cm  # noqa: E402
from magicid_core.faces.records import FaceSet  # noqa: E402
from bench.bench_faces_memory import twelve_people  # noqa: E402
from tests.support.workflow_defs import _load_pack  # noqa: E402
from tests.test_control_maps import person_region_by_full_canvas_dilation  # noqa: E402

MIN_CONFIDENCE = 0.3   # MMFControlMaps' default
GOALS = {"1280x886": 0.3, "4096x4096": 3.0}


def best_of(fn, runs: int = 3):
    """(result, best seconds) of ``runs`` calls."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def node_before(frame, min_confidence: float) -> tuple:
    """The node's outputs as it made them before: uint8 maps, then a float copy of each and a stack."""
    skeleton, landmarks = cm.skeleton_map(frame, min_confidence), cm.landmark_map(frame)
    maps = (skeleton, landmarks, cm.kps_map(frame), cm.fuse_maps(skeleton, landmarks))
    images = [torch.stack([torch.from_numpy(m.astype(np.float32) / 255.0)]) for m in maps]
    masks = [torch.from_numpy(region[None]) for region in (cm.person_region(frame, min_confidence),
                                                           cm.face_region(frame))]
    return (*images, *masks)


def pictures() -> dict[str, np.ndarray]:
    sample = cv2.imread(str(ROOT / "assets" / "group6.jpg"))[..., ::-1]
    return {"1280x886": np.ascontiguousarray(cv2.resize(sample, (1280, 886))), "4096x4096": twelve_people()}


def measure(frame, node, with_old_dilation: bool) -> dict[str, str]:
    faces = FaceSet([frame])
    node.draw(faces, MIN_CONFIDENCE, 1)     # warm-up: mediapipe's mesh topology is imported once
    row = {"people": str(len(frame.faces))}
    new_mask, t_new = best_of(lambda: cm.person_region(frame, MIN_CONFIDENCE))
    if with_old_dilation:
        old_mask, t_old = best_of(lambda: person_region_by_full_canvas_dilation(frame, MIN_CONFIDENCE), runs=1)
        row["person masks, full-canvas dilation (first), s"] = f"{t_old:.2f}"
        row["person masks, equal"] = str(bool((old_mask == new_mask).all()))
    else:
        row["person masks, full-canvas dilation (first), s"] = "skipped (minutes)"
        row["person masks, equal"] = "-"
    row["person masks, crop-sized (now), s"] = f"{t_new:.3f}"
    before, t_before = best_of(lambda: node_before(frame, MIN_CONFIDENCE))
    del before
    now, t_now = best_of(lambda: node.draw(faces, MIN_CONFIDENCE, 1))
    before = node_before(frame, MIN_CONFIDENCE)
    row["whole node, uint8 maps + IMAGE copies (before), s"] = f"{t_before:.3f}"
    row["whole node, drawn on IMAGE batches (now), s"] = f"{t_now:.3f}"
    row["whole node, ratio before/now"] = f"{t_before / t_now:.1f}x"
    row["whole node, outputs equal"] = str(all(torch.equal(a, b) for a, b in zip(before, now)))
    return row


def main() -> None:
    cpu_bench(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
              "face analysis and the maps run on mediapipe, dlib, numpy and opencv")
    pack = _load_pack()
    node = pack.nodes.mmf_control.MMFControlMaps()
    columns = {}
    for size, picture in pictures().items():
        frame = analyze_image(picture, AnalysisSettings(embeddings=False))
        columns[size] = measure(frame, node, with_old_dilation=size == "1280x886")
        columns[size]["goal, s"] = f"<= {GOALS[size]}"
    labels = list(next(iter(columns.values())))
    print(f"{'MMFControlMaps':<52}" + "".join(f"{size:>20}" for size in columns))
    for label in labels:
        print(f"{label:<52}" + "".join(f"{col[label]:>20}" for col in columns.values()))


if __name__ == "__main__":
    main()
