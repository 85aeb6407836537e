"""Preview pictures of a workflow: a screenshot of it in the real ComfyUI front end.

``<name>.png`` is the screenshot the generator took in Chromium after running the workflow
(tests/host/in_app.py), carrying the workflow in its "workflow" text chunk, as the
images ComfyUI saves do, so dropping it on ComfyUI opens the workflow. ``<name>.jpg`` is the
thumbnail ComfyUI's template browser shows for a pack's example workflow.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

MAX_WIDTH = 2400  # px: readable node titles, a PNG of a few hundred kB
THUMBNAIL = (512, 512)


def write_previews(workflow_path: Path, screenshot: Path | None = None) -> None:
    """PNG and JPG previews of the workflow at ``workflow_path``, from a new screenshot, or
    (without one) from the pixels of the PNG already there, with the current workflow embedded."""
    png_path = workflow_path.with_suffix(".png")
    source = screenshot if screenshot is not None else png_path
    if not source.exists():
        raise FileNotFoundError(f"no preview for {workflow_path.name} yet: run the generator with --measure "
                                "(COMFYUI_DIR set) to take a screenshot in the real front end")
    with Image.open(source) as opened:
        picture = opened.convert("RGB")
    if picture.width > MAX_WIDTH:
        picture = picture.resize((MAX_WIDTH, round(picture.height * MAX_WIDTH / picture.width)), Image.LANCZOS)
    info = PngInfo()
    info.add_text("workflow", json.dumps(json.loads(workflow_path.read_text())))
    picture.save(png_path, pnginfo=info, optimize=True)
    thumb = picture.copy()
    thumb.thumbnail(THUMBNAIL)
    thumb.save(workflow_path.with_suffix(".jpg"), quality=85)
