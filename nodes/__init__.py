"""ComfyUI node classes: thin wrappers that turn ComfyUI values into magicid_core calls.

This package is the only code of the pack that imports ``comfy``, and it does so
lazily inside the nodes, so importing it needs no host. Each module holds the node
classes of one step; ``host/`` holds what knows ComfyUI's internals (the attn2 patch
protocol, UNet layers, the sampler shim, the masked ControlNet, model folders).
Map and glossary: docs/ARCHITECTURE.md.
"""

from .ddim_invert import DDIMInvert
from .eva_clip_loader import MagicIDEvaClipLoader
from .face_detect import FaceDetectMasks
from .id_restore import IDRestore
from .id_similarity import IDSimilarity
from .identity import IdentityFromEmbedding, IdentityFromImages
from .kin_blend import KinIDBlend
from .mmf_control import MMFControlApply, MMFControlMaps
from .multi_id_apply import MagicIDAdapterLoader, MultiIDApply
from .person_prompt import PersonPrompt
from .segs_bridge import FacesToSEGS, SEGSToFaces

# name -> (class, display name); one line per node, grouped by step.
_NODES = {
    "FaceDetectMasks": (FaceDetectMasks, "Face Detect + Masks (MagicID)"),
    "FacesToSEGS": (FacesToSEGS, "Faces to SEGS (MagicID, for Impact Pack)"),
    "SEGSToFaces": (SEGSToFaces, "SEGS to Faces (MagicID, from Impact Pack)"),
    "IdentityFromImages": (IdentityFromImages, "Identity From Images (MagicID)"),
    "IdentityFromEmbedding": (IdentityFromEmbedding, "Identity From Embedding (MagicID, insightface)"),
    "MagicIDAdapterLoader": (MagicIDAdapterLoader, "MagicID Adapter Loader"),
    "MagicIDEvaClipLoader": (MagicIDEvaClipLoader, "MagicID EVA-CLIP Loader"),
    "PersonPrompt": (PersonPrompt, "Person Prompt (MagicID)"),
    "MultiIDApply": (MultiIDApply, "Multi-ID Apply (MGMICA)"),
    "DDIMInvert": (DDIMInvert, "DDIM Invert (exact)"),
    "MMFControlMaps": (MMFControlMaps, "MMF Control Maps (MagicID)"),
    "MMFControlApply": (MMFControlApply, "MMF Control Apply, masked (MagicID)"),
    "KinIDBlend": (KinIDBlend, "Kin ID Blend (MagicID)"),
    "IDSimilarity": (IDSimilarity, "ID Similarity (MagicID)"),
    "IDRestore": (IDRestore, "ID Restore (MagicID)"),
}

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in _NODES.items()}
