"""FACES <-> SEGS through the real Impact Pack, both ways, inside a real ComfyUI.

Needs MAGICID_PEERS_DIR: a folder holding a ComfyUI-Impact-Pack checkout (with its Python
requirements installed); skipped with the reason otherwise. Impact's SEGS nodes are its
own classes from ``modules/impact/segs_nodes.py``, imported inside ComfyUI (this pack
loaded by ComfyUI's loader, a real PromptServer object for Impact's routes) and called as
the app calls them. (Impact's ``__init__`` also imports the separately installed Impact
Subpack, which only adds the Ultralytics detector provider; it is not needed here.)

- FACES -> SEGS: Impact's SEGSToMaskList gives back our masks (to its 8-bit step),
  SEGSPaste pastes each SEG's pixels exactly where our masks say, and after Impact's
  own SEG rebuilding (DilateMaskInSEGS by 0, SEGSOrderedFilter) SEGSToFaces returns our
  mask pixels unchanged.
- SEGS -> FACES: SEGS that Impact's MaskToSEGS made from face boxes of another detector
  (OpenCV's Haar cascade) become FACES with mesh, keypoints and embeddings, which
  MMFControlMaps then draws from, without detecting again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.support.face_scenes import group6

PEERS = os.environ.get("MAGICID_PEERS_DIR", "")
IMPACT_DIR = Path(PEERS) / "ComfyUI-Impact-Pack"
pytestmark = pytest.mark.skipif(
    not (PEERS and (IMPACT_DIR / "__init__.py").is_file()),
    reason="MAGICID_PEERS_DIR is not set to a folder holding ComfyUI-Impact-Pack: the SEGS bridge is "
           "tested against the real Impact Pack only")


IMPACT_NODES = {  # the names Impact registers -> its classes in modules/impact/segs_nodes.py
    "SEGSToMaskList": "SEGSToMaskList", "SegsToCombinedMask": "SegsToCombinedMask", "SEGSPaste": "SEGSPaste",
    "DilateMaskInSEGS": "DilateMaskInSEGS", "ImpactSEGSOrderedFilter": "SEGSOrderedFilter", "MaskToSEGS": "MaskToSEGS",
}


@pytest.fixture(scope="module")
def impact(comfy_nodes):
    """This pack's and Impact Pack's SEGS node classes, by the names the app knows them by."""
    import server

    if getattr(server.PromptServer, "instance", None) is None:  # Impact registers HTTP routes on import
        server.PromptServer(asyncio.new_event_loop())
    sys.path.append(str(IMPACT_DIR / "modules"))
    from impact import segs_nodes

    return {**comfy_nodes.NODE_CLASS_MAPPINGS,
            **{name: getattr(segs_nodes, cls) for name, cls in IMPACT_NODES.items()}}


def call(mappings, node_type, **inputs):
    """A node's outputs, as ComfyUI takes them (the "result" of a node that also returns "ui")."""
    cls = mappings[node_type]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


@pytest.fixture(scope="module")
def photo():
    image, _ = group6(2)
    return torch.from_numpy(image.astype(np.float32) / 255)[None]


@pytest.fixture(scope="module")
def detected(impact, photo):
    faces, face_masks, _, _ = call(impact, "FaceDetectMasks", image=photo, backend="auto", min_face_px=32,
                                   mask_mode="face", dilation_px=4, feather_px=8, max_faces=0,
                                   order="left_to_right", error_if_no_face=True, identity_backend="dlib",
                                   skeletons=False)
    assert len(faces[0].faces) >= 4
    return faces, face_masks


def test_impact_reads_our_masks_back(impact, detected):
    faces, face_masks = detected
    (segs,) = call(impact, "FacesToSEGS", faces=faces, crop_factor=1.5, label="face")
    (masks,) = call(impact, "SEGSToMaskList", segs=segs)
    assert len(masks) == len(faces[0].faces)
    for ours, theirs in zip(face_masks, masks):
        # Impact stores each mask as 8-bit (floor(m * 255)), so ours come back to that step
        expected = torch.floor(ours * 255).to(torch.uint8) / 255.0
        assert theirs.shape == (1, *ours.shape)
        assert torch.equal(theirs[0], expected.to(torch.float32))
        assert float((theirs[0] - ours).abs().max()) < 1 / 255
    (combined,) = call(impact, "SegsToCombinedMask", segs=segs)
    assert float((combined - face_masks.max(dim=0).values).abs().max()) < 1 / 255


def test_segs_paste_puts_each_face_where_its_mask_is(impact, detected, photo):
    faces, face_masks = detected
    edited = 1.0 - photo  # what a detailer would hand back: every face changed
    (segs,) = call(impact, "FacesToSEGS", faces=faces, crop_factor=2.0, label="face", image=edited)
    (pasted,) = call(impact, "SEGSPaste", image=photo, segs=segs, feather=0, alpha=255)
    union = face_masks.max(dim=0).values[None, ..., None]  # masks are exclusive: the union is their sum
    expected = photo * (1 - union) + edited * union
    assert float((pasted - expected).abs().max()) < 1e-5
    outside = union[0, ..., 0] == 0
    assert torch.equal(pasted[0][outside], photo[0][outside])  # untouched outside the faces


def test_round_trip_through_impact_keeps_our_mask_pixels(impact, detected, photo):
    faces, face_masks = detected
    (segs,) = call(impact, "FacesToSEGS", faces=faces, crop_factor=3.0, label="face")
    (rebuilt,) = call(impact, "DilateMaskInSEGS", segs=segs, dilation=0)  # Impact's own SEG class
    ordered, _ = call(impact, "ImpactSEGSOrderedFilter", segs=rebuilt, target="x1", order=False,
                      take_start=0, take_count=len(segs[1]))
    from impact.core import SEG as IMPACT_SEG

    assert all(type(seg) is IMPACT_SEG for seg in ordered[1])  # no longer our namedtuple
    (back,) = call(impact, "SEGSToFaces", image=photo, segs=ordered, masks="keep SEGS masks", dilation_px=4,
                   feather_px=8, identity_backend="dlib", skeletons=False)
    assert len(back[0].faces) == len(faces[0].faces)
    # Impact's filter orders by x1, ours by the box centre: two faces may swap, so pair them by box
    by_box = {tuple(f.box.tolist()): (f, m) for f, m in zip(faces[0].faces, face_masks)}
    for after in back[0].faces:
        before, mask = by_box[tuple(after.box.tolist())]
        assert np.array_equal(after.full_mask(*mask.shape), mask.numpy())
        assert float(after.embedding @ before.embedding) > 0.999


def test_faces_from_impacts_segs_are_analysed(impact, photo):
    """Boxes of another detector (dlib's HOG called directly, upsampled once; OpenCV 5's headless
    wheel no longer ships Haar cascades) -> a box mask -> Impact's MaskToSEGS -> SEGSToFaces -> MMF maps."""
    import dlib

    rgb = (photo[0].numpy() * 255).astype(np.uint8)
    boxes = [(r.left(), r.top(), r.width(), r.height()) for r in dlib.get_frontal_face_detector()(rgb, 1)]
    assert len(boxes) >= 3
    mask = torch.zeros(photo.shape[1:3])
    for x, y, w, h in boxes:
        mask[y:y + h, x:x + w] = 1.0
    (segs,) = call(impact, "MaskToSEGS", mask=mask[None], combined=False, crop_factor=3.0, bbox_fill=False,
                   drop_size=10, contour_fill=False)
    assert len(segs[1]) == len(boxes)
    (faces,) = call(impact, "SEGSToFaces", image=photo, segs=segs, masks="face", dilation_px=4, feather_px=8,
                    identity_backend="dlib", skeletons=False)
    found = faces[0].faces
    assert len(found) == len(boxes)
    for face, seg in zip(found, segs[1]):
        x1, y1, x2, y2 = seg.bbox
        # every landmark backend fills the 68-point layout (the mesh too, when mediapipe is there)
        assert face.landmarks68 is not None and face.embedding is not None and face.mask.sum() > 0
        cx, cy = face.landmarks68.mean(axis=0)
        assert x1 <= cx <= x2 and y1 <= cy <= y2
    masks = np.stack([f.full_mask(faces[0].height, faces[0].width) for f in found])
    assert ((masks > 0).sum(axis=0) <= 1).all()  # our exclusive masks
    maps = call(impact, "MMFControlMaps", faces=faces, min_confidence=0.3, stick_scale=1)
    landmark_map = maps[1] if isinstance(maps, tuple) else maps["result"][1]
    assert float(landmark_map.max()) > 0  # the landmarks drawn, from Impact's faces
