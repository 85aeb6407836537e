"""FACES made straight from masks (box = the mask's bounding box), for tests that place identities or
words on known regions without running a detector."""

from __future__ import annotations

import numpy as np

from magicid_core.faces.records import Face, FaceSet, ImageFaces


def faces_from_masks(masks) -> FaceSet:
    """One picture whose face i covers masks[i] (all masks of the picture's size)."""
    faces = []
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32), head_box=box,
                          mask=mask.astype(np.float32)))
    height, width = np.shape(masks[0])
    return FaceSet([ImageFaces(height, width, faces)])
