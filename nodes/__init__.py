"""ComfyUI node classes: thin wrappers that turn ComfyUI values into magicid_core calls.

This package is the only code of the pack that imports ``comfy``, and it does so
lazily inside the nodes, so importing it needs no host. Each module holds one step.
"""

from .kin_blend import KinIDBlend
from .mmf_control import MMFControlApply, MMFControlMaps

# name -> (class, display name); one line per node, grouped by step.
_NODES = {
    "MMFControlMaps": (MMFControlMaps, "MMF Control Maps (MagicID)"),
    "MMFControlApply": (MMFControlApply, "MMF Control Apply, masked (MagicID)"),
    "KinIDBlend": (KinIDBlend, "Kin ID Blend (MagicID)"),
}

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in _NODES.items()}
