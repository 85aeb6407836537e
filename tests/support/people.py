"""Real public-domain photos of people for the identity tests, and composites of them."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image

from magicid_core.image_io import to_rgb_uint8

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(None)
def astronaut() -> np.ndarray:
    """Eileen Collins, 512x512, face about 90 px, upper body visible."""
    return skimage.data.astronaut()


@functools.lru_cache(None)
def grace_hopper() -> np.ndarray:
    """Grace Hopper, 600x512 (HxW), face about 185 px."""
    return np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))


@functools.lru_cache(None)
def cameraman() -> np.ndarray:
    """scikit-image's cameraman (grayscale, made RGB): a third, unknown person."""
    return to_rgb_uint8(skimage.data.camera())


def crop_scaled(image: np.ndarray, y0: int, y1: int, x0: int, x1: int, size: int) -> np.ndarray:
    """A square-ish crop resized to ``size`` pixels on each side: the same person at another crop and scale."""
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def group_of_three() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Cameraman, Grace Hopper and the astronaut side by side (left to right) on one 320x960 canvas.

    Returns the canvas and the x-range of each person's tile.
    """
    tiles = [crop_scaled(cameraman(), 60, 330, 90, 360, 300),
             crop_scaled(grace_hopper(), 60, 460, 80, 480, 300),
             crop_scaled(astronaut(), 0, 320, 60, 380, 300)]
    canvas = np.full((320, 960, 3), 128, np.uint8)
    spans = []
    for i, tile in enumerate(tiles):
        x = 10 + i * 320
        canvas[10:310, x:x + 300] = tile
        spans.append((x, x + 300))
    return canvas, spans


