"""Memory of FACES at crop-size masks vs whole-image masks, side by side in one run:
`python bench/bench_faces_memory.py`.

A 4096 x 4096 group photo of 12 real people (300 px faces, built by assets/make_group.py's
paste) is analysed as FaceDetectMasks does (mesh, masks, skeletons, embeddings). Printed:

1. bytes held by the face records (every array of every Face): as they are now, with each
   mask at the size of its region, and as the old layout held them, with every mask a
   whole-image float32 canvas (the same records with each mask replaced by its full_mask);
2. peak memory of the analysis, in a fresh process each (tracemalloc peak of Python and
   numpy allocations, and the process's peak RSS, which also counts mediapipe's models):
   the analysis alone, and the analysis that then keeps whole-image masks (the old layout).
   RSS does not see a whole-image canvas until its zero pages are written, so it is taken
   again after each mask is copied once (as pickling FACES or turning it into a tensor does);
3. the ratios. The goal is <= 64 MiB for the face records.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

SIDE, FACE_PX = 4096, 300
GOAL_MIB = 64
MIB = 1 << 20


def twelve_people() -> np.ndarray:
    """4 columns x 3 rows of people, alternating Eileen Collins and Grace Hopper."""
    from tests.support.face_scenes import scene

    faces = [("astronaut" if (r * 4 + c) % 2 == 0 else "hopper", FACE_PX, 512 + 1024 * c, 700 + 1300 * r, c % 2 == 1)
             for r in range(3) for c in range(4)]
    return scene(SIDE, SIDE, faces, seed=3)[0]


def record_bytes(frame) -> int:
    """Bytes of every numpy array held by the face records of one image."""
    return sum(v.nbytes for face in frame.faces for v in vars(face).values() if isinstance(v, np.ndarray))


def as_old_layout(frame) -> None:
    """Give every face its whole-image mask, as face records held them before crop-size masks."""
    for face in frame.faces:
        face.mask, face.mask_box = face.full_mask(frame.height, frame.width), None


def measure(image_path: str, layout: str) -> dict:
    """One analysis in this (fresh) process: faces found, record bytes, peaks."""
    from magicid_core.analyze import AnalysisSettings, analyze_image

    image = np.load(image_path)
    tracemalloc.start()
    t = time.perf_counter()
    frame = analyze_image(image, AnalysisSettings())
    if layout == "whole-image masks":
        as_old_layout(frame)
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    copies = [face.mask.copy() for face in frame.faces]   # what pickling or a torch conversion writes
    rss_copied = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del copies
    return {"faces": len(frame.faces), "record_bytes": record_bytes(frame), "traced_peak": peak,
            "rss_peak": rss, "rss_copied": rss_copied, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cpu_bench(p, "face analysis runs on mediapipe, dlib and onnxruntime's CPU provider")
    p.add_argument("--child", nargs=2, metavar=("IMAGE_NPY", "LAYOUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    t = time.perf_counter()
    image = twelve_people()
    print(f"scene: {SIDE}x{SIDE}, 12 people with {FACE_PX} px faces (built in {time.perf_counter() - t:.0f} s)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "scene.npy")
        np.save(path, image)
        for layout in ("crop-size masks", "whole-image masks"):
            out = subprocess.run([sys.executable, __file__, "--child", path, layout], capture_output=True,
                                 text=True, check=True, cwd=ROOT)
            rows[layout] = json.loads(out.stdout.strip().splitlines()[-1])

    new, old = rows["crop-size masks"], rows["whole-image masks"]
    print(f"faces found: {new['faces']} (whole-image run: {old['faces']})")
    print(f"{'':<34} {'whole-image masks':>18} {'crop-size masks':>16} {'ratio old/new':>14}")
    for key, label in (("record_bytes", "face records (FACES), MiB"),
                       ("traced_peak", "analysis peak, tracemalloc, MiB"),
                       ("rss_peak", "analysis process peak RSS, MiB"),
                       ("rss_copied", "... then masks copied once, MiB")):
        print(f"{label:<34} {old[key] / MIB:>18.1f} {new[key] / MIB:>16.1f} {old[key] / new[key]:>14.1f}")
    print(f"{'analysis time, s':<34} {old['seconds']:>18.1f} {new['seconds']:>16.1f}")
    verdict = "meets" if new["record_bytes"] <= GOAL_MIB * MIB else "MISSES"
    print(f"face records at crop size: {new['record_bytes'] / MIB:.1f} MiB, {verdict} the goal of <= {GOAL_MIB} MiB")


if __name__ == "__main__":
    main()
