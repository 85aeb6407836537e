"""IDRestore inside a real ComfyUI with a tiny real UNet and VAE: the background keeps its bits."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data
import torch

from magicid_core import crops
from magicid_core.faces import Face, FaceSet, ImageFaces
from magicid_core.restore import RestoreSettings, box_ellipse_mask, plan_faces
from tiny_models import text_conditioning, tiny_sd15_model, tiny_vae

H, W = 150, 203          # not multiples of 8
BOXES = [(66, 14, 104, 57), (0, 100, 30, 150)]   # the astronaut's face, and one at the corner


def picture_and_faces():
    image = cv2.resize(skimage.data.astronaut(), (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    faces = []
    for i, box in enumerate(BOXES):
        box = np.asarray(box, np.float32)
        mask = crops.feather(box_ellipse_mask(box, (H, W)), 2)
        faces.append(Face(index=i, box=box, score=0.99, keypoints=np.zeros((5, 2), np.float32),
                          head_box=box.copy(), mask=mask))
    return image, FaceSet([ImageFaces(H, W, faces)])


def run_node(comfy_nodes, image, faces, strength):
    node = comfy_nodes.NODE_CLASS_MAPPINGS["IDRestore"]()
    kwargs = dict(image=torch.from_numpy(image)[None], faces=faces, model=tiny_sd15_model(), vae=tiny_vae(),
                  positive=text_conditioning(1), negative=text_conditioning(2), steps=6, strength=strength,
                  cfg=3.0, scheduler="karras", zoom_size=256, context=0.4, feather=3, inversion_refine=1,
                  face_indices="all")
    return getattr(node, node.FUNCTION)(**kwargs)


def test_background_is_bit_identical_through_the_node(comfy_nodes):
    image, faces = picture_and_faces()
    out, preview, report = run_node(comfy_nodes, image, faces, strength=0.5)
    out = out[0].numpy()
    assert out.shape == image.shape and np.isfinite(out).all()
    settings = RestoreSettings(zoom_size=256, context=0.4, feather=3)
    masks = [job.mask for job in plan_faces([image], faces, settings)[0]]
    outside = np.max(masks, axis=0) == 0
    assert np.array_equal(out[outside], image[outside])
    assert np.abs(out[~outside] - image[~outside]).mean() > 1e-3     # the faces were redrawn
    assert preview.shape == (2, 256, 512, 3)
    assert report.count("restored") == 2


def test_strength_zero_and_no_faces_pass_through(comfy_nodes):
    image, faces = picture_and_faces()
    out, _, _ = run_node(comfy_nodes, image, faces, strength=0.0)
    assert np.array_equal(out[0].numpy(), image)
    out, preview, report = run_node(comfy_nodes, image, FaceSet([ImageFaces(H, W, [])]), strength=0.5)
    assert np.array_equal(out[0].numpy(), image)
    assert "no face" in report
