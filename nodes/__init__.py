"""ComfyUI node classes: thin wrappers that turn ComfyUI values into magicid_core calls.

This package is the only code of the pack that imports ``comfy``, and it does so
lazily inside the nodes, so importing it needs no host. Each module holds one step.
"""

# name -> (class, display name); one line per node, grouped by step.
_NODES = {}

# MMF control, kin blend, identity score
from .kin_blend import KinIDBlend  # noqa: E402
from .mmf_control import MMFControlApply, MMFControlMaps  # noqa: E402

_NODES["MMFControlMaps"] = (MMFControlMaps, "MMF Control Maps")
_NODES["MMFControlApply"] = (MMFControlApply, "MMF Control Apply (masked)")
_NODES["KinIDBlend"] = (KinIDBlend, "Kin ID Blend")

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in _NODES.items()}
