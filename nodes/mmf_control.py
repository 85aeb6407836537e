"""MMF control: draw the skeleton / landmark maps from FACES, apply them with stock ControlNets."""

from __future__ import annotations

import torch

from ..magicid_core.faces.control_maps import SCHEDULES, mmf_maps, mmf_schedule

from .common import CATEGORY, FACES, numpy_to_images, numpy_to_masks


class MMFControlMaps:
    """FACES -> OpenPose skeleton, MediaPipe-face landmarks, InstantID keypoints, fused map, and their masks."""

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
    CATEGORY = CATEGORY + "/control"

    def draw(self, faces, min_confidence, stick_scale):
        maps = mmf_maps(faces, min_confidence, stick_scale)
        h, w = maps["face_mask"].shape[1:]
        return (*(numpy_to_images(list(maps[k])) for k in ("skeleton", "landmarks", "kps", "fused")),
                numpy_to_masks(maps["person_mask"], h, w), numpy_to_masks(maps["face_mask"], h, w))


class MMFControlApply:
    """Apply the skeleton and face maps with stock ControlNets, each only inside its mask."""

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
    CATEGORY = CATEGORY + "/control"
    DESCRIPTION = ("Each control acts only inside its mask (its residuals are masked). A control that is not "
                   "connected, has strength 0, a black map, an empty mask or an empty range is left out.")

    def apply(self, positive, negative, skeleton_strength, face_strength, start_percent, end_percent, schedule,
              switch_percent, skeleton_control_net=None, skeleton_map=None, person_mask=None,
              face_control_net=None, face_map=None, face_mask=None, vae=None):
        from .masked_controlnet import apply_control

        ranges = mmf_schedule(schedule, start_percent, end_percent, switch_percent)
        controls = (("skeleton", skeleton_control_net, skeleton_map, person_mask, skeleton_strength),
                    ("face", face_control_net, face_map, face_mask, face_strength))
        for name, control_net, image, mask, strength in controls:
            if _acts(name, control_net, image, mask, strength, ranges[name]):
                positive, negative = apply_control(positive, negative, control_net, image, strength, ranges[name],
                                                   mask=None if mask is None else _as_batch(mask), vae=vae)
        return positive, negative


def _acts(name, control_net, image, mask, strength, percent_range) -> bool:
    """A control is applied only when it is wired up and could change anything."""
    if (control_net is None) != (image is None):
        missing = f"{name}_map" if image is None else f"{name}_control_net"
        raise ValueError(f"MMFControlApply: connect {missing} too, or neither (the {name} control needs both)")
    if control_net is None or strength == 0 or percent_range[0] >= percent_range[1]:
        return False
    if not image.max() > 0:          # a black map: no skeleton / no face was drawn
        return False
    if mask is None:
        return True
    if len(_as_batch(mask)) not in (1, len(image)):
        raise ValueError(f"MMFControlApply: {len(_as_batch(mask))} masks for {len(image)} {name} map(s); give one "
                         "mask per image (MMFControlMaps' masks, or FaceDetectMasks' union_mask), not one per face")
    return bool(mask.max() > 0)


def _as_batch(mask: torch.Tensor) -> torch.Tensor:
    return mask[None] if mask.ndim == 2 else mask
