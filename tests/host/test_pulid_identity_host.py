"""PuLID-Flux identities from photos, in ComfyUI: IdentityFromImages with MagicIDEvaClipLoader's eva_clip.

Files in the real formats, seeded, each written by its owner's code: EVA02_CLIP_L_336_psz14_s6B.pt by the
EVA-CLIP code the reference vendors (in a models/clip folder), parsing_bisenet.pth by facexlib's BiSeNet and
detection_Resnet50_Final.pth by facexlib's RetinaFace (in the folder registered as models/facexlib, by
tests/host/pulid_reference.py; the reference loads the detector but never runs it), the antelopev2 pack
placed where insightface puts it (tests/support/insightface_layouts.py), and a tiny PuLID-Flux file.
The photo is a real one (the astronaut); faces are found by the seeded antelopev2 detector through our
insightface code.

1. The whole encoder chain from the photo gives the IDFormer tokens that lldacing's ApplyPulidFlux computes
   from it: its alignment (insightface's estimate_norm + cv2), its facexlib parsing, its EVA-CLIP loader and
   vendored model on the same file, its IDFormer; insightface's FaceAnalysis is a stand-in that returns our
   detection's keypoints and raw ArcFace vector (its input). To 1e-5 of the largest value.
2. IdentityFromImages -> MultiIDApply on the tiny Flux: the identity changes the picture, and gives what
   ApplyPulidFlux gives when handed the same PulidInputs.
3. Each missing file or pack is named with its folder.
Needs timm and facexlib (python install.py --flux) and MAGICID_PEERS_DIR.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from magicid_core.insightface.arcface import l2_normalise
from tests.support.pulid_layouts import missing_reference

MISSING = ("timm and facexlib are not installed: python install.py --flux"
           if importlib.util.find_spec("timm") is None or importlib.util.find_spec("facexlib") is None
           else missing_reference())
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "present")
if not MISSING:
    pytest.importorskip("onnx", reason="the onnx package builds the seeded packs: pip install -r requirements-test.txt")

from magicid_core.identity.eva_clip import EVA_CLIP_FILE  # noqa: E402
from magicid_core.identity.face_parsing import PARSING_FILE  # noqa: E402
from tests.host.pulid_reference import (FILE, EvaClipStandIn, FaceAnalysisStandIn, load_reference,  # noqa: E402
                                        reference_module)
from tests.host.test_pulid_flux_host import SIZE, check_close, denoised_steps, pack_module  # noqa: E402
from tests.host.tiny_models import tiny_flux_model, tiny_sd15_model  # noqa: E402
from tests.support.insightface_layouts import ONE_FACE_DETECTOR, place_like_insightface  # noqa: E402
from tests.support.mask_faces import faces_from_masks  # noqa: E402
from tests.support.mgmica_layouts import faceid_state_dict  # noqa: E402
from tests.support.people import astronaut  # noqa: E402
from tests.support.pulid_layouts import eva_clip_file_state  # noqa: E402

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    """The reference loaded, the seeded files in their folders, the photo as an IMAGE."""
    import folder_paths

    work = tmp_path_factory.mktemp("pulid_identity")
    pulid_path, added = load_reference(comfy_nodes, work)   # and the facexlib files, in its models/facexlib
    assert (Path(reference_module().FACEXLIB_DIR) / PARSING_FILE).is_file()
    clip_dir = work / "clip"
    clip_dir.mkdir()
    torch.save(eva_clip_file_state(seed=7)[1], clip_dir / EVA_CLIP_FILE)
    folder_paths.add_model_folder_path("text_encoders", str(clip_dir))
    insightface_dir = work / "insightface"
    place_like_insightface(insightface_dir, "antelopev2", **ONE_FACE_DETECTOR)
    folder_paths.add_model_folder_path("insightface", str(insightface_dir))
    photo = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    yield SimpleNamespace(classes=comfy_nodes.NODE_CLASS_MAPPINGS, pulid_path=pulid_path, base=tiny_flux_model(seed=1),
                          image=torch.from_numpy(photo).float().div(255)[None], insightface_dir=insightface_dir)
    for name in added:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def eva_clip(host):
    (loaded,) = host.classes["MagicIDEvaClipLoader"]().load(EVA_CLIP_FILE)
    return loaded


@pytest.fixture(scope="module")
def identity(host, eva_clip):
    out = host.classes["IdentityFromImages"]().build(host.image, "Ann", "auto", eva_clip=eva_clip)
    (identities,) = out["result"]
    return identities[0]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def reference_tokens(host, raw: np.ndarray, kps: np.ndarray) -> torch.Tensor:
    """ApplyPulidFlux on the photo, as shipped, with its own EVA-CLIP loader and facexlib; the IDFormer tokens it
    hands its block patches."""
    classes = host.classes
    (pulid,) = classes["PulidFluxModelLoader"]().load_model(FILE)
    (eva,) = classes["PulidFluxEvaClipLoader"]().load_eva_clip()
    with torch.inference_mode():
        (model,) = classes["ApplyPulidFlux"]().apply_pulid_flux(host.base, pulid, eva, FaceAnalysisStandIn(raw, kps),
                                                                host.image, 1.0, 0.0, 1.0)
    patch = model.model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 0)]
    return patch.kwargs[0]["embedding"].float()


def test_the_encoder_chain_from_a_photo_equals_apply_pulid_flux(host, identity):
    from magicid_core.identity.embedders import most_prominent, pack_embedder
    from magicid_core.identity.face_clip import ipadapter_pixels
    from magicid_core.identity.pulid_flux import load_pulid_flux
    from magicid_core.identity.pulid_inputs import find_pulid_pack

    arcface = pack_embedder(find_pulid_pack([str(host.insightface_dir)]))
    face = most_prominent(arcface.find_faces(ipadapter_pixels(host.image[0].numpy())))
    raw = identity.pulid.arcface_raw[0]
    theirs = reference_tokens(host, raw, face.keypoints)
    ours = load_pulid_flux(host.pulid_path).tokens_of(identity.pulid)
    print(f"IDFormer tokens from the photo: max |ours - reference| / largest = {relative(ours, theirs):.3g}")
    assert ours.shape == theirs.shape
    assert relative(ours, theirs) < TOLERANCE


def sd_faceid(host):
    """A tiny SD1.5 model and an IP-Adapter FaceID file of its widths."""
    from magicid_core.identity.adapters import parse_adapter

    model = tiny_sd15_model()
    layers = pack_module(host, "host.unet").cross_attention_layers(model)
    return model, parse_adapter(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=768, seed=5),
                                "ip-adapter-faceid_sd15.bin")


def test_the_identity_also_serves_sd_adapters(host, identity):
    """Built with eva_clip, it is the same face's antelopev2 identity as without: nothing PuLID-only."""
    assert identity.embedding_model == "arcface:antelopev2" and identity.reference_count == 1
    # the same face, from the rounded pixels the identity backends read and the truncated ones PuLID reads
    assert float(identity.embedding @ l2_normalise(identity.pulid.arcface_raw[0])) > 0.99
    model, faceid = sd_faceid(host)
    patched, _ = host.classes["MultiIDApply"]().apply(model, faceid, [identity], faces_from_masks([np.ones((64, 64),
                                                      np.float32)]), 1.0, 0.0, 1.0, face_indices="0")
    assert patched is not model


def test_pulid_inputs_do_not_carry_a_dlib_identity_to_an_sd_adapter(host, identity):
    """With backend dlib the identity's own vector is dlib's (PuLID's stays antelopev2's): an ArcFace adapter
    refuses it by name, PuLID inputs or not."""
    from dataclasses import replace

    dlib_made = replace(identity, name="Dee", embedding=l2_normalise(np.ones(128, np.float32)),
                        embedding_model="dlib_resnet_v1")
    model, faceid = sd_faceid(host)
    with pytest.raises(ValueError, match="'Dee'.* came from dlib"):
        host.classes["MultiIDApply"]().apply(model, faceid, [dlib_made], faces_from_masks(
            [np.ones((64, 64), np.float32)]), 1.0, 0.0, 1.0, face_indices="0")


def test_identity_from_images_drives_multi_id_apply_on_flux(host, identity):
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"pulid/{FILE}")
    whole = [np.ones((SIZE, SIZE), np.float32)]
    model, _ = host.classes["MultiIDApply"]().apply(host.base, adapter, [identity], faces_from_masks(whole),
                                                    1.0, 0.0, 1.0, face_indices="0")
    mine = denoised_steps(model)
    assert float((mine - denoised_steps(host.base)).abs().max()) > 1e-3, "the identity must change the picture"
    # the reference handed the same inputs: the raw vector, the EVA-CLIP features
    inputs = identity.pulid
    (pulid,) = host.classes["PulidFluxModelLoader"]().load_model(FILE)
    eva = EvaClipStandIn(torch.from_numpy(inputs.eva_embedding), [torch.from_numpy(h) for h in inputs.eva_hidden])
    with torch.inference_mode():
        (theirs,) = host.classes["ApplyPulidFlux"]().apply_pulid_flux(
            host.base, pulid, eva, FaceAnalysisStandIn(inputs.arcface_raw[0]), host.image, 1.0, 0.0, 1.0)
    check_close("IdentityFromImages -> MultiIDApply", mine, denoised_steps(theirs))


# -- what is missing is named --------------------------------------------------------------------------

def test_a_missing_eva_clip_file_is_named_with_its_folders(host):
    loader = host.classes["MagicIDEvaClipLoader"]
    assert EVA_CLIP_FILE in loader.INPUT_TYPES()["required"]["eva_clip_name"][0]
    assert loader.VALIDATE_INPUTS(EVA_CLIP_FILE) is True
    message = loader.VALIDATE_INPUTS("EVA02_CLIP_L_336_psz14_s6B_gone.pt")
    assert "EVA02_CLIP_L_336_psz14_s6B_gone.pt is not there" in message and EVA_CLIP_FILE in message
    assert "clip" in message and "text_encoders" in message
    with pytest.raises(FileNotFoundError, match="put it into"):
        loader().load("EVA02_CLIP_L_336_psz14_s6B_gone.pt")


def test_a_missing_parser_file_is_named_with_its_folder(host, eva_clip, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "facexlib",
                        ([str(tmp_path / "facexlib")], folder_paths.supported_pt_extensions))
    with pytest.raises(FileNotFoundError, match=rf"{PARSING_FILE}.*{tmp_path / 'facexlib'}"):
        host.classes["IdentityFromImages"]().build(host.image, "Bo", "auto", eva_clip=eva_clip)


def test_a_missing_antelopev2_pack_is_named(host, eva_clip, tmp_path, monkeypatch):
    """buffalo_l is there, antelopev2 is not: the identity could be built, PuLID's vector cannot."""
    import folder_paths

    place_like_insightface(tmp_path / "insightface", "buffalo_l", **ONE_FACE_DETECTOR)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface",
                        ([str(tmp_path / "insightface")], folder_paths.supported_pt_extensions))
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path))
    with pytest.raises(ValueError, match="PuLID-Flux identities need insightface's antelopev2 pack.*antelopev2/"):
        host.classes["IdentityFromImages"]().build(host.image, "Cy", "auto", eva_clip=eva_clip)


def test_a_workflow_naming_a_missing_eva_clip_is_stopped_at_queue_time(comfy_server):
    """A real server's prompt validation runs the loader's VALIDATE_INPUTS: the file and its folders, before any
    node runs (ComfyUI's own "Value not in list" would name neither)."""
    import json
    import urllib.error
    import urllib.request
    import uuid

    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
              "2": {"class_type": "MagicIDEvaClipLoader", "inputs": {"eva_clip_name": EVA_CLIP_FILE}},
              "3": {"class_type": "IdentityFromImages", "inputs": {"images": ["1", 0], "name": "Ann", "backend": "auto",
                                                                   "eva_clip": ["2", 0]}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}).encode()
    request = urllib.request.Request(comfy_server.url + "/prompt", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    reply = refused.value.read().decode()
    assert refused.value.code == 400 and "node_errors" in reply
    assert f"{EVA_CLIP_FILE} is not there" in reply and "models/clip" in reply, reply[:600]
