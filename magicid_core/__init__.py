"""MagicID core: the method, usable without ComfyUI.

Rooms, each importing only the ones before it (``tests/test_layers.py`` checks there is no
import cycle and no ComfyUI import):

- ``image_io``, ``validate``, ``progress``: shared helpers (picture layout; checks of node inputs and of
  the short texts typed into widgets; the one progress-callback shape).
- ``faces/``: face records, detection, mesh, masks, skeletons, crops, previews, control maps.
- ``insightface/``: a sibling detector/recogniser backend (ONNX packs); imports only ``faces/``.
- ``identity/``: identity vectors, matching, scoring, kin blending, identity adapters.
- ``diffusion/``: schedules, DDIM inversion, MGMICA attention (mask-guided multi-identity
  cross-attention) and placement, DIIR restoration (DDIM-inversion identity restoration).
- ``analyze``: one call from a picture to FACES (faces/ then identity/), and ``python -m magicid_core``.
- ``segs``: FACES <-> Impact Pack's SEGS (its namedtuple, rebuilt here; SEGS boxes go through ``analyze``).

Nothing here imports ``comfy``; the ComfyUI node layer in ``nodes/`` drives these functions.
Data flow, layering, the patch protocol and a glossary (MMF, MGMICA, DIIR, ownership,
pinned): docs/ARCHITECTURE.md.
"""

from .faces import Detection, Face, FaceSet, Identity, ImageFaces

__all__ = ["Detection", "Face", "FaceSet", "Identity", "ImageFaces"]
__version__ = "0.1.0"
