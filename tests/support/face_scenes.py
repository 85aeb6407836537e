"""Scenes with faces at known places: real portraits pasted by ``assets/make_group.py``.

Ground truth for each face is its oval (centre, width, height in scene px), carried
from the portrait's annotated oval through the paste's exact scale and shift.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from assets.make_group import CANVAS_H, CANVAS_W, FACE_HEIGHT, PEOPLE, backdrop, build, paste_person


def scene(width: int, height: int, faces: list[tuple], seed: int = 0) -> tuple[np.ndarray, list[tuple]]:
    """faces: (source, face height px, centre x, centre y, mirrored) -> (uint8 image, ovals)."""
    canvas = backdrop(np.random.default_rng(seed), width, height)
    ovals = [paste_person(canvas, name, size, x, y, mirrored) for name, size, x, y, mirrored in faces]
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), ovals


@functools.cache  # shared by several test modules; callers must not modify the arrays
def sizes_scene(sizes=(24, 32, 48, 64, 96, 128), seed: int = 1) -> tuple[np.ndarray, list[tuple]]:
    """A 1200 x 640 group with one face of each size, left to right, alternating people."""
    faces, x = [], 60.0
    for i, size in enumerate(sizes):
        x += max(size, 40) * 0.8
        faces.append(("astronaut" if i % 2 == 0 else "hopper", size, x, 220 + 40 * (i % 2), i % 3 == 1))
        x += max(size, 40) * 0.8 + 70
    return scene(1200, 640, faces, seed)


@functools.cache
def group6(factor: int = 1) -> tuple[np.ndarray, list[tuple]]:
    """The shipped sample's picture (rebuilt exactly, not JPEG-decoded) shrunk by factor, and its ovals."""
    image = build()
    ovals = [(x / factor, y / factor, 0.0, FACE_HEIGHT * s / factor) for _, _, s, _, _, x, y in PEOPLE]
    if factor != 1:
        image = cv2.resize(image, (CANVAS_W // factor, CANVAS_H // factor), interpolation=cv2.INTER_AREA)
    return image, ovals


T1_PEOPLE = [("hopper", 104, 180, 330, False), ("astronaut", 96, 400, 290, True), ("hopper", 116, 640, 340, True),
             ("astronaut", 120, 870, 300, False), ("hopper", 92, 1090, 360, False), ("astronaut", 110, 450, 640, False)]


def t1_like(factor: int = 1):
    """1280x886, six people with 92..120 px faces (t1.jpg's layout); factor 3 gives 427x295, faces 30..40 px."""
    people = [(who, size / factor, x / factor, y / factor, mirrored) for who, size, x, y, mirrored in T1_PEOPLE]
    return scene(round(1280 / factor), round(886 / factor), people, seed=21)


def oval_mask(oval: tuple, height: int, width: int) -> np.ndarray:
    cx, cy, w, h = oval
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    return ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1.0


def match(faces, ovals) -> list[int | None]:
    """For each true face, the index of the found face whose box centre is nearest to the oval
    centre and within a third of the face height of it, else None."""
    out = []
    for cx, cy, _, h in ovals:
        best = None
        for f in faces:
            d = np.hypot(f.center[0] - cx, f.center[1] - cy)
            if d <= h / 3 and (best is None or d < best[0]):
                best = (d, f.index)
        out.append(None if best is None else best[1])
    return out
