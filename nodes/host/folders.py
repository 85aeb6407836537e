"""Where ComfyUI keeps the model files this pack reads (resolved through ``folder_paths``)."""

from __future__ import annotations

import os


def insightface_roots() -> list[str]:
    """ComfyUI's insightface folders: any registered ``insightface`` paths, then ``models/insightface``."""
    import folder_paths  # ComfyUI's module; only the node layer may touch it

    roots = []
    if "insightface" in folder_paths.folder_names_and_paths:   # extra_model_paths.yaml or another pack
        roots.extend(folder_paths.get_folder_paths("insightface"))
    default = os.path.join(folder_paths.models_dir, "insightface")
    if default not in roots:
        roots.append(default)
    return roots
