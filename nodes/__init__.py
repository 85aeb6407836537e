"""ComfyUI node classes: thin wrappers that turn ComfyUI values into magicid_core calls.

This package is the only code of the pack that imports ``comfy``, and it does so
lazily inside the nodes, so importing it needs no host. Each module holds one step.
"""

from .id_restore import IDRestore

# name -> (class, display name); one line per node, grouped by step.
_NODES = {
    "IDRestore": (IDRestore, "ID Restore (MagicID)"),
}

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in _NODES.items()}
