"""The model files the shipped workflows load: where each goes, where users get it, and the two
places that say so, the README's model table and each workflow's ``models`` metadata.

The front end reads a workflow's top-level ``models`` list ({name, url, directory}, the
ComfyUI_frontend workflow schema's ``models``): comfyui-frontend-package 1.5x matches an entry
to a loader's combo value by name and offers its url in the missing-models panel; 1.2x looks
each entry up in its ``directory``. The urls are metadata for the user; nothing downloads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFile:
    folder: str  # under ComfyUI/models
    what: str
    url: str  # the public download link the peers' READMEs give
    directory: str | None = None  # ComfyUI's name for the folder (folder_paths), where it is not ``folder``
    offered: bool = True  # in the workflows' models metadata; False: the pack finds it, no folder_paths name

    @property
    def source(self) -> str:
        """The link's short name: the Hugging Face repository, or the release file."""
        hf = re.match(r"https://huggingface\.co/([^/]+/[^/]+)/", self.url)
        return hf.group(1) if hf else self.url.rsplit("/", 1)[-1]


HF = "https://huggingface.co"
FACEID = f"{HF}/h94/IP-Adapter-FaceID/resolve/main"
CLIP_VISION_VIT_H = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
MODELS = {
    "v1-5-pruned-emaonly.safetensors": ModelFile(
        "checkpoints", "SD1.5", f"{HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly.safetensors"),
    "sd_xl_base_1.0.safetensors": ModelFile(
        "checkpoints", "SDXL base", f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"),
    "control_v11p_sd15_openpose_fp16.safetensors": ModelFile(
        "controlnet", "OpenPose ControlNet for SD1.5",
        f"{HF}/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/control_v11p_sd15_openpose_fp16.safetensors"),
    "control_v2p_sd15_mediapipe_face.safetensors": ModelFile(
        "controlnet", "MediaPipe-face ControlNet for SD1.5",
        f"{HF}/CrucibleAI/ControlNetMediaPipeFace/resolve/main/control_v2p_sd15_mediapipe_face.safetensors"),
    "OpenPoseXL2.safetensors": ModelFile(
        "controlnet", "OpenPose ControlNet for SDXL",
        f"{HF}/thibaud/controlnet-openpose-sdxl-1.0/resolve/main/OpenPoseXL2.safetensors"),
    "ip-adapter-faceid_sd15.bin": ModelFile("ipadapter", "IP-Adapter FaceID for SD1.5", f"{FACEID}/ip-adapter-faceid_sd15.bin"),
    "ip-adapter-faceid_sdxl.bin": ModelFile("ipadapter", "IP-Adapter FaceID for SDXL", f"{FACEID}/ip-adapter-faceid_sdxl.bin"),
    # IPAdapter_plus's README: "Most FaceID models require a LoRA", each paired with its own.
    "ip-adapter-faceid_sd15_lora.safetensors": ModelFile(
        "loras", "the LoRA of IP-Adapter FaceID SD1.5", f"{FACEID}/ip-adapter-faceid_sd15_lora.safetensors"),
    "ip-adapter-faceid_sdxl_lora.safetensors": ModelFile(
        "loras", "the LoRA of IP-Adapter FaceID SDXL", f"{FACEID}/ip-adapter-faceid_sdxl_lora.safetensors"),
    "ip-adapter-faceid-plusv2_sd15.bin": ModelFile(
        "ipadapter", "IP-Adapter FaceID Plus v2 for SD1.5", f"{FACEID}/ip-adapter-faceid-plusv2_sd15.bin"),
    "ip-adapter-faceid-plusv2_sdxl.bin": ModelFile(
        "ipadapter", "IP-Adapter FaceID Plus v2 for SDXL", f"{FACEID}/ip-adapter-faceid-plusv2_sdxl.bin"),
    "ip-adapter-faceid-plusv2_sd15_lora.safetensors": ModelFile(
        "loras", "the LoRA of IP-Adapter FaceID Plus v2 SD1.5", f"{FACEID}/ip-adapter-faceid-plusv2_sd15_lora.safetensors"),
    "ip-adapter-faceid-plusv2_sdxl_lora.safetensors": ModelFile(
        "loras", "the LoRA of IP-Adapter FaceID Plus v2 SDXL", f"{FACEID}/ip-adapter-faceid-plusv2_sdxl_lora.safetensors"),
    # The CLIP vision model FaceID Plus reads (ViT-H, for SD1.5 and SDXL alike); h94 names it
    # model.safetensors, IPAdapter_plus's README says to save it under this name.
    CLIP_VISION_VIT_H: ModelFile(
        "clip_vision", "CLIP vision ViT-H for FaceID Plus v2: h94's model.safetensors, renamed",
        f"{HF}/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors"),
}
# The adapter's LoRA and the strength IPAdapter_plus's IPAdapterUnifiedLoaderFaceID gives it.
FACEID_LORAS = {"ip-adapter-faceid_sd15.bin": "ip-adapter-faceid_sd15_lora.safetensors",
                "ip-adapter-faceid_sdxl.bin": "ip-adapter-faceid_sdxl_lora.safetensors",
                "ip-adapter-faceid-plusv2_sd15.bin": "ip-adapter-faceid-plusv2_sd15_lora.safetensors",
                "ip-adapter-faceid-plusv2_sdxl.bin": "ip-adapter-faceid-plusv2_sdxl_lora.safetensors"}
FACEID_LORA_STRENGTH = 0.6

# Flux.1 dev as ComfyUI's own template (flux_dev_full_text_to_image) loads it, and PuLID-Flux with the
# files lldacing/ComfyUI_PuLID_Flux_ll's README puts beside it (EVA-CLIP in models/clip, the face
# parser in models/facexlib).
PULID = f"{HF}/guozinan/PuLID/resolve/main"
FLUX_TEXT = f"{HF}/comfyanonymous/flux_text_encoders/resolve/main"
MODELS.update({
    "flux1-dev.safetensors": ModelFile(
        "diffusion_models", "Flux.1 dev", f"{HF}/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors"),
    "clip_l.safetensors": ModelFile("text_encoders", "Flux.1's CLIP-L text encoder", f"{FLUX_TEXT}/clip_l.safetensors"),
    "t5xxl_fp16.safetensors": ModelFile("text_encoders", "Flux.1's T5-XXL text encoder",
                                        f"{FLUX_TEXT}/t5xxl_fp16.safetensors"),
    "ae.safetensors": ModelFile(
        "vae", "Flux.1's VAE", f"{HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors"),
    "pulid_flux_v0.9.1.safetensors": ModelFile("pulid", "PuLID-Flux", f"{PULID}/pulid_flux_v0.9.1.safetensors"),
    # models/clip, where PuLID users have it; ComfyUI knows that folder as text_encoders (the front end
    # calls "clip" an invalid directory)
    "EVA02_CLIP_L_336_psz14_s6B.pt": ModelFile(
        "clip", "EVA02-CLIP-L-14-336, PuLID's face features",
        f"{HF}/QuanSun/EVA-CLIP/resolve/main/EVA02_CLIP_L_336_psz14_s6B.pt", directory="text_encoders"),
    # found by IdentityFromImages in models/facexlib, a folder ComfyUI only knows once a PuLID pack registers it
    "parsing_bisenet.pth": ModelFile(
        "facexlib", "facexlib's face parser, for PuLID's face crops",
        "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth", offered=False),
})
# Files the pack finds by itself (no loader widget names them), by the node that needs them: the README's
# table lists them for a workflow with that node.
FOUND_BY_PACK = {"MagicIDEvaClipLoader": ["parsing_bisenet.pth"]}

# insightface's packs are folders of .onnx files found by the pack itself (no loader widget),
# unpacked from insightface's own release zips (what FaceAnalysis downloads).
INSIGHTFACE_RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
INSIGHTFACE_NODES = {"IdentityFromImages"}  # nodes that need a pack (FaceDetectMasks only uses one when there)
ANTELOPEV2_NODES = {"MagicIDEvaClipLoader"}  # PuLID-Flux identities: antelopev2's own ArcFace vectors

TABLE_START = "<!-- model table: made by tools/build_workflows.py -->"
TABLE_END = "<!-- end of model table -->"
TABLE = re.compile(re.escape(TABLE_START) + r"\n(.*?)" + re.escape(TABLE_END), re.S)


def file_name(widget_value: str) -> str:
    """"ipadapter/ip-adapter-faceid_sd15.bin" (MagicIDAdapterLoader's combo) -> the file's name."""
    return widget_value.replace("\\", "/").rsplit("/", 1)[-1]


def metadata(widget_values: list[str]) -> list[dict]:
    """The workflow's ``models`` list for the model files its loaders name (in graph order).

    A loader whose combo puts the folder in front ("ipadapter/<file>") gets two entries with one
    url: the bare name first, which 1.2x front ends look up in the folder (they keep the first
    entry of a url), then the combo value, which 1.5x matches to the widget."""
    entries, seen = [], set()
    for value in widget_values:
        name = file_name(value)
        if name not in MODELS or value in seen or not MODELS[name].offered:
            continue
        seen.add(value)
        model = MODELS[name]
        names = [name, value] if value != name else [name]
        entries += [{"name": n, "url": model.url, "directory": model.directory or model.folder} for n in names]
    return entries


FAMILIES = {"sd15": "SD1.5", "sdxl": "SDXL", "flux": "Flux.1"}


def _workflow_list(names: list[str], every: dict[str, list[str]]) -> str:
    """"every SD1.5 workflow" when a file serves all of a family; else the workflows' names
    without prefix and family, with the families after them."""
    for family, label in FAMILIES.items():
        if names and sorted(names) == sorted(every[family]):
            return f"every {label} workflow"
    stems: dict[str, list[str]] = {}
    for name in names:
        stem, _, family = name.removeprefix("magicid_").rpartition("_")
        stems.setdefault(stem, []).append(FAMILIES[family])
    by_families: dict[str, list[str]] = {}
    for stem, families in stems.items():
        by_families.setdefault(" and ".join(families), []).append(f"`{stem}`")
    return "; ".join(f"{', '.join(s)} ({families})" for families, s in by_families.items())


def model_table(used_by: dict[str, list[str]], insightface_users: list[str], workflows: list[str],
                antelopev2_users: list[str] = ()) -> str:
    """The README's table: file name -> folder, where to get it, which workflows need it.
    ``antelopev2_users``: the workflows whose identities need antelopev2 itself (PuLID-Flux's)."""
    every = {f: [w for w in workflows if w.endswith(f"_{f}")] for f in FAMILIES}
    rows = ["| File | Folder (in `ComfyUI/models/`) | Where to get it | Needed by |", "| --- | --- | --- | --- |"]
    for name, model in MODELS.items():
        if used_by.get(name):
            rows.append(f"| `{name}` ({model.what}) | `{model.folder}/` | [{model.source}]({model.url}) "
                        f"| {_workflow_list(used_by[name], every)} |")
    if insightface_users:
        zips = " or ".join(f"[{pack}.zip]({INSIGHTFACE_RELEASE}/{pack}.zip)" for pack in ("antelopev2", "buffalo_l"))
        rows.append(f"| insightface's antelopev2 or buffalo_l pack (ArcFace identities; its `.onnx` files) "
                    f"| `insightface/models/antelopev2/` (or `buffalo_l/`) | {zips}, unzipped "
                    f"| {_workflow_list(insightface_users, every)} |")
    if antelopev2_users:
        rows.append(f"| insightface's antelopev2 pack (PuLID-Flux reads its ArcFace; buffalo_l cannot stand in) "
                    f"| `insightface/models/antelopev2/` | [antelopev2.zip]({INSIGHTFACE_RELEASE}/antelopev2.zip), "
                    f"unzipped | {_workflow_list(antelopev2_users, every)} |")
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str, table: str) -> str:
    if not TABLE.search(readme):
        raise SystemExit(f"README.md has no {TABLE_START} ... {TABLE_END} block under '## Models'")
    return TABLE.sub(lambda _: f"{TABLE_START}\n{table}{TABLE_END}", readme)


def readme_table(readme: str) -> str | None:
    match = TABLE.search(readme)
    return match.group(1) if match else None
