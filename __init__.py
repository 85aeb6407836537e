"""MagicID for ComfyUI: identity-preserving group portraits and face restoration.

The front door only gathers the node mappings; nothing else happens at import.
"""

WEB_DIRECTORY = "./web"

# pytest imports this file bare (as "__init__", no package) when the checkout's folder name is
# not a Python name, e.g. "ComfyUI-MagicID"; only a package import (ComfyUI's loader) has nodes.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
