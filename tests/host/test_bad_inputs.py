"""Bad and edge-case inputs to every node, sent to a real ``--cpu`` ComfyUI server over HTTP.

Each row of CASES is one prompt and one expectation:
- ``reject``: ComfyUI's validation refuses the prompt, naming the input;
- ``error``: the prompt runs and stops with an error whose text names the input;
- ``finite``: the prompt runs, and MagicIDFiniteProbe (tests/host/probe_nodes.py) finds every
  number of the pack node's outputs finite (a MODEL or CONDITIONING is sampled first).
After every prompt the server must still answer /system_stats.

The models are the tiny stand-ins of tests/host/tiny_loader_nodes.py; adapter and insightface
files (good, truncated, garbage, NaN, x1e30) are written into the server's models folder.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.host.example_inputs import write_input_pictures
from tests.support.mgmica_layouts import faceid_state_dict, flatten

HERE = Path(__file__).resolve().parent

TINY_UNET_WIDTHS = [32, 64] + [64, 64, 32, 32] + [64]
GOOD_ADAPTER = "ipadapter/ip-adapter-faceid_sd15.bin"
NAN, INF = float("nan"), float("inf")


def _host_conftest():
    path = str(HERE / "conftest.py")
    return next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == path)


def _adapter_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    good = faceid_state_dict(widths=TINY_UNET_WIDTHS, context_dim=768, seed=0)
    torch.save(good, folder / "ip-adapter-faceid_sd15.bin")
    torch.save(faceid_state_dict(seed=1), folder / "ip-adapter-faceid_sdxl.bin")      # SD1.5-sized: other layers
    data = (folder / "ip-adapter-faceid_sd15.bin").read_bytes()
    (folder / "truncated.bin").write_bytes(data[: len(data) // 2])
    (folder / "garbage.safetensors").write_bytes(b"\x00\x01garbage" * 100)
    (folder / "empty.bin").write_bytes(b"")
    save_file({"model.diffusion_model.x": torch.zeros(2)}, str(folder / "checkpoint.safetensors"))
    for name, damage in (("nan.bin", lambda w: w.fill_(NAN)), ("huge.safetensors", lambda w: w.mul_(1e30))):
        state = faceid_state_dict(widths=TINY_UNET_WIDTHS, context_dim=768, seed=0)
        damage(state["ip_adapter"]["1.to_k_ip.weight"])
        if name.endswith(".bin"):
            torch.save(state, folder / name)
        else:
            save_file(flatten(state), str(folder / name))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    conftest = _host_conftest()
    base = conftest.make_base_dir(tmp_path_factory.mktemp("bad_inputs"))
    (base / "custom_nodes" / "magicid_tiny_loaders.py").symlink_to(HERE / "tiny_loader_nodes.py")
    (base / "custom_nodes" / "magicid_probe_nodes.py").symlink_to(HERE / "probe_nodes.py")
    write_input_pictures(base / "input")
    _adapter_files(base / "models" / "ipadapter")
    garbage_pack = base / "models" / "insightface" / "antelopev2"
    garbage_pack.mkdir(parents=True)
    (garbage_pack / "scrfd_10g_bnkps.onnx").write_bytes(b"not an onnx model")
    (garbage_pack / "glintr100.onnx").write_bytes(b"")
    srv = conftest.ComfyServer(base)
    try:
        srv.wait_ready()
        srv.object_info = srv.get("/object_info")
        yield srv
    finally:
        srv.stop()


# --- building prompts ----------------------------------------------------------------------

def _defaults(object_info: dict, class_type: str) -> dict:
    """Widget defaults of a node's required inputs (the first choice of a combo)."""
    out = {}
    for name, spec in object_info[class_type]["input"].get("required", {}).items():
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, list):
            out[name] = options.get("default", kind[0] if kind else "")
        elif kind == "COMBO":
            out[name] = options.get("default", (options.get("options") or [""])[0])
        elif "default" in options:
            out[name] = options["default"]
    return out


def base_graph() -> dict:
    """Node id -> (class, inputs): the good graph every case starts from. Links are [id, slot]."""
    return {
        "group": ("LoadImage", {"image": "group_photo.jpg"}),                 # 600x300, six people
        "repair": ("LoadImage", {"image": "picture_to_repair.png"}),          # 256x384, two people
        "person_a": ("LoadImage", {"image": "person_a.jpg"}),
        "person_b": ("LoadImage", {"image": "person_b.jpg"}),
        "ckpt": ("TinyCheckpointLoader", {"ckpt_name": "tiny"}),
        "pos": ("CLIPTextEncode", {"text": "a group photo", "clip": ["ckpt", 1]}),
        "neg": ("CLIPTextEncode", {"text": "", "clip": ["ckpt", 1]}),
        # identity_backend none: the FACES carry no embedding, so identities go to faces in order
        "faces": ("FaceDetectMasks", {"image": ["group", 0], "identity_backend": "none", "skeletons": True}),
        "faces_dlib": ("FaceDetectMasks", {"image": ["group", 0], "identity_backend": "dlib", "skeletons": False}),
        "repair_faces": ("FaceDetectMasks", {"image": ["repair", 0], "identity_backend": "none",
                                             "skeletons": False}),
        "id_a": ("TinyIdentityFromImages", {"images": ["person_a", 0], "name": "a", "backend": "auto"}),
        "ids": ("TinyIdentityFromImages", {"images": ["person_b", 0], "name": "b", "backend": "auto",
                                           "identities": ["id_a", 0]}),
        "dlib_ids": ("IdentityFromImages", {"images": ["person_a", 0], "name": "a", "backend": "dlib"}),
        "adapter": ("MagicIDAdapterLoader", {"adapter_file": GOOD_ADAPTER}),
        "cn": ("TinyControlNetLoader", {"control_net_name": "tiny"}),
        # small latents: the tiny UNet is quick, and the 2:1 aspect is the group photo's (MultiIDApply checks it)
        "empty": ("EmptyLatentImage", {"width": 128, "height": 64, "batch_size": 1}),
        "small": ("ImageScale", {"image": ["repair", 0], "upscale_method": "area", "width": 64, "height": 96,
                                 "crop": "disabled"}),
        "encoded": ("VAEEncode", {"pixels": ["small", 0], "vae": ["ckpt", 2]}),
        "bad": ("MagicIDTestTensor", {"batch": 1, "height": 64, "width": 64, "channels": 3, "fill": "rand",
                                      "poison": "none"}),
    }


def sampled(model=("ckpt", 0), positive=("pos", 0), negative=("neg", 0)) -> dict:
    """A two-step KSampler on the 128x64 empty latent and a probe of its result."""
    return {"ks": ("KSampler", {"model": list(model), "positive": list(positive), "negative": list(negative),
                                "latent_image": ["empty", 0], "steps": 2, "cfg": 4.0, "seed": 0,
                                "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}),
            "probe": ("MagicIDFiniteProbe", {"latent": ["ks", 0]})}


def multi_id(**inputs) -> dict:
    node = {"model": ["ckpt", 0], "adapter": ["adapter", 0], "identities": ["ids", 0], "faces": ["faces", 0],
            "weight": 1.0, "start_percent": 0.0, "end_percent": 1.0}
    return {"mia": ("MultiIDApply", {**node, **inputs}), **sampled(model=("mia", 0))}


def mmf_apply(**inputs) -> dict:
    node = {"positive": ["pos", 0], "negative": ["neg", 0], "skeleton_control_net": ["cn", 0],
            "skeleton_map": ["maps", 0], "person_mask": ["maps", 4], "face_control_net": ["cn", 0],
            "face_map": ["maps", 1], "face_mask": ["maps", 5]}
    return {"maps": ("MMFControlMaps", {"faces": ["faces", 0]}),
            "mca": ("MMFControlApply", {**node, **inputs}), **sampled(positive=("mca", 0), negative=("mca", 1))}


def id_restore(**inputs) -> dict:
    node = {"image": ["repair", 0], "faces": ["repair_faces", 0], "model": ["ckpt", 0], "vae": ["ckpt", 2],
            "positive": ["pos", 0], "negative": ["neg", 0], "steps": 4, "zoom_size": 256, "refinement": 1}
    return {"restore": ("IDRestore", {**node, **inputs}),
            "probe": ("MagicIDFiniteProbe", {"image": ["restore", 0]})}


def ddim_invert(**inputs) -> dict:
    node = {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["encoded", 0],
            "steps": 4, "refinement": 2}
    return {"inv": ("DDIMInvert", {**node, **inputs}),
            "probe": ("MagicIDFiniteProbe", {"latent": ["inv", 0], "number": ["inv", 1]})}


def detect(**inputs) -> dict:
    node = {"image": ["group", 0], "identity_backend": "none", "skeletons": False}
    return {"fd": ("FaceDetectMasks", {**node, **inputs}),
            "probe": ("MagicIDFiniteProbe", {"faces": ["fd", 0], "mask": ["fd", 1], "image": ["fd", 3]})}


def maps(**inputs) -> dict:
    return {"maps": ("MMFControlMaps", {"faces": ["faces", 0], **inputs}),
            "probe": ("MagicIDFiniteProbe", {"image": ["maps", 3], "mask": ["maps", 4]})}


def identity(**inputs) -> dict:
    node = {"images": ["person_a", 0], "name": "a", "backend": "dlib"}
    return {"idn": ("IdentityFromImages", {**node, **inputs}),
            "probe": ("MagicIDFiniteProbe", {"identities": ["idn", 0]})}


def similarity(**inputs) -> dict:
    node = {"image": ["group", 0], "identities": ["dlib_ids", 0], "assignment": "match",
            "faces": ["faces_dlib", 0]}
    return {"sim": ("IDSimilarity", {**node, **inputs}),
            "probe": ("MagicIDFiniteProbe", {"number": ["sim", 0], "image": ["sim", 3]})}


def kin(**inputs) -> dict:
    return {"kin": ("KinIDBlend", {"parent_a": ["ids", 0], **inputs}),
            "probe": ("MagicIDFiniteProbe", {"identities": ["kin", 0]})}


def adapter(name: str) -> dict:
    return {"adapter": ("MagicIDAdapterLoader", {"adapter_file": name}), **multi_id()}


def tensor(**spec) -> dict:
    """Replace the test tensor node's settings (batch, height, width, channels, fill, poison, image)."""
    return {"bad": ("MagicIDTestTensor", {"batch": 1, "height": 64, "width": 64, "channels": 3, "fill": "rand",
                                          "poison": "none", **spec})}


def poisoned(source: str, poison: str) -> dict:
    """A real picture with one value poisoned."""
    return tensor(image=[source, 0], poison=poison)


BAD_IMAGE, BAD_MASK, BAD_LATENT = ["bad", 0], ["bad", 1], ["bad", 2]


# --- the table -------------------------------------------------------------------------------
# (case id, graph parts, expectation, text the message must hold (the input's name)).
# "refused": a rejection or an error (ComfyUI's own max check catches +inf, ours NaN).

CASES = [
    # MultiIDApply
    ("mia start nan", multi_id(start_percent=NAN), "error", "start_percent"),
    ("mia end nan", multi_id(end_percent=NAN), "error", "end_percent"),
    ("mia start inf", multi_id(start_percent=INF), "refused", "start_percent"),
    ("mia start > end", multi_id(start_percent=0.8, end_percent=0.2), "error", "start_percent"),
    ("mia start = end", multi_id(start_percent=0.5, end_percent=0.5), "error", "start_percent"),
    ("mia weight nan", multi_id(weight=NAN), "error", "weight"),
    ("mia weight -1", multi_id(weight=-1.0), "reject", "weight"),
    ("mia identity_weights 1e30", multi_id(identity_weights="1e30, 1"), "error", "identity_weights"),
    ("mia identity_weights -5", multi_id(identity_weights="-5, 1"), "error", "identity_weights"),
    ("mia identity_weights nan", multi_id(identity_weights="nan, 1"), "error", "identity_weights"),
    ("mia identity_weights word", multi_id(identity_weights="1, strong"), "error", "identity_weights"),
    ("mia identity_weights count", multi_id(identity_weights="1"), "error", "identity_weights"),
    ("mia face_indices 999", multi_id(face_indices="999, 0"), "error", "face_indices"),
    ("mia face_indices -2", multi_id(face_indices="-2, 0"), "error", "face_indices"),
    ("mia face_indices twice", multi_id(face_indices="0, 0"), "error", "face_indices"),
    ("mia face_indices word", multi_id(face_indices="first, 0"), "error", "face_indices"),
    ("mia face_indices count", multi_id(face_indices="0"), "error", "face_indices"),
    ("mia face_indices 1.5", multi_id(face_indices="1.5, 0"), "error", "face_indices"),
    ("mia image_index 5", multi_id(image_index=5), "error", "image_index"),
    ("mia two backends", multi_id(faces=["faces_dlib", 0]), "error", "face_indices"),
    ("mia dlib identities", multi_id(identities=["dlib_ids", 0]), "error", "came from dlib"),
    ("mia good", multi_id(), "finite", None),
    ("mia weight 0", multi_id(weight=0.0), "finite", None),
    ("mia one face nowhere", multi_id(face_indices="-1, 2"), "finite", None),
    ("mia explicit weights", multi_id(identity_weights="0.5, 1.5"), "finite", None),
    # MagicIDAdapterLoader: missing, truncated, garbage, damaged model files
    ("adapter not in list", adapter("ipadapter/missing.bin"), "reject", "adapter_file"),
    ("adapter truncated", adapter("ipadapter/truncated.bin"), "error", "truncated.bin"),
    ("adapter garbage", adapter("ipadapter/garbage.safetensors"), "error", "garbage.safetensors"),
    ("adapter empty file", adapter("ipadapter/empty.bin"), "error", "empty.bin"),
    ("adapter a checkpoint", adapter("ipadapter/checkpoint.safetensors"), "error", "checkpoint.safetensors"),
    ("adapter nan weights", adapter("ipadapter/nan.bin"), "error", "nan.bin"),
    ("adapter x1e30 weights", adapter("ipadapter/huge.safetensors"), "error", "huge.safetensors"),
    ("adapter for other model", adapter("ipadapter/ip-adapter-faceid_sdxl.bin"), "error", "adapter"),
    # MMFControlApply
    ("mca switch nan", mmf_apply(schedule="skeleton_then_face", switch_percent=NAN), "error", "switch_percent"),
    ("mca switch inf", mmf_apply(switch_percent=INF), "refused", "switch_percent"),
    ("mca start nan", mmf_apply(start_percent=NAN), "error", "start_percent"),
    ("mca end nan", mmf_apply(end_percent=NAN), "error", "end_percent"),
    ("mca start > end", mmf_apply(start_percent=0.9, end_percent=0.1), "error", "start_percent"),
    ("mca skeleton_strength nan", mmf_apply(skeleton_strength=NAN), "error", "skeleton_strength"),
    ("mca face_strength inf", mmf_apply(face_strength=INF), "refused", "face_strength"),
    ("mca face_strength -1", mmf_apply(face_strength=-1.0), "reject", "face_strength"),
    ("mca skeleton_map nan", {**mmf_apply(skeleton_map=BAD_IMAGE), **tensor(height=300, width=600, poison="nan")},
     "error", "skeleton_map"),
    ("mca skeleton_map inf", {**mmf_apply(skeleton_map=BAD_IMAGE), **tensor(height=300, width=600, poison="inf")},
     "error", "skeleton_map"),
    ("mca face_map nan", {**mmf_apply(face_map=BAD_IMAGE), **tensor(height=300, width=600, poison="nan")},
     "error", "face_map"),
    ("mca skeleton_map empty", {**mmf_apply(skeleton_map=BAD_IMAGE), **tensor(batch=0, height=300, width=600)},
     "error", "skeleton_map"),
    ("mca person_mask nan", {**mmf_apply(person_mask=BAD_MASK), **tensor(height=300, width=600, poison="nan")},
     "error", "person_mask"),
    ("mca person_mask -inf", {**mmf_apply(person_mask=BAD_MASK), **tensor(height=300, width=600, poison="-inf")},
     "error", "person_mask"),
    ("mca person_mask aspect", {**mmf_apply(person_mask=BAD_MASK), **tensor(height=300, width=300, fill="ones")},
     "error", "person_mask"),
    ("mca face_mask aspect", {**mmf_apply(face_mask=BAD_MASK), **tensor(height=600, width=300, fill="ones")},
     "error", "face_mask"),
    ("mca person_mask batch 3", {**mmf_apply(person_mask=BAD_MASK), **tensor(batch=3, height=300, width=600)},
     "error", "person_mask"),
    ("mca face_mask empty", {**mmf_apply(face_mask=BAD_MASK), **tensor(batch=0, height=300, width=600)},
     "error", "face_mask"),
    ("mca map without net", mmf_apply(skeleton_control_net=None), "error", "skeleton_control_net"),
    ("mca half-size mask", {**mmf_apply(person_mask=BAD_MASK), **tensor(height=150, width=300, fill="ones")},
     "finite", None),
    ("mca good together", mmf_apply(), "finite", None),
    ("mca good skeleton then face", mmf_apply(schedule="skeleton_then_face", switch_percent=0.4), "finite", None),
    ("mca empty range", mmf_apply(start_percent=0.5, end_percent=0.5), "finite", None),
    # MMFControlMaps
    ("maps min_confidence nan", maps(min_confidence=NAN), "error", "min_confidence"),
    ("maps min_confidence inf", maps(min_confidence=INF), "refused", "min_confidence"),
    ("maps min_confidence -0.5", maps(min_confidence=-0.5), "reject", "min_confidence"),
    ("maps stick_scale 0", maps(stick_scale=0), "reject", "stick_scale"),
    ("maps good", maps(), "finite", None),
    ("maps min_confidence 1", maps(min_confidence=1.0), "finite", None),
    # FaceDetectMasks
    ("detect image nan", {**detect(image=BAD_IMAGE), **poisoned("group", "nan")}, "error", "image"),
    ("detect image inf", {**detect(image=BAD_IMAGE), **poisoned("group", "inf")}, "error", "image"),
    ("detect image empty", {**detect(image=BAD_IMAGE), **tensor(batch=0)}, "error", "image"),
    ("detect image 5 channels", {**detect(image=BAD_IMAGE), **tensor(channels=5)}, "error", "image"),
    ("detect image 0 channels", {**detect(image=BAD_IMAGE), **tensor(channels=0)}, "error", "image"),
    ("detect image 0 wide", {**detect(image=BAD_IMAGE), **tensor(width=0)}, "error", "image"),
    ("detect min_face_px 0", detect(min_face_px=0), "reject", "min_face_px"),
    ("detect max_faces -1", detect(max_faces=-1), "reject", "max_faces"),
    ("detect backend unknown", detect(backend="yolo"), "reject", "backend"),
    ("detect garbage insightface", detect(backend="insightface"), "error", "scrfd_10g_bnkps.onnx"),
    ("detect no face required", {**detect(image=BAD_IMAGE, error_if_no_face=True), **tensor(fill="zeros")},
     "error", "error_if_no_face"),
    ("detect 1x1 image", {**detect(image=BAD_IMAGE), **tensor(height=1, width=1)}, "finite", None),
    ("detect gray image", {**detect(image=BAD_IMAGE), **tensor(channels=1, height=96, width=96)}, "finite", None),
    ("detect rgba image", {**detect(image=BAD_IMAGE), **tensor(channels=4, height=96, width=96)}, "finite", None),
    ("detect blank batch of 3", {**detect(image=BAD_IMAGE), **tensor(batch=3, fill="ones")}, "finite", None),
    ("detect good", detect(), "finite", None),
    ("detect big dilation", detect(dilation_px=64, feather_px=64), "finite", None),
    # IdentityFromImages (dlib: real, shipped weights)
    ("identity images nan", {**identity(images=BAD_IMAGE), **poisoned("person_a", "nan")}, "error", "images"),
    ("identity images empty", {**identity(images=BAD_IMAGE), **tensor(batch=0)}, "error", "images"),
    ("identity no face", {**identity(images=BAD_IMAGE), **tensor(fill="zeros")}, "error", "reference image 1"),
    ("identity arcface garbage", identity(backend="arcface"), "error", "glintr100.onnx"),
    ("identity backend unknown", identity(backend="facenet"), "reject", "backend"),
    ("identity good", identity(), "finite", None),
    # IDSimilarity (dlib identities)
    ("similarity image nan", {**similarity(image=BAD_IMAGE), **poisoned("group", "nan")}, "error", "image"),
    ("similarity image_before nan", {**similarity(image_before=BAD_IMAGE), **poisoned("group", "nan")},
     "error", "image_before"),
    ("similarity image_before inf", {**similarity(image_before=BAD_IMAGE), **poisoned("group", "inf")},
     "error", "image_before"),
    ("similarity image_before size", {**similarity(image_before=["repair", 0])}, "error", "image_before"),
    ("similarity image empty", {**similarity(image=BAD_IMAGE), **tensor(batch=0)}, "error", "image"),
    ("similarity faces of other image", similarity(image=["repair", 0]), "error", "faces"),
    ("similarity assignment unknown", similarity(assignment="nearest"), "reject", "assignment"),
    ("similarity good", similarity(image_before=["group", 0]), "finite", None),
    ("similarity no faces given", similarity(faces=None), "finite", None),
    # KinIDBlend
    ("kin resemblance nan", kin(resemblance=NAN), "error", "resemblance"),
    ("kin resemblance 2", kin(resemblance=2.0), "reject", "resemblance"),
    ("kin age unknown", kin(age="elder"), "reject", "age"),
    ("kin good", kin(resemblance=0.3, seed=7), "finite", None),
    # DDIMInvert
    ("invert latent nan", {**ddim_invert(latent_image=BAD_LATENT), **tensor(poison="nan")}, "error", "latent_image"),
    ("invert latent inf", {**ddim_invert(latent_image=BAD_LATENT), **tensor(poison="inf")}, "error", "latent_image"),
    ("invert latent empty", {**ddim_invert(latent_image=BAD_LATENT), **tensor(batch=0)}, "error", "latent_image"),
    ("invert latent zeros", {**ddim_invert(latent_image=BAD_LATENT), **tensor(fill="zeros")}, "error", "latent_image"),
    ("invert latent 5 channels", {**ddim_invert(latent_image=BAD_LATENT), **tensor(channels=5)}, "error",
     "latent_image"),
    ("invert cfg nan", ddim_invert(cfg=NAN), "error", "cfg"),
    ("invert cfg inf", ddim_invert(cfg=INF), "refused", "cfg"),
    ("invert denoise nan", ddim_invert(denoise=NAN), "error", "denoise"),
    ("invert steps 0", ddim_invert(steps=0), "reject", "steps"),
    ("invert refinement -1", ddim_invert(refinement=-1), "reject", "refinement"),
    ("invert scheduler unknown", ddim_invert(scheduler="fancy"), "reject", "scheduler"),
    ("invert good", ddim_invert(), "finite", None),
    ("invert denoise 0", ddim_invert(denoise=0.0), "error", "denoise"),
    # IDRestore
    ("restore image nan", {**id_restore(image=BAD_IMAGE), **poisoned("repair", "nan")}, "error", "image"),
    ("restore image inf", {**id_restore(image=BAD_IMAGE), **poisoned("repair", "inf")}, "error", "image"),
    ("restore image empty", {**id_restore(image=BAD_IMAGE), **tensor(batch=0)}, "error", "image"),
    ("restore faces of other image", id_restore(faces=["faces", 0]), "error", "faces"),
    ("restore image batch 2", {**id_restore(image=BAD_IMAGE), **tensor(batch=2, height=384, width=256)},
     "error", "faces"),
    ("restore cfg nan", id_restore(cfg=NAN), "error", "cfg"),
    ("restore cfg inf", id_restore(cfg=INF), "refused", "cfg"),
    ("restore strength nan", id_restore(strength=NAN), "error", "strength"),
    ("restore context nan", id_restore(context=NAN), "error", "context"),
    ("restore control_strength nan", id_restore(control_net=["cn", 0], control_strength=NAN), "error",
     "control_strength"),
    ("restore faces_to_restore 999", id_restore(faces_to_restore="999"), "error", "faces_to_restore"),
    ("restore faces_to_restore -1", id_restore(faces_to_restore="-1"), "error", "faces_to_restore"),
    ("restore faces_to_restore word", id_restore(faces_to_restore="0, left"), "error", "faces_to_restore"),
    ("restore faces_to_restore 0.5", id_restore(faces_to_restore="0.5"), "error", "faces_to_restore"),
    ("restore zoom_size 100", id_restore(zoom_size=100), "reject", "zoom_size"),
    ("restore steps 0", id_restore(steps=0), "reject", "steps"),
    ("restore feather -1", id_restore(feather=-1), "reject", "feather"),
    ("restore good", id_restore(), "finite", None),
    ("restore one face", id_restore(faces_to_restore="1"), "finite", None),
    ("restore with control", id_restore(control_net=["cn", 0]), "finite", None),
    ("restore strength 0", id_restore(strength=0.0), "finite", None),
    ("restore identities patched", id_restore(model=["mia", 0], faces=["repair_faces", 0]) | {
        "mia": ("MultiIDApply", {"model": ["ckpt", 0], "adapter": ["adapter", 0], "identities": ["ids", 0],
                                 "faces": ["repair_faces", 0], "weight": 1.0, "start_percent": 0.0,
                                 "end_percent": 1.0})}, "finite", None),
]


def build_prompt(object_info: dict, parts: dict) -> dict:
    """The API prompt: the base graph with the case's nodes laid over it, defaults filled in,
    inputs set to None dropped, and only what the probe (or the failing node) needs kept."""
    graph = {**base_graph(), **parts}
    prompt = {}
    for node_id, (class_type, inputs) in graph.items():
        merged = {**_defaults(object_info, class_type), **inputs}
        prompt[node_id] = {"class_type": class_type, "inputs": {k: v for k, v in merged.items() if v is not None}}
    needed, todo = set(), ["probe" if "probe" in prompt else next(iter(parts))]
    while todo:
        node_id = todo.pop()
        if node_id in needed:
            continue
        needed.add(node_id)
        todo += [v[0] for v in prompt[node_id]["inputs"].values() if isinstance(v, list) and len(v) == 2
                 and isinstance(v[0], str) and v[0] in prompt]
    return {k: v for k, v in prompt.items() if k in needed}


def post_prompt(server, prompt: dict) -> tuple[int, dict]:
    body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}, allow_nan=True).encode()
    req = urllib.request.Request(server.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for(server, prompt_id: str, timeout: float = 300.0) -> dict | None:
    """The prompt's history entry once it has finished; None (after interrupting it) past ``timeout``."""
    entry = server.finished(prompt_id, timeout)
    if entry is None:
        interrupt(server)
    return entry


def interrupt(server) -> None:
    urllib.request.urlopen(urllib.request.Request(server.url + "/interrupt", data=b"", method="POST"), timeout=30)


def execution_error(entry: dict) -> dict | None:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


def test_the_table_covers_every_node_and_a_hundred_cases():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)
    classes = {cls for _, parts, _, _ in CASES for cls, _ in parts.values()}
    pack_nodes = {"FaceDetectMasks", "MultiIDApply", "DDIMInvert", "IDRestore", "IDSimilarity",
                  "IdentityFromImages", "KinIDBlend", "MMFControlMaps", "MMFControlApply", "MagicIDAdapterLoader"}
    assert pack_nodes <= classes


def test_every_bad_input_gets_a_clear_answer(server):
    failures, seconds = [], {}
    for case_id, parts, expect, names in CASES:
        started = time.time()
        prompt = build_prompt(server.object_info, parts)
        status, reply = post_prompt(server, prompt)
        if expect == "reject" or (expect == "refused" and status != 200):
            text = json.dumps(reply)
            if status != 400 or names not in text:
                failures.append(f"{case_id}: expected a rejection naming {names!r}, got {status} {text[:300]}")
        elif status != 200:
            failures.append(f"{case_id}: rejected ({status}) but should run: {json.dumps(reply)[:400]}")
        else:
            entry = wait_for(server, reply["prompt_id"])
            if entry is None:
                failures.append(f"{case_id}: still running after five minutes (interrupted)")
                wait_for(server, reply["prompt_id"])
                continue
            error = execution_error(entry)
            if expect in ("error", "refused"):
                message = "" if error is None else error.get("exception_message", "")
                if error is None:
                    failures.append(f"{case_id}: ran without error; expected one naming {names!r}")
                elif names not in message or "Traceback" in message:
                    failures.append(f"{case_id}: the error does not name {names!r}: "
                                    f"{error.get('exception_type')}: {message[:300]}")
            else:
                probed = entry.get("outputs", {}).get("probe", {}).get("finite")
                if error is not None or not probed:
                    failures.append(f"{case_id}: expected finite outputs, got "
                                    f"{error and (error.get('exception_type'), error.get('exception_message', '')[:300])}")
        assert "system" in server.get("/system_stats"), f"the server stopped answering after {case_id}"
        seconds[case_id] = time.time() - started
    slowest = sorted(seconds, key=seconds.get, reverse=True)[:5]     # for the log only, never asserted
    print(f"{len(CASES)} cases in {sum(seconds.values()):.0f} s; slowest: "
          + ", ".join(f"{case_id} {seconds[case_id]:.1f} s" for case_id in slowest))
    assert not failures, f"{len(failures)} of {len(CASES)} cases:\n" + "\n".join(failures)


def test_interrupt_stops_a_long_restore_within_seconds(server):
    parts = id_restore(steps=200, refinement=100, zoom_size=256, strength=1.0)   # hours of work, uncancelled
    status, reply = post_prompt(server, build_prompt(server.object_info, parts))
    assert status == 200, reply
    deadline = time.time() + 120
    while not _running(server) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(5.0)                     # well into the restore (its inputs are cached from the table)
    assert _running(server), "the long restore finished or never started"
    interrupt(server)
    stopped = time.time()
    while _running(server) and time.time() - stopped < 60:
        time.sleep(0.1)
    waited = time.time() - stopped
    print(f"idle {waited:.1f} s after /interrupt")
    assert not _running(server), "the server was still busy a minute after /interrupt"
    assert waited < 15, f"the server took {waited:.1f}s to stop after /interrupt"
    entry = wait_for(server, reply["prompt_id"], timeout=30)
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    assert "system" in server.get("/system_stats")


def _running(server) -> bool:
    return bool(server.get("/queue")["queue_running"])
