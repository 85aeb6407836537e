"""Where ComfyUI keeps the model files this pack reads (resolved through ``folder_paths``): the
insightface models of the identity backends, the adapter files of MagicIDAdapterLoader, and the EVA-CLIP
and face parser of PuLID-Flux identities."""

from __future__ import annotations

import os

from ...magicid_core.identity.eva_clip import missing_eva_clip_message
from ...magicid_core.identity.face_parsing import PARSING_FILE, missing_parser_message
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


# ComfyUI's text_encoders folder list holds models/text_encoders and models/clip (its legacy name), where
# lldacing's PuLID-Flux loader looks for EVA02_CLIP_L_336_psz14_s6B.pt
EVA_CLIP_FOLDER = "text_encoders"
FACEXLIB_FOLDER = "facexlib"        # models/facexlib: facexlib's weights, as the PuLID packs register it


def eva_clip_choices() -> list[str]:
    """Every file in models/clip and models/text_encoders (and their extra_model_paths.yaml folders)."""
    import folder_paths

    return folder_paths.get_filename_list(EVA_CLIP_FOLDER)


def eva_clip_path(name: str) -> str | None:
    import folder_paths

    return folder_paths.get_full_path(EVA_CLIP_FOLDER, name)


def missing_eva_clip(name: str) -> str:
    """Why ``name`` cannot be read: the file to get and the folders it goes into."""
    import folder_paths

    return f"{name} is not there. " + missing_eva_clip_message(folder_paths.get_folder_paths(EVA_CLIP_FOLDER))


def register_facexlib_folder() -> None:
    """models/facexlib, known to folder_paths as the PuLID packs register it (if none did)."""
    import folder_paths

    if FACEXLIB_FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FACEXLIB_FOLDER] = (
            [os.path.join(folder_paths.models_dir, FACEXLIB_FOLDER)], folder_paths.supported_pt_extensions)


def face_parser_path() -> str:
    """parsing_bisenet.pth in models/facexlib (or a registered facexlib folder); a clear error without it."""
    import folder_paths

    register_facexlib_folder()
    path = folder_paths.get_full_path(FACEXLIB_FOLDER, PARSING_FILE)
    if path is None:
        raise FileNotFoundError(missing_parser_message(folder_paths.get_folder_paths(FACEXLIB_FOLDER)))
    return path
