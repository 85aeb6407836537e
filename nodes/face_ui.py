"""What a face node shows on itself in the ComfyUI app: its preview images and face boxes.

A node returns ``{"ui": faces_ui(face_set, previews), "result": (...)}``; the app shows the
images on the node, and web/magicid.js draws each face's index over them from
``magicid_faces`` (per image: ``[{"index": i, "box": [x0, y0, x1, y1]}, ...]`` in pixels).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..magicid_core.faces.records import FaceSet


def face_boxes(face_set: FaceSet) -> list[list[dict]]:
    return [[{"index": int(f.index), "box": [round(float(v), 1) for v in f.box]} for f in im.faces]
            for im in face_set.images]


def save_temp_previews(previews: list[np.ndarray], prefix: str = "magicid_faces") -> list[dict]:
    """Write HxWx3 uint8 previews to ComfyUI's temp folder, as PreviewImage does."""
    import folder_paths

    h, w = previews[0].shape[:2]
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_temp_directory(), w, h)
    saved = []
    for i, preview in enumerate(previews):
        file = f"{name}_{counter + i:05}_.png"
        Image.fromarray(preview).save(os.path.join(folder, file), compress_level=1)
        saved.append({"filename": file, "subfolder": subfolder, "type": "temp"})
    return saved


def faces_ui(face_set: FaceSet, previews: list[np.ndarray]) -> dict:
    return {"images": save_temp_previews(previews), "magicid_faces": face_boxes(face_set)}
