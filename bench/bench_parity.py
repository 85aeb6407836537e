"""Parity with the reference implementations: one line per reference with the largest differences
measured in this run, on files with the real models' interface and seeded random weights.

insightface (PyPI >= 2.1) against magicid_core.insightface, with the pack's policies set to
insightface's (INSIGHTFACE_SETTINGS): SCRFD on every output layout (6/9/10/15 outputs, with and
without a batch axis, with and without a silent pyramid level) over four pictures; the letterbox
canvas over many widths; the max_faces choice; ArcFace crops against norm_crop; embeddings against
ArcFaceONNX.get, for a PyTorch-style export and one with built-in normalisation. The last lines
give the median detect() time of both, side by side (wall clock, this machine, this run).

IPAdapter_plus and ComfyUI_InstantID against MultiIDApply (when COMFYUI_DIR and MAGICID_PEERS_DIR
are set, and this Python has ComfyUI's requirements): tests/host/test_peer_parity.py and
test_peer_parity_faceid_plus.py run in a subprocess and print each comparison's max |ours - reference|
over the denoised latents of the first, a middle and the last step; one line per reference gives the
largest of its comparisons ("same vector": both sides read the same embedding; "from insightface's
vector": ours reads it renormalised or rebuilt as unit x kept norm, a few float32 steps away; FaceID
Plus / Plus v2: the same vector, photo, keypoints and CLIP vision model). --peer-log summarises the
output of an earlier ``pytest <those files> -s`` run instead of running them again.

    python bench/bench_parity.py [--repeats 5] [--peer-log FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.device import cpu_bench  # noqa: E402

from tests.support.insightface_reference import reference_missing  # noqa: E402

if reference_missing():
    sys.exit(reference_missing())

from tests.support.insightface_onnx_models import LAYOUTS, build_arcface, build_scrfd  # noqa: E402
from tests.support.insightface_reference import (detection_differences, group_photo, keypoint_sets, our_detector,  # noqa: E402
                                   pack_of, parity_images, reference_canvas, reference_crop, reference_detect,
                                   reference_detector, reference_embedding)
from magicid_core.insightface import ArcFaceRecognizer, InsightFaceDetector, align_face  # noqa: E402
from magicid_core.insightface.scrfd import letterbox  # noqa: E402


class Worst:
    """The largest value seen for each named difference, and the number of comparisons."""

    def __init__(self):
        self.values: dict[str, float] = {}
        self.count = 0
        self.count_mismatches = 0

    def add(self, diffs: dict) -> None:
        self.count += 1
        if diffs.get("faces") != diffs.get("reference faces", diffs.get("faces")):
            self.count_mismatches += 1
        for key, value in diffs.items():
            if key not in ("faces", "reference faces"):
                self.values[key] = max(self.values.get(key, 0.0), float(value))

    def line(self, what: str, unit: str = "") -> str:
        worst = ", ".join(f"max |d {k}| {v:.3g}{unit if k != 'score' else ''}" for k, v in self.values.items())
        return f"{what:<48} {self.count:>4} cases, face counts differ in {self.count_mismatches}; {worst or 'no faces'}"


def scrfd_layouts(folder: Path) -> tuple[Worst, int]:
    worst, faces = Worst(), 0
    for outputs, (strides, _, _) in sorted(LAYOUTS.items()):
        for batch_axis in (False, True):
            for silent in ((), (strides[1],)):
                path = build_scrfd(folder / f"s{outputs}{batch_axis}{len(silent)}.onnx", outputs=outputs,
                                   batch_axis=batch_axis, silent_levels=silent, seed=outputs)
                ours, ref = our_detector(path), reference_detector(path)
                for image in parity_images().values():
                    reference = reference_detect(ref, image)
                    faces += len(reference[1])
                    worst.add(detection_differences(ours.detect_arrays(image), reference))
    return worst, faces


def letterbox_canvases(folder: Path) -> tuple[int, int]:
    ref = reference_detector(build_scrfd(folder / "letterbox.onnx", outputs=9, seed=6))
    source, sizes, worst = group_photo(), 0, 0
    for side in range(97, 1400, 7):
        for h, w in ((480, side), (side, 480)):
            image = cv2.resize(source, (w, h))
            theirs = reference_canvas(ref, image).astype(int)
            worst = max(worst, int(np.abs(letterbox(image, (640, 640))[0].astype(int) - theirs).max()))
            sizes += 1
    return sizes, worst


def max_faces_choice(folder: Path) -> Worst:
    path, worst = build_scrfd(folder / "ranking.onnx", outputs=9, seed=7), Worst()
    ref = reference_detector(path)
    for max_faces in (1, 2, 3, 4, 6):
        ours = our_detector(path, max_faces=max_faces)
        for image in parity_images().values():
            worst.add(detection_differences(ours.detect_arrays(image), reference_detect(ref, image, max_faces)))
    return worst


def arcface(folder: Path) -> tuple[int, int, dict]:
    detector = our_detector(build_scrfd(folder / "kps.onnx", outputs=9, seed=9))
    pairs = [(image, kps) for image in list(parity_images().values())[:3] for kps in keypoint_sets(detector, image)]
    crop_worst = max(int(np.abs(align_face(i, k).astype(int) - reference_crop(i, k).astype(int)).max())
                     for i, k in pairs)
    embeddings = {}
    for builtin in (False, True):
        path = build_arcface(folder / f"arc{builtin}.onnx", seed=11, builtin_normalisation=builtin)
        ours = ArcFaceRecognizer(pack_of(recognizer=path))
        cosines, norms = [], []
        for image, kps in pairs:
            face, raw = reference_embedding(path, image, kps), ours.raw_embedding(image, kps)
            cosines.append(float(raw @ face.embedding / (np.linalg.norm(raw) * face.embedding_norm)))
            norms.append(abs(float(np.linalg.norm(raw)) / face.embedding_norm - 1))
        embeddings[builtin] = (min(cosines), max(norms))
    return len(pairs), crop_worst, embeddings


def pack_defaults(folder: Path) -> str:
    """How far the pack's default policies take it from insightface: faces found by each on the pictures."""
    path = build_scrfd(folder / "defaults.onnx", outputs=9, seed=7, score_bias=-1.5)
    ref = reference_detector(path)
    ours = InsightFaceDetector(pack_of(detector=path))
    counts = [(len(ours.detect_arrays(image).scores), len(reference_detect(ref, image)[1]))
              for image in parity_images().values()]
    return ", ".join(f"{name.split()[0]} {o} vs {r}" for name, (o, r) in zip(parity_images(), counts))


def median_ms(detect, image, repeats: int) -> float:
    detect(image)   # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detect(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# pytest -s writes its progress marks (. F E s x) in front of a test's first printed line
LABEL = r"^[.FEsx]*?(?P<label>(?:IPAdapter_plus|InstantID|stacking) .+?)"
PEER_LINE = re.compile(LABEL + r": max \|ours - reference\| = (?P<value>\S+) \(max \|reference\| (?P<scale>[^)]+)\)$")
SHIPPED_LINE = re.compile(LABEL + r" as shipped: ours - theirs = (?P<value>\S+) \(middle block only\)$")
FROM_INSIGHTFACE = "from insightface's"
PLUS, PLUS_V2 = "FaceID plus ", "FaceID plusv2 "   # test_peer_parity_faceid_plus.py's labels
PEER_FILES = ["tests/host/test_peer_parity.py", "tests/host/test_peer_parity_faceid_plus.py"]


def _faceid(label: str) -> bool:
    return label.startswith("IPAdapter_plus") and "FaceID plus" not in label


PEER_GROUPS = {  # bench line -> which comparisons of the peer parity tests it summarises
    "IPAdapter_plus FaceID, same vector (faceid/portrait/unnorm, SD1.5+SDXL)":
        lambda l: _faceid(l) and "identities" not in l and FROM_INSIGHTFACE not in l,
    "IPAdapter_plus FaceID from insightface's vector": lambda l: _faceid(l) and FROM_INSIGHTFACE in l,
    "IPAdapter_plus FaceID, 4 identities, disjoint masks": lambda l: _faceid(l) and "identities" in l,
    "IPAdapter_plus FaceID Plus, same vector, photo and CLIP (SD1.5+SDXL)":
        lambda l: PLUS in l and "identities" not in l,
    "IPAdapter_plus FaceID Plus v2, same inputs, weight_faceidv2 (SD1.5+SDXL)":
        lambda l: PLUS_V2 in l and "identities" not in l,
    "IPAdapter_plus FaceID Plus / Plus v2, N identities, disjoint masks":
        lambda l: "FaceID plus" in l and "identities" in l,
    "InstantID attention path, same vector (SDXL, noise 0.35)":
        lambda l: l.startswith("InstantID") and FROM_INSIGHTFACE not in l,
    "InstantID from insightface's raw vector": lambda l: l.startswith("InstantID") and FROM_INSIGHTFACE in l,
    "stacking with IPAdapter_plus, both orders": lambda l: l.startswith("stacking"),
}


def peer_lines(log: str | None = None) -> list[str]:
    """The peer parity host tests' printed max differences (from a run now, or from ``log``), per reference."""
    if log:
        stdout = Path(log).read_text()
    elif os.environ.get("COMFYUI_DIR") and os.environ.get("MAGICID_PEERS_DIR"):
        stdout = subprocess.run([sys.executable, "-m", "pytest", *PEER_FILES, "-q", "-s",
                                 "-p", "no:logging"], cwd=ROOT, capture_output=True, text=True).stdout
    else:
        return ["IPAdapter_plus / InstantID: skipped (set COMFYUI_DIR and MAGICID_PEERS_DIR, run with the host Python)"]
    lines = stdout.splitlines()
    found = [(m["label"], float(m["value"])) for m in map(PEER_LINE.match, lines) if m]
    out = [f"  {label}: {value:.3g}" for label, value in found]
    for what, belongs in PEER_GROUPS.items():
        values = [v for label, v in found if belongs(label)]
        worst = f"max |d denoised| {max(values):.3g}" if values else "not measured"
        out.append(f"{what:<72} {len(values):>3} comparisons, {worst}")
    shipped = [float(m["value"]) for m in map(SHIPPED_LINE.match, lines) if m]
    if shipped:
        out.append(f"{'IPAdapter_plus as shipped (its middle block never patched): ours - theirs':<72} "
                   f"{len(shipped):>3} comparisons, {min(shipped):.3g} to {max(shipped):.3g}")
    tail = [line for line in lines if " passed" in line or " failed" in line][-1:] or ["no summary"]
    out.append(f"{'peer parity tests':<72} {tail[0].strip()}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cpu_bench(parser, "insightface and the pack run their ONNX models on onnxruntime's CPU provider")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-log", help="output of an earlier `pytest tests/host/test_peer_parity*.py -s` to summarise")
    args = parser.parse_args()
    import insightface

    print(f"reference: insightface {insightface.__version__}; numpy {np.__version__}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layouts, faces = scrfd_layouts(folder)
        print(layouts.line(f"insightface SCRFD, all layouts ({faces} faces)", " px"))
        sizes, canvas = letterbox_canvases(folder)
        print(f"{'insightface letterbox canvas':<48} {sizes:>4} sizes, max |d pixel| {canvas} grey levels")
        print(max_faces_choice(folder).line("insightface max_num (max_faces) choice", " px"))
        pairs, crop, embeddings = arcface(folder)
        print(f"{'insightface norm_crop alignment':<48} {pairs:>4} faces, max |d pixel| {crop} grey levels")
        for builtin, (cosine, norm) in embeddings.items():
            what = "ArcFaceONNX.get, built-in normalisation" if builtin else "ArcFaceONNX.get, PyTorch export"
            print(f"{'insightface ' + what:<48} {pairs:>4} faces, min cosine {cosine:.7f}, "
                  f"max relative |d raw norm| {norm:.2e}")

        print(f"{'pack defaults vs insightface, faces found':<48} {pack_defaults(folder)} (on purpose: docs/parity.md)")

        path = build_scrfd(folder / "timing.onnx", outputs=9, seed=7)
        ours, ref = our_detector(path), reference_detector(path)
        image = group_photo()
        ours_ms = median_ms(ours.detect_arrays, image, args.repeats)
        ref_ms = median_ms(lambda i: reference_detect(ref, i), image, args.repeats)
        print(f"{'SCRFD detect 1200x600 at 640, median ms':<48} ours {ours_ms:.1f}, insightface {ref_ms:.1f}, "
              f"ratio {ours_ms / ref_ms:.2f}")
    for line in peer_lines(args.peer_log):
        print(line)


if __name__ == "__main__":
    main()
