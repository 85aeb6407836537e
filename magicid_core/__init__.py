"""MagicID core: the method, usable without ComfyUI.

Face analysis (detection, mesh, masks, skeletons, identity), DDIM inversion,
mask-guided multi-identity attention and identity restoration. Nothing here
imports ``comfy``; the ComfyUI node layer in ``nodes/`` drives these functions.
"""

from .faces import Detection, Face, FaceSet, Identity, ImageFaces

__all__ = ["Detection", "Face", "FaceSet", "Identity", "ImageFaces"]
__version__ = "0.1.0"
