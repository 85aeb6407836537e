"""FaceDetectMasks: every face of an image batch, with per-face masks, union mask and preview.

Its FACES output is the record every later node reads (docs/ARCHITECTURE.md: data flow, glossary).
"""

from __future__ import annotations

import numpy as np

from ..magicid_core import validate
from ..magicid_core.analyze import FALLBACK_NOTE_START, ORDERS, AnalysisSettings, analyze_batch
from ..magicid_core.faces.detection import BACKENDS, DEFAULT_MIN_FACE
from ..magicid_core.identity.embedders import BACKENDS as IDENTITY_BACKENDS
from ..magicid_core.image_io import to_rgb_uint8
from ..magicid_core.faces.masks import MASK_MODES
from ..magicid_core.faces.preview import draw_label, draw_preview

from .common import CATEGORY, FACES, images_to_numpy, numpy_to_images, numpy_to_masks
from .host.ui import faces_ui
from .host.folders import insightface_roots
from .host.progress import comfy_progress

NO_IDENTITY = "none"
# Drawn on the preview when auto could not use insightface; the node's note and the log say where it looked.
FALLBACK_LABEL = "no insightface pack found: auto used dlib / mediapipe (see the note and the log)"


class FaceDetectMasks:
    DESCRIPTION = ("Finds every face (small ones in group photos too), with dense landmarks (insightface 106, "
                   "mediapipe mesh or dlib 68 points), 5 keypoints and a mask per face. Masks never overlap. The "
                   "FACES output feeds every later MagicID node.")
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
                        "auto: the best installed: insightface (models found), else mediapipe (tiled, finds small "
                        "faces), else dlib_hog (installs everywhere, frontal faces). dlib_cnn: dlib's CNN "
                        "detector (turned faces too, slow on CPU)."}),
            "min_face_px": ("INT", {"default": int(DEFAULT_MIN_FACE), "min": 8, "max": 4096, "tooltip":
                            "Smallest face to look for, in pixels of the image. Lower finds smaller faces "
                            "but costs time (each halving about doubles it)."}),
            "mask_mode": (list(MASK_MODES), {"default": "face", "tooltip":
                          "face: the face outline from the landmarks. head: grown to take in hair. box: the box."}),
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
                                 "(insightface pack in ComfyUI/models/insightface/models/antelopev2 or buffalo_l), dlib (offline), auto (arcface "
                                 "when its files exist), none. Use the same as IdentityFromImages."}),
            "skeletons": ("BOOLEAN", {"default": True, "tooltip":
                          "A COCO-18 body skeleton per person, for OpenPose control maps: from pose_keypoint when "
                          "connected, else mediapipe Pose where installed, else head-only (the node says so)."}),
            "pose_keypoint": ("POSE_KEYPOINT", {"tooltip":
                              "Body skeletons from controlnet_aux's DWPose / OpenPose preprocessor, matched to the "
                              "faces by position. Faces no person matches keep a head-only skeleton."}),
        }}

    def detect(self, image, backend, min_face_px, mask_mode, dilation_px, feather_px, max_faces, order,
               error_if_no_face, identity_backend="auto", skeletons=True, pose_keypoint=None):
        arrays = images_to_numpy(validate.image("image", image))
        settings = AnalysisSettings(backend=backend, min_face=min_face_px, mask_mode=mask_mode,
                                    dilation=dilation_px, feather=feather_px, max_faces=max_faces, order=order,
                                    skeletons=skeletons, embeddings=identity_backend != NO_IDENTITY,
                                    identity_backend="auto" if identity_backend == NO_IDENTITY else identity_backend,
                                    insightface_roots=tuple(insightface_roots()))
        faces = analyze_batch(arrays, settings, progress=comfy_progress(len(arrays)), pose_keypoint=pose_keypoint)
        missing = [i for i, im in enumerate(faces.images) if not im.faces]
        if error_if_no_face and missing:
            raise ValueError(f"FaceDetectMasks: no face found in image(s) {missing} of the batch. Lower "
                             f"min_face_px (now {min_face_px}), try another backend, or turn off error_if_no_face.")
        h, w = faces.images[0].height, faces.images[0].width
        face_masks = np.concatenate([im.masks() for im in faces.images]) if faces.face_count else np.zeros((0, h, w))
        union = np.stack([im.union_mask() for im in faces.images])
        previews = [draw_preview(to_rgb_uint8(a), im) for a, im in zip(arrays, faces.images)]
        if any(note.startswith(FALLBACK_NOTE_START) for note in faces.notes):
            previews = [draw_label(p, FALLBACK_LABEL) for p in previews]
        # ui: the previews shown on the node, and the boxes web/magicid.js numbers over them
        return {"ui": {**faces_ui(faces, previews), "magicid_notes": faces.notes},
                "result": (faces, numpy_to_masks(face_masks, h, w), numpy_to_masks(union, h, w),
                           numpy_to_images(previews))}
