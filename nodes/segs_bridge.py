"""FacesToSEGS and SEGSToFaces: the bridge to Impact Pack's detailers and detectors.

SEGS is Impact Pack's type; magicid_core.segs makes and reads it without Impact Pack, so
these nodes work whether or not it is installed (SEGS only has a use when it is).
"""

from __future__ import annotations

from ..magicid_core.analyze import AnalysisSettings, log_once
from ..magicid_core.faces.records import FaceSet
from ..magicid_core.identity.embedders import BACKENDS as IDENTITY_BACKENDS
from ..magicid_core.faces.masks import MASK_MODES
from ..magicid_core.segs import FACE_LABEL, faces_to_segs, segs_to_faces

from .common import CATEGORY, FACES, images_to_numpy
from .host.folders import insightface_roots

SEGS = "SEGS"  # Impact Pack's type name
KEEP = "keep SEGS masks"


def _one_image(image, node: str):
    arrays = images_to_numpy(image)
    if len(arrays) != 1:
        raise ValueError(f"{node}: SEGS describe one image, but the IMAGE batch holds {len(arrays)}; "
                         "split the batch first (e.g. ImageFromBatch)")
    return arrays[0]


class FacesToSEGS:
    DESCRIPTION = ("MagicID's faces as Impact Pack SEGS: one SEG per face with its own exclusive, feathered mask "
                   "at crop size, the face box, the detector's confidence and the label, for Impact's "
                   "detailers and SEGS nodes.")
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "convert"
    RETURN_TYPES = (SEGS,)
    RETURN_NAMES = ("segs",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "faces": (FACES, {"tooltip": "From FaceDetectMasks (one image)."}),
            "crop_factor": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 100.0, "step": 0.1, "tooltip":
                            "Crop region = the face box this many times larger (as Impact's detectors), grown "
                            "further where the face's mask reaches beyond it."}),
            "label": ("STRING", {"default": FACE_LABEL, "tooltip": "The label of every SEG."}),
        }, "optional": {
            "image": ("IMAGE", {"tooltip": "The analysed image: each SEG then carries its crop's pixels "
                                           "(what SEGSPaste pastes when it has no ref_image_opt)."}),
        }}

    def convert(self, faces: FaceSet, crop_factor, label, image=None):
        if len(faces) != 1:
            raise ValueError(f"FacesToSEGS: SEGS describe one image, but faces holds {len(faces)} images; "
                             "run FaceDetectMasks on one image")
        pixels = None if image is None else _one_image(image, "FacesToSEGS")
        return (faces_to_segs(faces[0], pixels, crop_factor, label),)


class SEGSToFaces:
    DESCRIPTION = ("Impact Pack SEGS (from any of its detectors) as MagicID faces: each SEG's box is analysed "
                   "(face mesh, keypoints, skeleton, identity embedding) without detecting again, so later "
                   "MagicID nodes work on the faces Impact found.")
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "convert"
    RETURN_TYPES = (FACES,)
    RETURN_NAMES = ("faces",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The image the SEGS were detected in."}),
            "segs": (SEGS, {"tooltip": "From an Impact Pack detector; face i is SEG i."}),
            "masks": ([KEEP] + list(MASK_MODES), {"default": KEEP, "tooltip":
                      "keep SEGS masks: each face keeps its SEG's mask as it is. face / head / box: MagicID's "
                      "exclusive masks from the mesh instead (no two faces share a pixel)."}),
            "dilation_px": ("INT", {"default": 4, "min": -128, "max": 512, "tooltip":
                            "For MagicID's masks: grow (or shrink) each by this many pixels."}),
            "feather_px": ("INT", {"default": 8, "min": 0, "max": 512, "tooltip":
                           "For MagicID's masks: width of the soft edge."}),
            "identity_backend": (list(IDENTITY_BACKENDS), {"default": "auto", "tooltip":
                                 "Identity embedding per face (use the same as IdentityFromImages)."}),
            "skeletons": ("BOOLEAN", {"default": True, "tooltip": "A COCO-18 body skeleton per person."}),
        }}

    def convert(self, image, segs, masks, dilation_px, feather_px, identity_backend, skeletons):
        keep = masks == KEEP
        settings = AnalysisSettings(mask_mode="face" if keep else masks, dilation=dilation_px, feather=feather_px,
                                    skeletons=skeletons, identity_backend=identity_backend,
                                    insightface_roots=tuple(insightface_roots()))
        faces = segs_to_faces(_one_image(image, "SEGSToFaces"), segs, settings, keep_masks=keep)
        for note in faces.notes:   # e.g. that auto found no insightface pack: the log says it once
            log_once(note)
        return (FaceSet([faces]),)
