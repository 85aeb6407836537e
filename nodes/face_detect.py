"""FaceDetectMasks: every face of an image batch, with per-face masks, union mask and preview."""

from __future__ import annotations

import numpy as np

from ..magicid_core.analyze import ORDERS, AnalysisSettings, analyze_batch
from ..magicid_core.faces.detection import BACKENDS, DEFAULT_MIN_FACE
from ..magicid_core.identity.embedders import BACKENDS as IDENTITY_BACKENDS
from ..magicid_core.image_io import to_rgb_uint8
from ..magicid_core.faces.masks import MASK_MODES
from ..magicid_core.faces.preview import draw_preview

from .common import CATEGORY, FACES, images_to_numpy, numpy_to_images, numpy_to_masks
from .face_ui import faces_ui
from .models import insightface_roots

NO_IDENTITY = "none"


class FaceDetectMasks:
    DESCRIPTION = ("Finds every face (small ones in group photos too), with a 478-point mesh, 5 keypoints and "
                   "a mask per face. Masks never overlap. The FACES output feeds every later MagicID node.")
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "detect"
    RETURN_TYPES = (FACES, "MASK", "MASK", "IMAGE")
    RETURN_NAMES = ("faces", "face_masks", "union_mask", "preview")
    OUTPUT_TOOLTIPS = (
        "The face records of every image (box, score, keypoints, mesh, head box, mask, body skeleton, identity "
        "embedding), in the chosen order.",
        "One mask per face: image 0's faces in order, then image 1's, and so on "
        "(one empty mask when no image has a face).",
        "All faces of each image together, one mask per image.",
        "Each image with its faces' masks tinted and box, index, keypoints and mesh drawn.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "One image or a batch; gray and RGBA are fine."}),
            "backend": (list(BACKENDS), {"default": "auto", "tooltip":
                        "auto: insightface when its models are installed, else mediapipe (tiled, finds small "
                        "faces). dlib_hog: dlib's HOG detector (slower, frontal faces only)."}),
            "min_face_px": ("INT", {"default": int(DEFAULT_MIN_FACE), "min": 8, "max": 4096, "tooltip":
                            "Smallest face to look for, in pixels of the image. Lower finds smaller faces "
                            "but costs time (each halving about doubles it)."}),
            "mask_mode": (list(MASK_MODES), {"default": "face", "tooltip":
                          "face: the face outline from the mesh. head: grown to take in hair. box: the box."}),
            "dilation_px": ("INT", {"default": 4, "min": -128, "max": 512, "tooltip":
                            "Grow (or, negative, shrink) each mask by this many pixels."}),
            "feather_px": ("INT", {"default": 8, "min": 0, "max": 512, "tooltip":
                           "Width in pixels of the soft edge outside each mask."}),
            "max_faces": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip":
                          "Keep only the most confident N faces per image; 0 keeps all."}),
            "order": (list(ORDERS), {"default": "left_to_right", "tooltip":
                      "Face numbering: left to right, or largest first. The same image always gives the "
                      "same order."}),
            "error_if_no_face": ("BOOLEAN", {"default": False, "tooltip":
                                 "Stop the workflow with an error when an image has no face. Off: empty "
                                 "FACES and empty masks are passed on."}),
        }, "optional": {
            "identity_backend": (list(IDENTITY_BACKENDS) + [NO_IDENTITY], {"default": "auto", "tooltip":
                                 "Identity embedding per face, to match reference identities: arcface "
                                 "(insightface models in ComfyUI/models/insightface), dlib (offline), auto (arcface "
                                 "when its files exist), none. Use the same as IdentityFromImages."}),
            "skeletons": ("BOOLEAN", {"default": True, "tooltip":
                          "A COCO-18 body skeleton per person (mediapipe Pose), for OpenPose control maps."}),
        }}

    def detect(self, image, backend, min_face_px, mask_mode, dilation_px, feather_px, max_faces, order,
               error_if_no_face, identity_backend="auto", skeletons=True):
        import comfy.utils

        arrays = images_to_numpy(image)
        settings = AnalysisSettings(backend=backend, min_face=min_face_px, mask_mode=mask_mode,
                                    dilation=dilation_px, feather=feather_px, max_faces=max_faces, order=order,
                                    skeletons=skeletons, embeddings=identity_backend != NO_IDENTITY,
                                    identity_backend="auto" if identity_backend == NO_IDENTITY else identity_backend,
                                    insightface_roots=tuple(insightface_roots()))
        bar = comfy.utils.ProgressBar(len(arrays))
        faces = analyze_batch(arrays, settings, progress=lambda done, total: bar.update_absolute(done, total))
        missing = [i for i, im in enumerate(faces.images) if not im.faces]
        if error_if_no_face and missing:
            raise ValueError(f"FaceDetectMasks: no face found in image(s) {missing} of the batch. Lower "
                             f"min_face_px (now {min_face_px}), try another backend, or turn off error_if_no_face.")
        h, w = faces.images[0].height, faces.images[0].width
        face_masks = np.concatenate([im.masks() for im in faces.images]) if faces.face_count else np.zeros((0, h, w))
        union = np.stack([im.union_mask() for im in faces.images])
        previews = [draw_preview(to_rgb_uint8(a), im) for a, im in zip(arrays, faces.images)]
        # ui: the previews shown on the node, and the boxes web/magicid.js numbers over them
        return {"ui": faces_ui(faces, previews),
                "result": (faces, numpy_to_masks(face_masks, h, w), numpy_to_masks(union, h, w),
                           numpy_to_images(previews))}
