"""MMF control: draw the skeleton / landmark maps from FACES, apply them with stock ControlNets.

MMF (multi-mode fusion) = body skeletons + face landmarks as two ControlNets, each masked to
its region (host/masked_controlnet.py). Words: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

import torch

from ..magicid_core import validate
from ..magicid_core.faces.control_maps import SCHEDULES, mmf_maps, mmf_schedule

from .common import CATEGORY, FACES, numpy_to_masks


class MMFControlMaps:
    DESCRIPTION = ("Draws the control maps of MMF (multi-mode fusion) from FACES: OpenPose body skeletons, "
                   "MediaPipe-face landmarks, InstantID keypoints, the skeleton and landmarks fused, and where "
                   "each may act (person and face masks). Feed them to MMFControlApply.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "faces": (FACES, {"tooltip": "Faces from FaceDetectMasks (with skeletons and face mesh)."}),
            "min_confidence": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01,
                                         "tooltip": "Skeleton keypoints at or below this confidence (pose "
                                                    "visibility) are left out; 0 keeps every found point."}),
            "stick_scale": ("INT", {"default": 1, "min": 1, "max": 7,
                                    "tooltip": "Limb thickness multiplier (xinsir's SDXL OpenPose ControlNet "
                                               "reads thicker limbs)."}),
        }}

    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "IMAGE", "MASK", "MASK")
    RETURN_NAMES = ("skeleton_map", "landmark_map", "kps_map", "fused_map", "person_mask", "face_mask")
    OUTPUT_TOOLTIPS = (
        "OpenPose COCO-18 body skeleton, for OpenPose ControlNets.",
        "MediaPipe-face landmark contours, for MediaPipe-face ControlNets.",
        "InstantID's 5-keypoint map.",
        "Skeleton with the landmarks drawn over it.",
        "Where the people are (each skeleton's hull, grown): the skeleton control's region.",
        "The faces' masks: the landmark control's region.",
    )
    FUNCTION = "draw"
    CATEGORY = f"{CATEGORY}/control"

    def draw(self, faces, min_confidence, stick_scale):
        maps = mmf_maps(faces, min_confidence, stick_scale)
        h, w = maps["face_mask"].shape[1:]
        # The maps are IMAGE batches already (float32 0..1): shared with torch, not copied.
        return (*(torch.from_numpy(maps[k]) for k in ("skeleton", "landmarks", "kps", "fused")),
                numpy_to_masks(maps["person_mask"], h, w), numpy_to_masks(maps["face_mask"], h, w))


class MMFControlApply:

    @classmethod
    def INPUT_TYPES(cls):
        strength = {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}
        percent = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "skeleton_strength": ("FLOAT", {**strength, "tooltip": "Strength of the skeleton ControlNet."}),
                "face_strength": ("FLOAT", {**strength,
                                            "tooltip": "Strength of the face (landmark or keypoint) ControlNet."}),
                "start_percent": ("FLOAT", {**percent, "default": 0.0, "tooltip": "When the controls start acting."}),
                "end_percent": ("FLOAT", {**percent, "default": 1.0, "tooltip": "When the controls stop acting."}),
                "schedule": (list(SCHEDULES), {"tooltip": "together: both over start..end. skeleton_then_face: the "
                                                           "skeleton until switch_percent, then the face landmarks."}),
                "switch_percent": ("FLOAT", {**percent, "default": 0.5,
                                             "tooltip": "Where skeleton_then_face hands over from skeleton to face."}),
            },
            "optional": {
                "skeleton_control_net": ("CONTROL_NET", {"tooltip": "An OpenPose ControlNet (ControlNetLoader)."}),
                "skeleton_map": ("IMAGE", {"tooltip": "skeleton_map (or fused_map) from MMFControlMaps."}),
                "person_mask": ("MASK", {"tooltip": "Where the skeleton control may act, one mask per image; "
                                                    "everywhere when not connected."}),
                "face_control_net": ("CONTROL_NET", {"tooltip": "A MediaPipe-face (or keypoint) ControlNet."}),
                "face_map": ("IMAGE", {"tooltip": "landmark_map or kps_map from MMFControlMaps."}),
                "face_mask": ("MASK", {"tooltip": "Where the face control may act, one mask per image (e.g. "
                                                  "FaceDetectMasks' union_mask); everywhere when not connected."}),
                "vae": ("VAE", {"tooltip": "Only for ControlNets that need one (as in Apply ControlNet)."}),
            },
        }

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = f"{CATEGORY}/control"
    DESCRIPTION = ("Applies MMF's skeleton and face maps with stock ControlNets, each acting only inside its "
                   "mask (its residuals are masked). A control that is not connected, has strength 0, a black "
                   "map, an empty mask or an empty range is left out.")

    def apply(self, positive, negative, skeleton_strength, face_strength, start_percent, end_percent, schedule,
              switch_percent, skeleton_control_net=None, skeleton_map=None, person_mask=None,
              face_control_net=None, face_map=None, face_mask=None, vae=None):
        from .host.masked_controlnet import apply_control

        ranges = mmf_schedule(schedule, start_percent, end_percent, switch_percent)
        skeleton_strength = validate.number("skeleton_strength", skeleton_strength, 0.0, 10.0)
        face_strength = validate.number("face_strength", face_strength, 0.0, 10.0)
        controls = (("skeleton", skeleton_control_net, skeleton_map, person_mask, skeleton_strength),
                    ("face", face_control_net, face_map, face_mask, face_strength))
        for name, control_net, image, mask, strength in controls:
            if _acts(name, control_net, image, mask, strength, ranges[name]):
                positive, negative = apply_control(positive, negative, control_net, image, strength, ranges[name],
                                                   mask=None if mask is None else _as_batch(mask), vae=vae)
        return positive, negative


MASK_OF = {"skeleton": "person_mask", "face": "face_mask"}   # each control's mask input


def _acts(name, control_net, image, mask, strength, percent_range) -> bool:
    """A control is applied only when it is wired up and could change anything; a map or mask
    that cannot be used (NaN, empty, another shape, one per face) is an error, never a silent skip."""
    if (control_net is None) != (image is None):
        missing = f"{name}_map" if image is None else f"{name}_control_net"
        raise ValueError(f"MMFControlApply: connect {missing} too, or neither (the {name} control needs both)")
    if image is not None:
        image = validate.image(f"{name}_map", image)
    if mask is not None:
        mask = validate.mask(MASK_OF[name], mask)
        _check_mask_fits(mask, image, name)
    if control_net is None or strength == 0 or percent_range[0] >= percent_range[1]:
        return False
    if not image.max() > 0:          # a black map: no skeleton / no face was drawn
        return False
    return mask is None or bool(mask.max() > 0)


def _check_mask_fits(mask: torch.Tensor, image: torch.Tensor | None, name: str) -> None:
    """One mask per map (or one for all), of the map's aspect: it is resized onto the map, never stretched."""
    if image is None:
        return
    mask_name = MASK_OF[name]
    validate.batch_matches(mask_name, len(mask), f"{name}_map", len(image),
                           what_to_do="one mask per image: MMFControlMaps' masks or FaceDetectMasks' union_mask, "
                                      "not one per face")
    validate.same_aspect(mask_name, tuple(mask.shape[1:]), f"{name}_map", tuple(image.shape[1:3]))


def _as_batch(mask: torch.Tensor) -> torch.Tensor:
    return mask[None] if mask.ndim == 2 else mask
