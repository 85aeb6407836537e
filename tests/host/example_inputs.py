"""The example input pictures the shipped workflows name, made from the pack's sample photo."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "group6.jpg"


def input_pictures() -> dict[str, Image.Image]:
    """The example inputs the workflows name, made from the pack's sample group photo
    (six people in a row): the layout, a two-person picture, and one portrait per person."""
    group = Image.open(SAMPLE).convert("RGB")
    w, h = group.size
    two_faces = group.crop((0, 0, w // 3, h)).resize((256, 256 * h // (w // 3)))
    portraits = [group.crop((i * w // 6, 0, (i + 1) * w // 6, h // 2)).resize((2 * w // 6, h)) for i in range(6)]
    names = ["person_a.jpg", "person_b.jpg", "person_c.jpg", "person_d.jpg", "parent_a.jpg", "parent_b.jpg"]
    return {"group_photo.jpg": group.resize((w // 2, h // 2)), "picture_to_repair.png": two_faces,
            **dict(zip(names, portraits))}


def write_input_pictures(folder: Path) -> None:
    for name, picture in input_pictures().items():
        picture.save(folder / name)
