"""Build ``assets/group6.jpg``: a six-person "group photo" from two public-domain portraits.

Sources (both public domain, both shipped with common Python packages, no download):
- ``skimage.data.astronaut()``: NASA portrait of astronaut Eileen Collins.
- matplotlib's ``grace_hopper.jpg``: US Navy portrait of Rear Admiral Grace Hopper.

Each person is a head-and-shoulders cut-out (soft alpha) scaled so the face is about
120 px high, varied by mirroring, scale and colour, and placed in a staggered row in
front of a painted studio backdrop. Deterministic: running it again gives the same file.
The tests reuse ``paste_person`` and ``backdrop`` to build scenes with known faces.

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
FACE_HEIGHT = 120  # px from forehead to chin (the face oval's height)

# Per source, measured once on the full-resolution portrait: the face oval (centre x, y,
# width, height in source px; an ellipse fitted to mediapipe's face-mesh outline, checked by
# eye). The cut-out is in units of the oval height h, relative to the oval centre: head
# ellipse (dx, dy, rx, ry) taking in hair or hat, neck (top, bottom, half width), shoulders
# ellipse (dy, rx, ry) whose lower half continues down as a rectangle.
SOURCES = {
    "astronaut": dict(oval=(224.6, 119.4, 95.3, 112.5), head=(0.0, -0.09, 0.68, 0.83),
                      neck=(0.6, 1.28, 0.3), shoulders=(1.95, 1.52, 0.84)),
    "hopper": dict(oval=(262.5, 225.3, 199.1, 216.0), head=(0.01, -0.18, 0.54, 0.79),
                   neck=(0.62, 1.35, 0.31), shoulders=(2.06, 1.12, 0.9)),
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


def backdrop(rng: np.random.Generator, width: int = CANVAS_W, height: int = CANVAS_H) -> np.ndarray:
    """A mottled blue-grey studio backdrop, lighter in the middle (float32 RGB)."""
    low = rng.normal(0.0, 1.0, (6, 12)).astype(np.float32)
    mottle = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    vignette = 1.0 - 0.35 * (((xx - width / 2) / width) ** 2 + ((yy - height / 3) / height) ** 2)
    base = np.array([150, 160, 175], np.float32)
    return np.clip(base * vignette[..., None] + 12.0 * mottle[..., None], 0, 255)


def cutout(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The portrait (body extended downwards) and a soft head-and-shoulders alpha."""
    spec = SOURCES[name]
    img = cv2.copyMakeBorder(load_source(name), 0, 400, 0, 0, cv2.BORDER_REPLICATE)  # torso continues
    h_img, _ = img.shape[:2]
    cx, cy, _, h = spec["oval"]
    at = lambda dx, dy: (int(cx + dx * h), int(cy + dy * h))  # noqa: E731  (units of h -> px)
    alpha = np.zeros(img.shape[:2], np.float32)
    dx, dy, rx, ry = spec["head"]
    cv2.ellipse(alpha, at(dx, dy), (int(rx * h), int(ry * h)), 0, 0, 360, 1.0, -1)
    top, bottom, half = spec["neck"]
    cv2.rectangle(alpha, at(-half, top), at(half, bottom), 1.0, -1)
    sy, srx, sry = spec["shoulders"]
    cv2.ellipse(alpha, at(0, sy), (int(srx * h), int(sry * h)), 0, 180, 360, 1.0, -1)
    cv2.rectangle(alpha, at(-srx, sy), (at(srx, sy)[0], h_img), 1.0, -1)
    return img, cv2.GaussianBlur(alpha, (0, 0), 0.035 * h)


def paste_person(canvas: np.ndarray, name: str, face_height: float, fx: float, fy: float, mirrored: bool = False,
                 gain=(1.0, 1.0, 1.0), desaturate: float = 0.0, contrast: float = 1.0,
                 tilt: float = 0.0) -> tuple[float, float, float, float]:
    """Paste a person into the float canvas with the face oval centred at (fx, fy) and
    face_height px high; returns that oval (centre x, y, width, height) in canvas px.
    contrast < 1 pulls the person's tones towards mid-grey; tilt turns the head and shoulders
    by that many degrees (counter-clockwise) about the face centre."""
    img, alpha = cutout(name)
    cx, cy, ow, oh = SOURCES[name]["oval"]
    img = img.astype(np.float32) * np.array(gain, np.float32)
    img = np.clip(img * (1 - desaturate) + img.mean(axis=2, keepdims=True) * desaturate, 0, 255)
    if contrast != 1.0:
        img = 128.0 + (img - 128.0) * contrast
    if mirrored:
        img, alpha, cx = img[:, ::-1], alpha[:, ::-1], img.shape[1] - 1 - cx
    # Scale with area averaging (warpAffine alone would alias when shrinking), then shift so
    # the oval centre lands on (fx, fy); resize maps x -> (x + 0.5) * k - 0.5.
    h_src, w_src = img.shape[:2]
    dsize = (max(1, round(w_src * face_height / oh)), max(1, round(h_src * face_height / oh)))
    kx, ky = dsize[0] / w_src, dsize[1] / h_src
    interp = cv2.INTER_AREA if kx < 1 else cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(img), dsize, interpolation=interp)
    alpha = cv2.resize(np.ascontiguousarray(alpha), dsize, interpolation=interp)
    m = np.array([[1, 0, fx - ((cx + 0.5) * kx - 0.5)], [0, 1, fy - ((cy + 0.5) * ky - 0.5)]], np.float32)
    if tilt:
        m = (cv2.getRotationMatrix2D((fx, fy), tilt, 1.0) @ np.vstack([m, [0, 0, 1]])).astype(np.float32)
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = canvas * (1 - a) + warped * a
    return fx, fy, ow * kx, oh * ky


def build() -> np.ndarray:
    canvas = backdrop(np.random.default_rng(6))
    for name, mirrored, scale, gain, desat, fx, fy in PEOPLE:
        paste_person(canvas, name, FACE_HEIGHT * scale, fx, fy, mirrored, gain, desat)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


if __name__ == "__main__":
    out = Path(__file__).with_name("group6.jpg")
    Image.fromarray(build()).save(out, quality=85, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
