"""Write the shipped workflows (workflows/*.json) and their previews from the graphs below.

    python tools/build_workflows.py             # lay out with the sizes measured last time
    COMFYUI_DIR=... python tools/build_workflows.py --measure   # measure again, new screenshots

Nodes are laid out at the sizes the real front end gives them once a run has filled their
previews (tests/data/workflow_app_sizes.json). ``--measure`` (with the Python that has
ComfyUI's requirements, node and chromium) runs every workflow in the real app with the
tiny stand-in models, lays them out again with the sizes it reads until the app shows every
node at the size it was laid out for, checks the result as the app shows it (no overlaps,
groups hold their nodes), stores the sizes and takes each preview PNG as a screenshot of
the app. Without it the previews keep their last screenshot, with the current workflow
embedded. A full --measure takes about 75 s a workflow on a busy 2-core CPU; ``--only``
measures a few at a time.

Each workflow is a short function over ``Graph``; the node definitions are the ones the
tests check against (ComfyUI's core snapshot and this pack's NODE_CLASS_MAPPINGS), so a
renamed input fails here. A workflow whose nodes are not in the pack yet is skipped.
Model files come from tools/workflow_models.py's MODELS: each workflow lists the ones it loads in
its ``models`` metadata, and the README's model table (rewritten here) says which workflow needs which.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.workflow_builder import Graph  # noqa: E402
from tests.support.workflow_defs import WORKFLOWS_DIR, all_definitions  # noqa: E402
from tests.support.workflow_geometry import SIZES_FILE, app_sizes, layout_problems  # noqa: E402
from tools.workflow_models import (ANTELOPEV2_NODES, CLIP_VISION_VIT_H, FACEID_LORA_STRENGTH, FACEID_LORAS,  # noqa: E402
                                   FOUND_BY_PACK,
                                   INSIGHTFACE_NODES, MODELS, file_name, metadata, model_table, readme_with_table)
from tools.workflow_preview import write_previews  # noqa: E402

README = WORKFLOWS_DIR.parent / "README.md"
MEASURE_ROUNDS = 4  # lay out, measure, lay out again... until no node changes size

INSIGHTFACE = "antelopev2 (or buffalo_l) in ComfyUI/models/insightface/models/antelopev2/*.onnx"

NEGATIVE = "blurry, deformed face, extra fingers, lowres, watermark, text"


def model_note(what: str, files: list[str], extra: list[str] = ()) -> str:
    lines = [what, "", "Load these before pressing Run:"]
    lines += [f"- {name} -> ComfyUI/models/{MODELS[name].folder}/  ({MODELS[name].what}, {MODELS[name].source})"
              for name in files]
    lines += [f"- {line}" for line in extra]
    lines += ["", "Model list and troubleshooting: the README of ComfyUI-MagicID."]
    return "\n".join(lines)


def sd_base(g: Graph, ckpt: str, positive: str):
    with g.stage("Model"):
        loader = g.add("CheckpointLoaderSimple", ckpt_name=ckpt)
        pos = g.add("CLIPTextEncode", title="Prompt", text=positive, clip=loader["CLIP"])
        neg = g.add("CLIPTextEncode", title="Negative prompt", text=NEGATIVE, clip=loader["CLIP"])
    return loader, pos, neg


# --- the workflows ----------------------------------------------------------------------

def faces_and_masks(g: Graph) -> str:
    with g.stage("Faces"):
        photo = g.add("LoadImage", title="Any photo with faces", image="group_photo.jpg")
        faces = g.add("FaceDetectMasks", image=photo["IMAGE"])
    with g.stage("Output"):
        g.add("PreviewImage", title="Faces, numbered", images=faces["preview"])
        union = g.add("MaskToImage", mask=faces["union_mask"])
        g.add("PreviewImage", title="All face masks", images=union[0])
    g.note("Finds every face, numbers them left to right and makes one mask per face. "
           "No model files are needed: the detectors ship with dlib (and mediapipe). With insightface's "
           f"models installed ({INSIGHTFACE}) backend 'auto' uses them.\n\n"
           "Load your photo in 'Any photo with faces'. The numbers drawn over the preview are the "
           "face indices that MultiIDApply and IDRestore refer to.")
    return "Faces and masks"


def restore_faces(family: str):
    ckpt, _, _, control = FAMILIES[family]

    def build(g: Graph) -> str:
        loader, pos, neg = sd_base(g, ckpt, "a sharp, detailed photo of a face, natural skin")
        with g.stage("Faces"):
            picture = g.add("LoadImage", title="Picture to repair", image="picture_to_repair.png")
            faces = g.add("FaceDetectMasks", image=picture["IMAGE"])
        extra = {}
        if control:
            with g.stage("Control"):
                cn = g.add("ControlNetLoader", title="Face landmark ControlNet", control_net_name=control)
            extra = {"control_net": cn[0]}
        with g.stage("Sampling"):
            restored = g.add("IDRestore", image=picture["IMAGE"], faces=faces["faces"], model=loader["MODEL"],
                             vae=loader["VAE"], positive=pos[0], negative=neg[0], zoom_size=ZOOM[family], **extra)
        with g.stage("Output"):
            g.add("SaveImage", images=restored["image"], filename_prefix="MagicID_restored")
            g.add("PreviewImage", title="Each face: before | after", images=restored["face_preview"])
        files = [ckpt] + ([control] if control else [])
        g.note(model_note("Repairs every face of any picture (DDIM inversion, then regeneration) and "
                          "leaves every pixel outside the face masks exactly as it was. Load the picture "
                          "in 'Picture to repair'; faces_to_restore picks faces by the numbers FaceDetectMasks "
                          "shows.", files))
        return "Restore the faces of any picture"
    return build


def identities_from(g: Graph, files: list[str], people: list[str] | None = None, clip_vision=None):
    """One IdentityFromImages per reference photo, chained: identity i is person i. With
    ``clip_vision`` (a FaceID Plus adapter) each also carries its face's CLIP features."""
    people = people or [f"person {i}" for i in range(len(files))]
    chain = None
    with g.stage("Identities"):
        for file, who in zip(files, people):
            photo = g.add("LoadImage", title=f"Reference photo: {who}", image=file)
            extra = {"identities": chain["identities"]} if chain else {}
            if clip_vision:
                extra["clip_vision"] = clip_vision
            chain = g.add("IdentityFromImages", title=f"Identity of {who}", images=photo["IMAGE"], name=who,
                          **extra)
    return chain


def mmf_controls(g: Graph, faces, pos, neg, skeleton_cn: str, face_cn: str | None):
    """MMF: the layout photo's body skeletons and face landmarks as two masked ControlNets."""
    with g.stage("Control"):
        maps = g.add("MMFControlMaps", faces=faces["faces"])
        skeleton = g.add("ControlNetLoader", title="OpenPose ControlNet", control_net_name=skeleton_cn)
        extra = {}
        if face_cn:
            face = g.add("ControlNetLoader", title="Face landmark ControlNet", control_net_name=face_cn)
            extra = {"face_control_net": face[0], "face_map": maps["landmark_map"], "face_mask": maps["face_mask"]}
        return g.add("MMFControlApply", positive=pos[0], negative=neg[0], skeleton_control_net=skeleton[0],
                     skeleton_map=maps["skeleton_map"], person_mask=maps["person_mask"], **extra)


FAMILIES = {  # checkpoint, adapter, skeleton ControlNet, face ControlNet
    "sd15": ("v1-5-pruned-emaonly.safetensors", "ip-adapter-faceid-plusv2_sd15.bin",
             "control_v11p_sd15_openpose_fp16.safetensors", "control_v2p_sd15_mediapipe_face.safetensors"),
    "sdxl": ("sd_xl_base_1.0.safetensors", "ip-adapter-faceid-plusv2_sdxl.bin", "OpenPoseXL2.safetensors", None),
}
# KinIDBlend's child is a blend of ArcFace vectors, with no face photo to read CLIP features
# from, so the family workflows use plain FaceID.
PLAIN_FACEID = {"sd15": "ip-adapter-faceid_sd15.bin", "sdxl": "ip-adapter-faceid_sdxl.bin"}
# The pixels each family was trained at, in ComfyUI's megapixels (1024 x 1024 px each): 512 x 512
# for SD1.5, 1024 x 1024 for SDXL. The layout photo is scaled to it, its aspect kept.
PIXEL_BUDGET = {"sd15": 0.25, "sdxl": 1.0}
ZOOM = {"sd15": 512, "sdxl": 1024}  # IDRestore's working size: the family's own (its tooltip says so)
IDENTITY_NOTE = f"Identities need insightface's face models: {INSIGHTFACE}."


# each person's own words (PersonPrompt), in the order of the identities
PERSON_WORDS = ["laughing, red scarf", "eyes closed, calm smile", "older, grey beard, round glasses",
                "curly hair, surprised, open mouth"]


def reads_clip(adapter: str) -> bool:
    return "faceid-plus" in adapter


def clip_vision_for(g: Graph, adapter: str):
    """ComfyUI's CLIPVisionLoader for a FaceID Plus adapter (its CLIP_VISION output), or None."""
    if not reads_clip(adapter):
        return None
    with g.stage("Identities"):
        return g.add("CLIPVisionLoader", title="CLIP vision (for FaceID Plus v2)", clip_name=CLIP_VISION_VIT_H)[0]


def adapter_files(adapter: str) -> list[str]:
    """The files the identity part of a graph loads: the adapter, its LoRA and, for FaceID Plus, the
    CLIP vision model."""
    return [adapter, FACEID_LORAS[adapter]] + ([CLIP_VISION_VIT_H] if reads_clip(adapter) else [])


def either_adapter_note(family: str, adapter: str) -> list[str]:
    """What to change for the other FaceID file: the loader takes either."""
    if not reads_clip(adapter):
        return []
    plain = PLAIN_FACEID[family]
    return [f"Only have {plain}? Pick it in MagicID Adapter Loader and {FACEID_LORAS[plain]} in the LoRA "
            f"loader (both from {MODELS[plain].source}), and delete the CLIP vision loader: plain FaceID does not "
            "read it."]


def faceid(g: Graph, model, adapter: str):
    """The FaceID adapter and, before MultiIDApply, the LoRA it was trained with (IPAdapter_plus's
    README: each FaceID model is paired with its own LoRA), at IPAdapter_plus's strength."""
    ip = g.add("MagicIDAdapterLoader", adapter_file=f"ipadapter/{adapter}")
    lora = g.add("LoraLoaderModelOnly", title="FaceID LoRA (pairs with the adapter)", model=model,
                 lora_name=FACEID_LORAS[adapter], strength_model=FACEID_LORA_STRENGTH)
    return ip, lora


def person_prompts(g: Graph, clip, texts: list[str]):
    """One PersonPrompt per person, chained: prompt i goes with identity i."""
    chain = None
    for i, text in enumerate(texts):
        extra = {"person_prompts": chain["person_prompts"]} if chain else {}
        chain = g.add("PersonPrompt", title=f"Words of person {i}", clip=clip, text=text, **extra)
    return chain


def group_photo(family: str, people: int, kin: bool = False, words: bool = False):
    ckpt, adapter, skeleton_cn, face_cn = FAMILIES[family]
    if kin:
        adapter = PLAIN_FACEID[family]

    def build(g: Graph) -> str:
        who = "a family: two parents and their child" if kin else f"{people} friends"
        loader, pos, neg = sd_base(g, ckpt, f"a group photo of {who}, smiling, natural light, 35mm photo")
        with g.stage("Faces"):
            photo = g.add("LoadImage", title=f"Layout photo ({people} people)", image="group_photo.jpg")
            layout = g.add("ImageScaleToTotalPixels", title=f"Layout at {family.upper()}'s size",
                           image=photo["IMAGE"], upscale_method="lanczos", megapixels=PIXEL_BUDGET[family])
            faces = g.add("FaceDetectMasks", image=layout["IMAGE"], max_faces=people)
        if kin:
            a = identities_from(g, ["parent_a.jpg"], ["parent a"])
            b = identities_from(g, ["parent_b.jpg"], ["parent b"])
            with g.stage("Identities"):
                identities = g.add("KinIDBlend", parent_a=a["identities"], parent_b=b["identities"],
                                   include_parents=True)
        else:
            identities = identities_from(g, [f"person_{chr(97 + i)}.jpg" for i in range(people)],
                                         clip_vision=clip_vision_for(g, adapter))
        with g.stage("Identities"):
            ip, lora = faceid(g, loader["MODEL"], adapter)
            said = {"person_prompts": person_prompts(g, loader["CLIP"], PERSON_WORDS[:people])["person_prompts"]} \
                if words else {}
            patched = g.add("MultiIDApply", model=lora["MODEL"], adapter=ip["adapter"],
                            identities=identities["identities"], faces=faces["faces"], **said)
        controls = mmf_controls(g, faces, pos, neg, skeleton_cn, face_cn)
        with g.stage("Sampling"):
            latent = g.add("VAEEncode", pixels=layout["IMAGE"], vae=loader["VAE"])
            sample = g.add("KSampler", model=patched["model"], positive=controls["positive"],
                           negative=controls["negative"], latent_image=latent[0], seed=42, steps=30, cfg=5.0,
                           sampler_name="dpmpp_2m", scheduler="karras")
            image = g.add("VAEDecode", samples=sample[0], vae=loader["VAE"])
        with g.stage("Output"):
            g.add("SaveImage", images=image[0], filename_prefix=f"MagicID_{'family' if kin else 'group'}")
            g.add("PreviewImage", title="Who owns which face", images=patched["ownership"])
        refs = ("parent_a.jpg and parent_b.jpg: one photo of each parent; KinIDBlend adds their child"
                if kin else f"person_a.jpg ... : one reference photo per person, in the order of the faces")
        g.note(model_note(
            f"A group photo of {who}, each with their own face and no identity leaking onto the others "
            "(MGMICA), posed like the layout photo (MMF: body skeletons and face landmarks). Layout photo: "
            f"any photo with {people} people, of any size: it is scaled to {family.upper()}'s "
            f"{PIXEL_BUDGET[family]:g} megapixels (aspect kept) before the faces are found and the latent is made. "
            f"{refs}. MultiIDApply's face_indices (or the chips under it) "
            "pick which identity goes to which numbered face."
            + (" Each person also has their own words (the PersonPrompt chain, one per identity, in the same "
               "order): they act only on that person's face, next to the main prompt, in the same single pass."
               if words else ""),
            [ckpt, *adapter_files(adapter), skeleton_cn] + ([face_cn] if face_cn else []),
            [IDENTITY_NOTE] + either_adapter_note(family, adapter)))
        if kin:
            return f"Family photo ({family.upper()})"
        return f"Group photo, {people} identities{', each with own words' if words else ''} ({family.upper()})"
    return build


def restored_outputs(g: Graph, restored, identities, faces, picture, prefix: str) -> None:
    """A restore with references ends the same way on every family: the picture, each face before and
    after, and the identity similarity before and after."""
    with g.stage("Output"):
        g.add("SaveImage", images=restored["image"], filename_prefix=prefix)
        g.add("PreviewImage", title="Each face: before | after", images=restored["face_preview"])
        score = g.add("IDSimilarity", image=restored["image"], identities=identities["identities"],
                      assignment="match", faces=faces["faces"], image_before=picture["IMAGE"])
        g.add("PreviewImage", title="Identity similarity, before and after", images=score["table"])


def restore_with_references(family: str):
    ckpt, adapter, _, face_cn = FAMILIES[family]

    def build(g: Graph) -> str:
        loader, pos, neg = sd_base(g, ckpt, "a sharp, detailed group photo, natural skin")
        with g.stage("Faces"):
            picture = g.add("LoadImage", title="Output of another workflow", image="picture_to_repair.png")
            faces = g.add("FaceDetectMasks", image=picture["IMAGE"])
        identities = identities_from(g, ["person_a.jpg", "person_b.jpg"], clip_vision=clip_vision_for(g, adapter))
        with g.stage("Identities"):
            ip, lora = faceid(g, loader["MODEL"], adapter)
            patched = g.add("MultiIDApply", model=lora["MODEL"], adapter=ip["adapter"],
                            identities=identities["identities"], faces=faces["faces"])
        extra = {}
        if face_cn:
            with g.stage("Control"):
                extra = {"control_net": g.add("ControlNetLoader", title="Face landmark ControlNet",
                                              control_net_name=face_cn)[0]}
        with g.stage("Sampling"):
            restored = g.add("IDRestore", image=picture["IMAGE"], faces=faces["faces"], model=patched["model"],
                             vae=loader["VAE"], positive=pos[0], negative=neg[0], zoom_size=ZOOM[family], **extra)
        restored_outputs(g, restored, identities, faces, picture, "MagicID_restored")
        g.note(model_note(
            "Repairs the faces of a picture another workflow made, each towards its own person: the "
            "references are matched to the faces automatically (leave face_indices empty), or set by hand "
            "with the chips under MultiIDApply. Everything outside the face masks stays as it was.",
            [ckpt, *adapter_files(adapter)] + ([face_cn] if face_cn else []),
            [IDENTITY_NOTE] + either_adapter_note(family, adapter)))
        return f"Restore faces with matched references ({family.upper()})"
    return build


def invert_and_regenerate(g: Graph) -> str:
    ckpt = "v1-5-pruned-emaonly.safetensors"
    loader, pos, neg = sd_base(g, ckpt, "a photo")
    steps, scheduler = 25, "ddim_uniform"  # the sampler below must walk the same schedule back
    with g.stage("Sampling"):
        photo = g.add("LoadImage", title="Photo to invert", image="picture_to_repair.png")
        latent = g.add("VAEEncode", pixels=photo["IMAGE"], vae=loader["VAE"])
        inverted = g.add("DDIMInvert", model=loader["MODEL"], positive=pos[0], negative=neg[0],
                         latent_image=latent[0], steps=steps, scheduler=scheduler, cfg=1.0)
        sample = g.add("KSamplerAdvanced", model=loader["MODEL"], add_noise="disable", steps=steps, cfg=1.0,
                       sampler_name="euler", scheduler=scheduler, positive=pos[0], negative=neg[0],
                       latent_image=inverted["latent"], start_at_step=inverted["start_at_step"],
                       return_with_leftover_noise="disable")
        image = g.add("VAEDecode", samples=sample[0], vae=loader["VAE"])
    with g.stage("Output"):
        g.add("SaveImage", images=image[0], filename_prefix="MagicID_regenerated")
    g.note(model_note(
        "DDIM inversion on its own: the photo is inverted to the noise the sampler turns back into it, "
        "then regenerated with stock KSamplerAdvanced (no added noise, same steps and scheduler). With the "
        "same prompt the photo comes back (DDIMInvert reports the error); change the prompt to edit it.",
        [ckpt]))
    return "DDIM inversion and regeneration (SD15)"


# name -> builder
WORKFLOWS = {
    "magicid_faces_and_masks": faces_and_masks,
    "magicid_restore_faces_sd15": restore_faces("sd15"),
    "magicid_restore_faces_sdxl": restore_faces("sdxl"),
    "magicid_restore_matched_references_sd15": restore_with_references("sd15"),
    "magicid_restore_matched_references_sdxl": restore_with_references("sdxl"),
    "magicid_group_2_ids_sd15": group_photo("sd15", 2),
    "magicid_group_4_ids_sd15": group_photo("sd15", 4),
    "magicid_group_2_ids_sdxl": group_photo("sdxl", 2),
    "magicid_group_4_ids_sdxl": group_photo("sdxl", 4),
    "magicid_group_4_prompts_sd15": group_photo("sd15", 4, words=True),
    "magicid_group_4_prompts_sdxl": group_photo("sdxl", 4, words=True),
    "magicid_family_kin_sd15": group_photo("sd15", 3, kin=True),
    "magicid_family_kin_sdxl": group_photo("sdxl", 3, kin=True),
    "magicid_invert_regenerate_sd15": invert_and_regenerate,
}


# --- Flux.1 dev with PuLID-Flux identities -----------------------------------------------

# ComfyUI's own Flux.1 dev template (flux_dev_full_text_to_image): the diffusion model, its two text
# encoders and its VAE as separate files; euler / simple, cfg 1, the guidance in the conditioning.
FLUX = {"unet": "flux1-dev.safetensors", "clip_l": "clip_l.safetensors", "t5": "t5xxl_fp16.safetensors",
        "vae": "ae.safetensors", "pulid": "pulid_flux_v0.9.1.safetensors", "eva_clip": "EVA02_CLIP_L_336_psz14_s6B.pt"}
FLUX_GUIDANCE = 3.5
PIXEL_BUDGET["flux"], ZOOM["flux"] = 1.0, 1024  # Flux.1 works at about 1 MP; IDRestore pads crops to 16 px
PULID_NOTE = ("PuLID reads insightface's antelopev2 pack: ComfyUI/models/insightface/models/antelopev2/*.onnx "
              "(antelopev2.zip from insightface's releases, unzipped), and facexlib's face parser: "
              "parsing_bisenet.pth -> ComfyUI/models/facexlib/ (facexlib's v0.2.0 release).")


def flux_base(g: Graph, positive: str):
    """Flux.1 dev's loaders and its prompt through FluxGuidance (no negative: cfg 1)."""
    with g.stage("Model"):
        unet = g.add("UNETLoader", title="Flux.1 dev", unet_name=FLUX["unet"])
        clip = g.add("DualCLIPLoader", clip_name1=FLUX["clip_l"], clip_name2=FLUX["t5"], type="flux")
        vae = g.add("VAELoader", vae_name=FLUX["vae"])
        text = g.add("CLIPTextEncode", title="Prompt", text=positive, clip=clip["CLIP"])
        guided = g.add("FluxGuidance", conditioning=text[0], guidance=FLUX_GUIDANCE)
    return unet, clip, vae, guided


def pulid_identities_from(g: Graph, files: list[str]):
    """One IdentityFromImages per reference photo, each with the EVA-CLIP PuLID reads; then the PuLID file."""
    with g.stage("Identities"):
        eva = g.add("MagicIDEvaClipLoader", eva_clip_name=FLUX["eva_clip"])
        chain = None
        for i, file in enumerate(files):
            who = f"person {i}"
            photo = g.add("LoadImage", title=f"Reference photo: {who}", image=file)
            extra = {"identities": chain["identities"]} if chain else {}
            chain = g.add("IdentityFromImages", title=f"Identity of {who}", images=photo["IMAGE"], name=who,
                          eva_clip=eva[0], **extra)
        pulid = g.add("MagicIDAdapterLoader", title="PuLID-Flux", adapter_file=f"pulid/{FLUX['pulid']}")
    return chain, pulid


def flux_files() -> list[str]:
    return [FLUX[k] for k in ("unet", "clip_l", "t5", "vae", "pulid", "eva_clip")]


def group_photo_flux(people: int, words: bool = False):
    def build(g: Graph) -> str:
        who = f"{people} friends"
        unet, clip, vae, positive = flux_base(g, f"a group photo of {who}, smiling, natural light, 35mm photo")
        with g.stage("Faces"):
            photo = g.add("LoadImage", title=f"Layout photo ({people} people)", image="group_photo.jpg")
            layout = g.add("ImageScaleToTotalPixels", title="Layout at Flux's size", image=photo["IMAGE"],
                           upscale_method="lanczos", megapixels=PIXEL_BUDGET["flux"])
            faces = g.add("FaceDetectMasks", image=layout["IMAGE"], max_faces=people)
        identities, pulid = pulid_identities_from(g, [f"person_{chr(97 + i)}.jpg" for i in range(people)])
        with g.stage("Identities"):
            said = {"person_prompts": person_prompts(g, clip["CLIP"], PERSON_WORDS[:people])["person_prompts"]} \
                if words else {}
            patched = g.add("MultiIDApply", model=unet["MODEL"], adapter=pulid["adapter"],
                            identities=identities["identities"], faces=faces["faces"], **said)
        with g.stage("Sampling"):
            latent = g.add("VAEEncode", pixels=layout["IMAGE"], vae=vae["VAE"])
            # cfg 1: Flux dev's guidance is in the conditioning; the negative is never computed
            nothing = g.add("ConditioningZeroOut", title="No negative (cfg 1)", conditioning=positive[0])
            sample = g.add("KSampler", model=patched["model"], positive=positive[0], negative=nothing[0],
                           latent_image=latent[0], seed=42, steps=20, cfg=1.0, sampler_name="euler",
                           scheduler="simple")
            image = g.add("VAEDecode", samples=sample[0], vae=vae["VAE"])
        with g.stage("Output"):
            g.add("SaveImage", images=image[0], filename_prefix="MagicID_group_flux")
            g.add("PreviewImage", title="Who owns which face", images=patched["ownership"])
        g.note(model_note(
            f"A Flux.1 dev group photo of {who}, each with their own face (PuLID-Flux identities, each acting "
            "only on its own face's tokens, in one pass), at the layout photo's places. Layout photo: any photo "
            f"with {people} people, of any size: it is scaled to about {PIXEL_BUDGET['flux']:g} megapixel (aspect "
            "kept) before the faces are found and the latent is made. person_a.jpg ... : one reference photo per "
            "person, in the order of the faces; MultiIDApply's face_indices (or the chips under it) pick which "
            "identity goes to which numbered face. Sampling as ComfyUI's Flux.1 dev template: FluxGuidance 3.5, "
            "cfg 1, euler / simple."
            + (" Each person also has their own words (the PersonPrompt chain, one per identity, in the same "
               "order): they act only with that person's image tokens, next to the main prompt."
               if words else ""),
            flux_files(), [PULID_NOTE]))
        return f"Group photo, {people} identities{', each with own words' if words else ''} (Flux.1 dev)"
    return build


def restore_faces_flux(g: Graph) -> str:
    unet, _, vae, positive = flux_base(g, "a sharp, detailed photo of a face, natural skin")
    with g.stage("Faces"):
        picture = g.add("LoadImage", title="Picture to repair", image="picture_to_repair.png")
        faces = g.add("FaceDetectMasks", image=picture["IMAGE"])
    identities, pulid = pulid_identities_from(g, ["person_a.jpg", "person_b.jpg"])
    with g.stage("Identities"):
        patched = g.add("MultiIDApply", model=unet["MODEL"], adapter=pulid["adapter"],
                        identities=identities["identities"], faces=faces["faces"])
    with g.stage("Sampling"):
        restored = g.add("IDRestore", image=picture["IMAGE"], faces=faces["faces"], model=patched["model"],
                         vae=vae["VAE"], positive=positive[0], cfg=1.0, scheduler="simple",
                         zoom_size=ZOOM["flux"])
    restored_outputs(g, restored, identities, faces, picture, "MagicID_restored_flux")
    g.note(model_note(
        "Repairs the faces of any picture with Flux.1 dev, each towards its own reference photo (PuLID-Flux "
        "identities, matched to the faces automatically; or set face_indices / the chips under MultiIDApply). "
        "Each face is cropped, zoomed to about 1 megapixel (padded to whole 16 px tokens), inverted and "
        "regenerated at cfg 1 with FluxGuidance's guidance (no negative), and pasted back: every pixel outside "
        "the face masks stays exactly as it was.",
        flux_files(), [PULID_NOTE]))
    return "Restore faces with references (Flux.1 dev)"


WORKFLOWS.update({
    "magicid_group_2_ids_flux": group_photo_flux(2),
    "magicid_group_4_ids_flux": group_photo_flux(4),
    "magicid_group_4_prompts_flux": group_photo_flux(4, words=True),
    "magicid_restore_faces_flux": restore_faces_flux,
})


def build_all(defs: dict) -> dict[str, tuple[Graph, str]]:
    """name -> (graph, title) of every workflow whose nodes are all in the pack."""
    built = {}
    for name, build in WORKFLOWS.items():
        g = Graph(defs)
        try:
            title = build(g)
        except KeyError as missing:  # a node of this workflow is not in the pack yet
            print(f"skip {name}: {missing}")
            continue
        g.models = metadata(model_values(g))
        built[name] = (g, title)
    return built


def model_values(g: Graph) -> list[str]:
    """The widget values of ``g`` that name a model file of MODELS, in graph order."""
    named = [v for n in g.nodes for v in n.widgets if isinstance(v, str) and file_name(v) in MODELS]
    return named + [f for n in g.nodes for f in FOUND_BY_PACK.get(n.type, [])]


def readme_model_table(built: dict) -> str:
    """The README's model table for the built workflows."""
    used_by: dict[str, list[str]] = {}
    for name, (g, _) in built.items():
        for value in dict.fromkeys(model_values(g)):
            used_by.setdefault(file_name(value), []).append(name)
    antelopev2 = [name for name, (g, _) in built.items() if any(n.type in ANTELOPEV2_NODES for n in g.nodes)]
    insightface = [name for name, (g, _) in built.items()
                   if any(n.type in INSIGHTFACE_NODES for n in g.nodes) and name not in antelopev2]
    return model_table(used_by, insightface, list(built), antelopev2)


def sizes_for(g: Graph, recorded: dict) -> dict[int, tuple[float, float]]:
    """The sizes recorded for this graph's nodes (by id, when the type still matches)."""
    return {n.id: tuple(recorded[str(n.id)]["size"]) for n in g.nodes
            if str(n.id) in recorded and recorded[str(n.id)]["type"] == n.type}


def write_workflows(built: dict, sizes: dict) -> dict[str, Path]:
    paths = {}
    for name, (g, _) in built.items():
        path = WORKFLOWS_DIR / f"{name}.json"
        path.write_text(json.dumps(g.to_ui(sizes_for(g, sizes.get(name, {}))), indent=1) + "\n")
        paths[name] = path
    return paths


def laid_out_sizes(path: Path) -> dict[str, dict]:
    """node id -> {"type", "size"} as written in the workflow file (the sizes file's form)."""
    return {str(n["id"]): {"type": n["type"], "size": n["size"]} for n in json.loads(path.read_text())["nodes"]}


def measure(built: dict, sizes: dict, shots_dir: Path) -> dict[str, Path]:
    """Lay out, run in the app and take its sizes until they hold; the last round's
    screenshots are the previews. Stops with the problems if the app shows any."""
    from tests.host.in_app import app_server, live_boxes, node_sizes, run_in_app

    shots = {name: shots_dir / f"{name}.png" for name in built}
    with app_server() as server:
        for round_ in range(1, MEASURE_ROUNDS + 1):
            paths = write_workflows(built, sizes)  # only the workflows given: ``built`` may be a part
            report = run_in_app(server, paths, shots)["workflows"]
            measured = {name: node_sizes(r) for name, r in report.items()}
            # the layout holds once the app shows every node at the size it was laid out for
            changed = [name for name in built if measured[name] != laid_out_sizes(paths[name])]
            sizes.update(measured)
            print(f"round {round_}: the app changed node sizes in {changed or 'no workflow'}")
            if not changed:
                break
        else:
            raise SystemExit(f"node sizes still change after {MEASURE_ROUNDS} rounds: {changed}")
    problems = {name: found for name, path in paths.items()
                if (found := layout_problems(json.loads(path.read_text()), live_boxes(report[name]),
                                             report[name]["groups"]))}
    if problems:
        raise SystemExit(f"the app shows layout problems: {json.dumps(problems, indent=1)}")
    SIZES_FILE.write_text(json.dumps(sizes, indent=1, sort_keys=True) + "\n")
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true",
                        help="run the workflows in the real front end (COMFYUI_DIR) for sizes and screenshots")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure only these workflows")
    args = parser.parse_args()
    WORKFLOWS_DIR.mkdir(exist_ok=True)
    built = build_all(all_definitions())
    sizes = app_sizes()
    measured = {name: built[name] for name in (args.only or built)}
    with tempfile.TemporaryDirectory(prefix="magicid_shots_") as shots_dir:
        shots = measure(measured, sizes, Path(shots_dir)) if args.measure else {}
        paths = write_workflows(built, sizes)
        for name, path in paths.items():
            write_previews(path, shots.get(name))
            print(f"wrote {path.relative_to(WORKFLOWS_DIR.parent)} (+ .png, .jpg)")
    README.write_text(readme_with_table(README.read_text(), readme_model_table(built)))
    print("README.md model table updated")


if __name__ == "__main__":
    main()
