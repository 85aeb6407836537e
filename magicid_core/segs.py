"""FACES <-> Impact Pack's SEGS, without importing Impact Pack.

SEGS is Impact Pack's detection type (``modules/impact/core.py``)::

    ((height, width), [SEG(cropped_image, cropped_mask, confidence, crop_region, bbox, label,
                           control_net_wrapper), ...])

- ``crop_region``: [x1, y1, x2, y2] ints, the part of the image a detailer works on;
- ``cropped_mask``: float32 (y2 - y1, x2 - x1) in 0..1, the mask inside that region;
- ``cropped_image``: None, or the region's pixels (1, h, w, 3) float (SEGSPaste pastes them);
- ``bbox``: the detection box x1, y1, x2, y2; ``confidence``: 0..1; ``label``: e.g. "face".

``SEG`` below has the same name, fields and default as Impact's namedtuple, so Impact's
nodes read ours by field name and rebuild it with their own class as they always do.
The crop region follows Impact's ``make_crop_region`` (the box grown ``crop_factor`` times
about its centre, shifted inside the image), grown further where our feathered mask
reaches beyond it: a mask is never cut, so pasting it back gives the same pixels.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import validate
from .analyze import AnalysisSettings, analyze_boxes
from .faces.records import ImageFaces

SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])
FACE_LABEL = "face"  # the label Impact's face detectors (e.g. face_yolov8m) give


def _normalize_region(limit: int, start: int, size: float) -> tuple[int, int]:
    """Impact's normalize_region: a span of ``size`` from ``start``, moved inside [0, limit]."""
    if start < 0:
        return 0, int(min(limit, size))
    if start + size > limit:
        return int(max(0, limit - size)), int(limit)
    return int(start), int(min(limit, start + size))


def impact_crop_region(box, width: int, height: int, crop_factor: float) -> list[int]:
    """Impact's make_crop_region: ``box`` grown ``crop_factor`` times about its centre, inside the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    crop_w, crop_h = (x2 - x1) * crop_factor, (y2 - y1) * crop_factor
    left, top = int(x1 + (x2 - x1) / 2 - crop_w / 2), int(y1 + (y2 - y1) / 2 - crop_h / 2)
    new_x1, new_x2 = _normalize_region(width, left, crop_w)
    new_y1, new_y2 = _normalize_region(height, top, crop_h)
    return [new_x1, new_y1, new_x2, new_y2]


def mask_bounds(mask: np.ndarray) -> list[int] | None:
    """[x1, y1, x2, y2) of a mask's non-zero pixels, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def face_crop_region(box, mask: np.ndarray | None, width: int, height: int, crop_factor: float) -> list[int]:
    """Impact's crop region for the face box, grown to hold every non-zero pixel of its mask."""
    region = impact_crop_region(box, width, height, crop_factor)
    held = None if mask is None else mask_bounds(mask)
    if held is not None:
        region = [min(region[0], held[0]), min(region[1], held[1]), max(region[2], held[2]), max(region[3], held[3])]
    return region


def faces_to_segs(faces: ImageFaces, image: np.ndarray | None = None, crop_factor: float = 3.0,
                  label: str = FACE_LABEL) -> tuple[tuple[int, int], list[SEG]]:
    """One image's faces -> SEGS, one SEG per face in the faces' order.

    Each SEG carries the face's own exclusive, feathered mask at crop size (a face without a
    mask gets its box), the face box as bbox, the detector's score as confidence, and, when
    ``image`` (H, W, 3) float 0..1 is given, the region's pixels as cropped_image.
    """
    crop_factor = validate.number("crop_factor", crop_factor, 1.0)   # below 1 the crop would cut the face box
    if image is not None and tuple(image.shape[:2]) != (faces.height, faces.width):
        raise ValueError(f"the image is {image.shape[1]}x{image.shape[0]} but the faces were found in a "
                         f"{faces.width}x{faces.height} image: give the image FaceDetectMasks analysed")
    segs = []
    for face in faces.faces:
        mask = face.full_mask(faces.height, faces.width) if face.mask is not None \
            else box_mask(face.box, faces.height, faces.width)
        x1, y1, x2, y2 = face_crop_region(face.box, mask, faces.width, faces.height, crop_factor)
        cropped_image = None
        if image is not None:
            cropped_image = np.ascontiguousarray(image[None, y1:y2, x1:x2, :3], dtype=np.float32)
        segs.append(SEG(cropped_image, np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.float32),
                        float(face.score), [x1, y1, x2, y2], np.asarray(face.box, np.float32).copy(), label, None))
    return (faces.height, faces.width), segs


def box_mask(box, height: int, width: int) -> np.ndarray:
    """(H, W) float32: 1 inside the box's pixels, 0 elsewhere."""
    mask = np.zeros((height, width), np.float32)
    x1, y1 = (max(0, int(np.floor(v))) for v in box[:2])
    x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    mask[y1:min(y2, height), x1:min(x2, width)] = 1.0
    return mask


def seg_mask(cropped: np.ndarray, region, height: int, width: int) -> np.ndarray:
    """A SEG's checked crop-size mask pasted into an (H, W) float32 frame at its crop region; the
    parts of the region outside the image are left out."""
    x1, y1, x2, y2 = region
    frame = np.zeros((height, width), np.float32)
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if fx2 > fx1 and fy2 > fy1:
        frame[fy1:fy2, fx1:fx2] = cropped[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]
    return frame


def read_segs(segs, name: str = "segs") -> tuple[int, int, list[SEG]]:
    """Check a SEGS value's shape and image size, and return height, width and its SEG list."""
    try:
        (height, width), items = segs
    except (TypeError, ValueError):
        raise validate.BadInput(f"{name}: SEGS must be ((height, width), [SEG, ...]) as Impact Pack's detectors "
                                f"make it; got {validate.excerpt(type(segs).__name__)}") from None
    height = validate.number(f"{name}: the image height", height, 1, integer=True)
    width = validate.number(f"{name}: the image width", width, 1, integer=True)
    if not isinstance(items, (list, tuple)):
        raise validate.BadInput(f"{name}: the SEG list is a {type(items).__name__}: SEGS must be "
                                "((height, width), [SEG, ...]) as Impact Pack's detectors make it")
    for i, seg in enumerate(items):
        missing = [f for f in ("cropped_mask", "confidence", "crop_region", "bbox", "label") if not hasattr(seg, f)]
        if missing:
            raise validate.BadInput(f"{name}: SEG {i} has no {', '.join(missing)}: it is not an Impact Pack SEG")
    return height, width, list(items)


def checked_seg(seg, height: int, width: int, where: str):
    """One SEG's (box cut to the image, confidence, crop-size mask, crop region), each checked by name.
    The box may come back empty (x1 == x2): it lies outside the image."""
    bbox = validate.box(f"{where}'s bbox", seg.bbox, width, height)
    score = validate.fraction(f"{where}'s confidence", seg.confidence)
    region = [int(v) for v in validate.box(f"{where}'s crop_region", seg.crop_region)]
    mask = validate.crop_mask(f"{where}'s cropped_mask", seg.cropped_mask, region[3] - region[1],
                              region[2] - region[0])
    return bbox, score, mask, region


def segs_to_faces(image: np.ndarray, segs, settings: AnalysisSettings | None = None,
                  keep_masks: bool = True) -> ImageFaces:
    """SEGS of ``image`` (H, W, C) -> its faces, one per SEG in the SEGS' order, analysed from
    their boxes without detecting again (mesh, keypoints, skeletons, embeddings).

    ``keep_masks``: each face keeps its SEG's mask, pasted at its crop region (so FACES ->
    SEGS -> FACES gives the same mask pixels); off: our exclusive masks from the mesh.
    A box reaching out of the image is cut to it; a SEG whose box lies wholly outside is left
    out. Both are said in the faces' notes (the node shows them).
    """
    height, width, items = read_segs(segs)
    if tuple(image.shape[:2]) != (height, width):
        raise validate.BadInput(f"segs: the SEGS were made on a {width}x{height} image but the image is "
                                f"{image.shape[1]}x{image.shape[0]}: give the image the detector saw")
    boxes, scores, masks, notes = [], [], [], []
    for i, seg in enumerate(items):
        box, score, mask, region = checked_seg(seg, height, width, f"segs: SEG {i}")
        given = validate.excerpt(np.asarray(seg.bbox, np.float64).round(1).tolist())
        if box[2] <= box[0] or box[3] <= box[1]:
            notes.append(f"SEG {i}'s box {given} lies outside the {width}x{height} image (or has no area): left "
                         "out, so the faces after it are numbered one lower")
            continue
        if not np.allclose(box, np.asarray(seg.bbox, np.float64)):
            notes.append(f"SEG {i}'s box {given} reaches out of the {width}x{height} image: cut to it")
        boxes.append(box)
        scores.append(score)
        masks.append(seg_mask(mask, region, height, width))
    labels = sorted({str(seg.label)[:40] for seg in items})
    faces = analyze_boxes(image, boxes, scores, settings, masks if keep_masks else None,
                          source="segs:" + ",".join(labels))
    faces.notes[:0] = notes
    return faces
