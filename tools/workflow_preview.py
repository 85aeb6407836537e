"""Preview pictures of a UI-format workflow: a drawing of its graph.

``<name>.png`` carries the workflow in its "workflow" text chunk, as the images ComfyUI
saves do, so dropping it on ComfyUI opens the workflow. ``<name>.jpg`` is the thumbnail
ComfyUI's template browser shows for a pack's example workflow.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

# Link colours as ComfyUI draws them, by type; other types are grey.
TYPE_COLORS = {
    "MODEL": (180, 160, 255), "CLIP": (255, 210, 50), "VAE": (255, 100, 100),
    "CONDITIONING": (255, 160, 50), "LATENT": (255, 150, 200), "IMAGE": (100, 180, 255),
    "MASK": (80, 200, 120), "CONTROL_NET": (0, 200, 160), "FACES": (255, 220, 120),
    "IDENTITIES": (240, 120, 240),
}
BACKGROUND, NODE_FILL, NOTE_FILL, TEXT = (32, 32, 32), (53, 53, 53), (85, 68, 51), (230, 230, 230)


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def draw_graph(wf: dict, title: str, width: int = 1200) -> Image.Image:
    nodes = wf["nodes"]
    x0 = min(n["pos"][0] for n in nodes) - 40
    y0 = min(n["pos"][1] for n in nodes) - 140  # room for the title
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes) + 40
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes) + 40
    scale = width / (x1 - x0)
    img = Image.new("RGB", (width, max(256, int((y1 - y0) * scale))), BACKGROUND)
    draw = ImageDraw.Draw(img)
    at = lambda x, y: ((x - x0) * scale, (y - y0) * scale)  # noqa: E731
    by_id = {n["id"]: n for n in nodes}
    for _, src, src_slot, dst, dst_slot, kind in (link[:6] for link in wf["links"]):
        a, b = by_id[src], by_id[dst]
        start = at(a["pos"][0] + a["size"][0], a["pos"][1] + 20 + 24 * src_slot)
        end = at(b["pos"][0], b["pos"][1] + 20 + 24 * dst_slot)
        draw.line([start, end], fill=TYPE_COLORS.get(kind, (160, 160, 160)), width=max(2, int(4 * scale)))
    font, small = _font(max(10, int(22 * scale))), _font(max(9, int(16 * scale)))
    for n in nodes:
        left, top = at(*n["pos"])
        right, bottom = at(n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
        note = n["type"] in ("Note", "MarkdownNote")
        draw.rounded_rectangle([left, top, right, bottom], radius=8, fill=NOTE_FILL if note else NODE_FILL,
                               outline=(90, 90, 90))
        draw.text((left + 8, top + 6), n.get("title") or n["type"], fill=TEXT, font=font)
        if note:
            text = str((n.get("widgets_values") or [""])[0])
            chars = int((right - left - 16) / (0.55 * small.size)) if hasattr(small, "size") else 40
            draw.multiline_text((left + 8, top + 40 * scale + 8), _wrap(text, chars, int((bottom - top) / (1.25 * getattr(small, "size", 12))) - 2),
                                fill=(210, 200, 180), font=small)
    draw.text((16, 12), title, fill=(255, 216, 77), font=_font(30))
    return img


def _wrap(text: str, width: int, max_lines: int) -> str:
    lines = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            if len(line) + len(word) + 1 > max(10, width):
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    return "\n".join(lines[:max(1, max_lines)])


def write_previews(workflow_path: Path, title: str) -> None:
    wf = json.loads(workflow_path.read_text())
    picture = draw_graph(wf, title)
    info = PngInfo()
    info.add_text("workflow", json.dumps(wf))
    picture.save(workflow_path.with_suffix(".png"), pnginfo=info, optimize=True)
    thumb = picture.copy()
    thumb.thumbnail((512, 512))
    thumb.save(workflow_path.with_suffix(".jpg"), quality=85)
