"""MultiIDApply with IP-Adapter FaceID Plus / Plus v2 against IPAdapter_plus's IPAdapterFaceID, in a real ComfyUI.

The same seeded file (``image_proj`` from IPAdapter_plus's own ``ProjModelFaceIdPlus``, to_k_ip / to_v_ip
and FaceID's LoRA keys; ``.bin`` and ``.safetensors``; ``plusv2`` in the name, as IPAdapter_plus tells v2),
the same face vector, the same reference photo with the same 5 keypoints (the references' insightface
stand-in gives them) and the same CLIP vision model (a tiny seeded ComfyUI ClipVisionModel) go through
both. Ours crops the face, encodes it and builds the identity (IdentityFromImages' code path); the
reference does all of that inside IPAdapterFaceID. The denoised latents of the first, a middle and the
last step agree within 1e-5 (the shared TOLERANCE of test_peer_parity.py), with the reference's middle
patch moved to the key ComfyUI fires (and, as shipped, with our middle block off), on SD1.5 and SDXL.
Several identities in disjoint masks each get what IPAdapterFaceID gives that identity alone.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.host.test_peer_parity import (CONTEXT, KPS, PEERS, PEERS_DIR, FaceAnalysisStandIn, _missing_peers,
                                         base_model, check_close, denoised_steps, face_set, full_mask, max_diff,
                                         middle_moved_to_firing_key, our_identity, quadrants, raw_embedding,
                                         without_middle)
from tests.host.tiny_models import tiny_clip_vision
from tests.support.faceid_plus_reference import faceid_plus_state_dict, reference_missing
from tests.support.mgmica_layouts import flatten

_SKIP = _missing_peers() or reference_missing()
pytestmark = pytest.mark.skipif(bool(_SKIP), reason=_SKIP or "peers present")

CLIP_WIDTH = 32          # tiny_clip_vision's hidden size: the adapter's perceiver reads it


@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    """This pack's and IPAdapter_plus's node classes, a models/ipadapter folder, one CLIP vision model."""
    import folder_paths

    if "IPAdapterFaceID" not in comfy_nodes.NODE_CLASS_MAPPINGS:
        loaded = asyncio.run(comfy_nodes.load_custom_node(str(Path(PEERS_DIR, PEERS["ipadapter"]))))
        assert loaded, "ComfyUI's custom-node loader failed to load ComfyUI_IPAdapter_plus (see the log above)"
    folder = tmp_path_factory.mktemp("ipadapter_plus")
    folder_paths.add_model_folder_path("ipadapter", str(folder))
    return SimpleNamespace(classes=comfy_nodes.NODE_CLASS_MAPPINGS, folder=folder, clip_vision=tiny_clip_vision(seed=4),
                           models={}, layers={}, adapters={})


def write_plus(host, family: str, variant: str, fmt: str) -> str:
    """A seeded FaceID Plus ("plus") or Plus v2 ("plusv2") file in models/ipadapter; returns its name."""
    from tests.host.test_peer_parity import layer_widths

    model = base_model(host, family)
    name = f"tiny-faceid-{variant}_{family}.{fmt}"
    path = host.folder / name
    if not path.exists():
        state, _ = faceid_plus_state_dict(layer_widths(model), CONTEXT[family], CLIP_WIDTH,
                                          seed={"plus": 61, "plusv2": 62}[variant])
        if fmt == "bin":
            torch.save(state, path)
        else:
            from safetensors.torch import save_file
            save_file(flatten(state), str(path))
        del state
    return name


def reference_photo(seed: int) -> torch.Tensor:
    """A 64 px IMAGE; the references' insightface stand-in puts the face's keypoints at KPS in it."""
    return torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(seed))


def plus_identity(host, raw: np.ndarray, photo: torch.Tensor, name: str = "ref"):
    """What IdentityFromImages builds with clip_vision connected, for a face at KPS in ``photo``:
    the unit ArcFace vector and the CLIP features of its aligned crops (224 and 256 px)."""
    from magicid_core.identity.face_clip import face_clip_embedding, face_crops

    pack_nodes = host.classes["MultiIDApply"].__module__.rsplit(".", 1)[0]   # the pack as ComfyUI loaded it
    encoder = importlib.import_module(pack_nodes + ".host.clip_vision").ComfyFaceCLIPEncoder(host.clip_vision)
    identity = our_identity(raw)
    identity.name = name
    # both sides read the same vector: insightface's normed_embedding is ours bit for bit
    np.testing.assert_array_equal(FaceAnalysisStandIn(raw).get(None)[0].normed_embedding, identity.embedding)
    identity.face_clip = face_clip_embedding([face_crops(photo[0].numpy(), KPS)], encoder)
    return identity


def adapter(host, name):
    if name not in host.adapters:
        (host.adapters[name],) = host.classes["MagicIDAdapterLoader"]().load(f"ipadapter/{name}")
    return host.adapters[name]


def ours(host, family, name, identities, faces, weight=0.8, weight_faceidv2=1.0, **kw):
    return host.classes["MultiIDApply"]().apply(base_model(host, family), adapter(host, name), identities, faces,
                                                weight, 0.0, 1.0, weight_faceidv2=weight_faceidv2, **kw)[0]


def ipadapter_faceid(host, model, name, raw, photo, weight=0.8, weight_faceidv2=1.0, mask=None):
    (ipadapter,) = host.classes["IPAdapterModelLoader"]().load_ipadapter_model(name)
    return host.classes["IPAdapterFaceID"]().apply_ipadapter(
        model, ipadapter, start_at=0.0, end_at=1.0, weight=weight, weight_faceidv2=weight_faceidv2,
        weight_type="linear", combine_embeds="concat", image=photo, clip_vision=host.clip_vision,
        insightface=FaceAnalysisStandIn(raw), embeds_scaling="V only", attn_mask=mask)[0]


PLUS_CASES = [  # (family, variant, file format, weight_faceidv2): both kinds and formats on both families
    ("sd15", "plus", "bin", 1.0), ("sd15", "plusv2", "safetensors", 1.0), ("sd15", "plusv2", "safetensors", 2.5),
    ("sdxl", "plus", "safetensors", 1.0), ("sdxl", "plusv2", "bin", 1.0), ("sdxl", "plusv2", "bin", 0.4),
]


@pytest.mark.parametrize("family,variant,fmt,v2_weight", PLUS_CASES)
def test_plus_one_identity_full_mask_equals_ipadapter_faceid(host, family, variant, fmt, v2_weight):
    name = write_plus(host, family, variant, fmt)
    assert adapter(host, name).kind == f"faceid_{variant}"
    raw, photo = raw_embedding(seed=71, norm=26.0), reference_photo(seed=5)
    mine = ours(host, family, name, [plus_identity(host, raw, photo)], face_set(64, [full_mask()]),
                weight_faceidv2=v2_weight)
    shipped = ipadapter_faceid(host, base_model(host, family), name, raw, photo, weight_faceidv2=v2_weight)
    label = f"IPAdapter_plus FaceID {variant} {family} {fmt} weight_faceidv2 {v2_weight:g}"
    check_close(f"{label}, reference middle patch moved to the firing key",
                denoised_steps(mine, family), denoised_steps(middle_moved_to_firing_key(shipped), family))
    check_close(f"{label}, as shipped, our middle block off",
                denoised_steps(without_middle(mine), family), denoised_steps(shipped, family))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_plus_v2_reads_the_face_photo_and_weight_faceidv2(host, family):
    """The agreement above is not between two pictures that ignore the CLIP features: another photo of the
    face, or another weight_faceidv2, moves the latents."""
    name = write_plus(host, family, "plusv2", "bin" if family == "sdxl" else "safetensors")
    raw = raw_embedding(seed=71, norm=26.0)
    faces = face_set(64, [full_mask()])
    first = denoised_steps(ours(host, family, name, [plus_identity(host, raw, reference_photo(5))], faces), family)
    other_photo = denoised_steps(ours(host, family, name, [plus_identity(host, raw, reference_photo(6))], faces), family)
    other_weight = denoised_steps(ours(host, family, name, [plus_identity(host, raw, reference_photo(5))], faces,
                                       weight_faceidv2=2.0), family)
    assert max_diff(first, other_photo) > 1e-3
    assert max_diff(first, other_weight) > 1e-3


@pytest.mark.parametrize("family,variant,count", [("sd15", "plusv2", 4), ("sdxl", "plusv2", 2), ("sd15", "plus", 2)])
def test_plus_identities_in_disjoint_masks_each_get_what_ipadapter_gives_it_alone(host, family, variant, count):
    """Quadrant masks stay exactly 0/1 at every layer at 128 px, so IPAdapterFaceID applied once per identity
    with its mask gives each cell exactly its identity's residual; each identity has its own photo."""
    size = 128
    name = write_plus(host, family, variant, "safetensors" if family == "sd15" else "bin")
    raws = [raw_embedding(seed=80 + i, norm=22.0 + i) for i in range(count)]
    photos = [reference_photo(seed=90 + i) for i in range(count)]
    weights = [0.6, 0.9, 1.1, 1.3][:count]
    masks = quadrants(size)[:count]
    identities = [plus_identity(host, r, p, name=f"person {i + 1}") for i, (r, p) in enumerate(zip(raws, photos))]
    mine = ours(host, family, name, identities, face_set(size, masks), weight=1.0, weight_faceidv2=1.5,
                face_indices=", ".join(map(str, range(count))), identity_weights=", ".join(map(str, weights)))
    reference = base_model(host, family)
    for raw, photo, weight, mask in zip(raws, photos, weights, masks):
        reference = ipadapter_faceid(host, reference, name, raw, photo, weight, weight_faceidv2=1.5,
                                     mask=torch.from_numpy(mask)[None])
    check_close(f"IPAdapter_plus FaceID {variant} {family}, {count} identities in disjoint masks",
                denoised_steps(mine, family, size=size),
                denoised_steps(middle_moved_to_firing_key(reference), family, size=size))


def test_identity_from_images_carries_the_clip_features_a_plus_adapter_reads(host):
    """IdentityFromImages with clip_vision: a real photo, the dlib backend; its face_clip equals the CLIP
    features IPAdapter_plus's own code (norm_crop at 224 / 256, encode_image_masked) gives that face."""
    from magicid_core.identity.embedders import make_embedder, most_prominent
    from magicid_core.image_io import to_rgb_uint8
    from tests.support.people import grace_hopper

    reference = sys.modules[host.classes["IPAdapterFaceID"].__module__]   # as ComfyUI's loader imported it
    utils = sys.modules[f"{reference.__package__}.utils"]
    from insightface.utils import face_align

    photo = grace_hopper()
    image = torch.from_numpy(photo.astype(np.float32) / 255.0)[None]
    (identities,) = host.classes["IdentityFromImages"]().build(image, "ann", "dlib", clip_vision=host.clip_vision)["result"]
    clip = identities[0].face_clip
    kps = most_prominent(make_embedder("dlib").find_faces(to_rgb_uint8(photo))).keypoints
    bgr = utils.tensor_to_image(image)[0]
    pairs = [(clip.negative, utils.encode_image_masked(host.clip_vision, torch.zeros([1, 224, 224, 3])))]
    for size in (224, 256):
        crop = utils.image_to_tensor(face_align.norm_crop(bgr, landmark=kps, image_size=size))[None]
        pairs.append((clip.by_crop[size], utils.encode_image_masked(host.clip_vision, crop)))
    diffs = [max_diff(torch.from_numpy(ours), theirs.penultimate_hidden_states[0].float()) for ours, theirs in pairs]
    print(f"IdentityFromImages CLIP features vs IPAdapter_plus (black, 224 px, 256 px crop): max |d| = "
          f"{', '.join(f'{d:.3g}' for d in diffs)}")
    assert max(diffs) <= 1e-6


def test_plus_adapter_with_identities_built_without_clip_vision_says_what_to_connect(host):
    name = write_plus(host, "sd15", "plusv2", "safetensors")
    bare = our_identity(raw_embedding(seed=71, norm=26.0))
    with pytest.raises(ValueError, match=r"(?s)FaceID Plus v2.*CLIPVisionLoader.*IdentityFromImages' clip_vision"):
        ours(host, "sd15", name, [bare], face_set(64, [full_mask()]))
