"""Where ComfyUI keeps the model files this pack reads (resolved through ``folder_paths``): the
insightface models of the identity backends and the adapter files of MagicIDAdapterLoader."""

from __future__ import annotations

import os

from ...magicid_core.insightface.packs import default_models_roots


def insightface_roots() -> list[str]:
    """The folders that may hold insightface packs: any registered ``insightface`` paths (from
    extra_model_paths.yaml or another pack), ``models/insightface``, then ``$MAGICID_INSIGHTFACE_DIR``.

    Under each, ``find_pack`` looks in every layout users have (``models/<pack>``, insightface's own,
    ``<pack>``, ``<pack>/<pack>``), so a folder registered with or without its ``models/`` level works.
    """
    import folder_paths  # ComfyUI's module; only the node layer may touch it

    roots = []
    if "insightface" in folder_paths.folder_names_and_paths:
        roots.extend(folder_paths.get_folder_paths("insightface"))
    roots.append(os.path.join(folder_paths.models_dir, "insightface"))
    roots.extend(str(p) for p in default_models_roots())
    return list(dict.fromkeys(roots))   # each once, in that order


# the folders peer packs use, under ComfyUI/models: IP-Adapter FaceID, InstantID, PuLID-Flux
ADAPTER_FOLDERS = ("ipadapter", "instantid", "pulid")


def register_adapter_folders() -> None:
    """Make models/ipadapter, models/instantid and models/pulid known to folder_paths (if no other pack did)."""
    import folder_paths

    for name in ADAPTER_FOLDERS:
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = (
                [os.path.join(folder_paths.models_dir, name)], folder_paths.supported_pt_extensions)


def adapter_choices() -> list[str]:
    """Every adapter file, as "<folder>/<file name>"."""
    import folder_paths

    register_adapter_folders()
    return [f"{folder}/{name}" for folder in ADAPTER_FOLDERS for name in folder_paths.get_filename_list(folder)]


def adapter_path(adapter_file: str) -> str:
    """The full path of an adapter_choices() entry; a clear error when it is not there."""
    import folder_paths

    register_adapter_folders()
    folder, _, name = adapter_file.partition("/")
    if folder not in ADAPTER_FOLDERS or not name:
        raise ValueError(f"{adapter_file!r}: pick a file from models/ipadapter, models/instantid or models/pulid")
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise FileNotFoundError(f"{name} is not in models/{folder}: put ip-adapter-faceid_sd15.bin / "
                                "ip-adapter-faceid_sdxl.bin into models/ipadapter, InstantID's "
                                "ip-adapter.bin into models/instantid, or pulid_flux_v0.9.1.safetensors "
                                "into models/pulid")
    return path
