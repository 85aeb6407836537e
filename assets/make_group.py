"""Build ``assets/group6.jpg``: a six-person "group photo" from two public-domain portraits.

Sources (both public domain, both shipped with common Python packages, no download):
- ``skimage.data.astronaut()``: NASA portrait of astronaut Eileen Collins.
- matplotlib's ``grace_hopper.jpg``: US Navy portrait of Rear Admiral Grace Hopper.

Each person is a head-and-shoulders cut-out (soft alpha) scaled so the face is about
120 px high, varied by mirroring, scale and colour, and placed in a staggered row in
front of a painted studio backdrop. Deterministic: running it again gives the same file.

    python assets/make_group.py            # writes assets/group6.jpg
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image

CANVAS_W, CANVAS_H = 1200, 600
FACE_SIDE = 100  # mediapipe box side of each face; hairline to chin is ~1.2x this

# Per source: face centre and mediapipe box side in source pixels (measured once), the head
# ellipse (centre offset and radii, in units of the box side) that takes in hair or hat, and
# the half width of the shoulders in the same units.
SOURCES = {
    "astronaut": dict(center=(225, 130), side=95, head=(0.0, -0.22, 0.8, 0.98), shoulders=1.8),
    "hopper": dict(center=(269, 244), side=194, head=(-0.02, -0.3, 0.6, 0.88), shoulders=1.25),
}

# (source, mirrored, scale, colour gain RGB, desaturate, face centre x, face centre y);
# listed back row first, so the front people are pasted over them.
PEOPLE = [
    ("hopper", False, 0.95, (1.00, 0.97, 0.92), 0.0, 300, 200),
    ("astronaut", True, 0.92, (0.95, 1.00, 1.05), 0.0, 700, 195),
    ("hopper", True, 1.00, (1.05, 1.00, 0.95), 0.6, 1090, 210),
    ("astronaut", False, 1.05, (1.00, 1.00, 1.00), 0.0, 110, 250),
    ("hopper", False, 1.08, (0.92, 0.98, 1.08), 0.0, 500, 260),
    ("astronaut", True, 1.00, (1.08, 1.00, 0.90), 0.3, 890, 255),
]


def load_source(name: str) -> np.ndarray:
    if name == "astronaut":
        return skimage.data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.array(Image.open(f).convert("RGB"))


def backdrop(rng: np.random.Generator) -> np.ndarray:
    """A mottled blue-grey studio backdrop, lighter in the middle."""
    low = rng.normal(0.0, 1.0, (6, 12)).astype(np.float32)
    mottle = cv2.resize(low, (CANVAS_W, CANVAS_H), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:CANVAS_H, 0:CANVAS_W].astype(np.float32)
    vignette = 1.0 - 0.35 * (((xx - CANVAS_W / 2) / CANVAS_W) ** 2 + ((yy - CANVAS_H / 3) / CANVAS_H) ** 2)
    base = np.array([150, 160, 175], np.float32)
    img = base * vignette[..., None] + 12.0 * mottle[..., None]
    return np.clip(img, 0, 255)


def cutout(src: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """The person with a soft head-and-shoulders alpha; body extended down past the frame."""
    img = cv2.copyMakeBorder(src, 0, 400, 0, 0, cv2.BORDER_REPLICATE)  # torso continues downwards
    h, w = img.shape[:2]
    (cx, cy), s = spec["center"], spec["side"]
    alpha = np.zeros((h, w), np.float32)
    dx, dy, rx, ry = spec["head"]
    cv2.ellipse(alpha, (int(cx + dx * s), int(cy + dy * s)), (int(rx * s), int(ry * s)), 0, 0, 360, 1.0, -1)
    neck_y = int(cy + 0.6 * s)
    cv2.rectangle(alpha, (int(cx - 0.35 * s), neck_y), (int(cx + 0.35 * s), int(cy + 1.4 * s)), 1.0, -1)
    half = spec["shoulders"] * s
    cv2.ellipse(alpha, (int(cx), int(cy + 2.2 * s)), (int(half), int(1.0 * s)), 0, 180, 360, 1.0, -1)
    cv2.rectangle(alpha, (int(cx - half), int(cy + 2.2 * s)), (int(cx + half), h), 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.04 * s)
    return img, alpha, (cx, cy), s


def place(canvas: np.ndarray, person: tuple) -> None:
    name, mirrored, scale, gain, desat, fx, fy = person
    img, alpha, (cx, cy), s = cutout(load_source(name), SOURCES[name])
    img = img.astype(np.float32) * np.array(gain, np.float32)
    gray = img.mean(axis=2, keepdims=True)
    img = np.clip(img * (1 - desat) + gray * desat, 0, 255)
    if mirrored:
        img, alpha, cx = img[:, ::-1], alpha[:, ::-1], img.shape[1] - 1 - cx
    k = FACE_SIDE * scale / s
    # Affine map source -> canvas: scale by k about the face centre, put it at (fx, fy).
    m = np.array([[k, 0, fx - k * cx], [0, k, fy - k * cy]], np.float32)
    warped = cv2.warpAffine(np.ascontiguousarray(img), m, (CANVAS_W, CANVAS_H), flags=cv2.INTER_AREA,
                            borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(np.ascontiguousarray(alpha), m, (CANVAS_W, CANVAS_H), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = canvas * (1 - a) + warped * a


def build() -> np.ndarray:
    rng = np.random.default_rng(6)
    canvas = backdrop(rng)
    for person in PEOPLE:
        place(canvas, person)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


if __name__ == "__main__":
    out = Path(__file__).with_name("group6.jpg")
    Image.fromarray(build()).save(out, quality=85, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
