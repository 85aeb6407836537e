"""IDRestore on Flux.1 inside a real ComfyUI: ComfyUI's own Flux class (tiny widths, Flux.1's 19 + 38
blocks), a 16-channel TAESD-layout VAE, real faces found by FaceDetectMasks, guidance-distilled
sampling (FluxGuidance on the positive, cfg auto = 1, no negative), and MultiIDApply's Flux patch.

Every 8-bit pixel outside the feathered face masks is the input's; the faces change.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.diffusion.restore_plan import RestoreSettings, plan_faces
from magicid_core.diffusion.token_identities import TokenIdentities
from magicid_core.faces.records import FaceSet, ImageFaces
from magicid_core.identity.pulid_flux import IDFormer, PulidCrossAttention, PulidFlux, hooked_blocks
from tests.host.tiny_models import TINY_FLUX, flux_conditioning, tiny_flux_model, tiny_vae
from tests.support.face_scenes import sizes_scene

SETTINGS = dict(zoom_size=256, context=0.4, feather=3)


@pytest.fixture(scope="module")
def scene(comfy_nodes):
    """Real faces of 48 and 96 px on a backdrop, and the FACES that FaceDetectMasks finds in it."""
    image, _ = sizes_scene((48, 96))
    image = np.ascontiguousarray(image[20:441, :700]).astype(np.float32) / 255
    detect = comfy_nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"]()
    faces = detect.detect(torch.from_numpy(image)[None], "auto", 16, "face", 4, 8, 0, "left_to_right", True)["result"][0]
    assert len(faces[0].faces) >= 2, "FaceDetectMasks did not find the scene's faces"
    return image, faces


@pytest.fixture(scope="module")
def flux(comfy_nodes):
    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    (positive,) = classes["FluxGuidance"]().execute(flux_conditioning(1), 3.5)
    return classes, tiny_flux_model(seed=7), tiny_vae(seed=1, latent_channels=16), positive


def host_module(classes, name):
    return sys.modules[classes["IDRestore"].__module__.rsplit(".", 1)[0] + ".host." + name]


def run_node(flux, image, faces, model=None, faces_to_restore="all", **optional):
    classes, base, vae, positive = flux
    node = classes["IDRestore"]()
    out, preview, report = node.restore(image=torch.from_numpy(image)[None], faces=faces, model=model or base,
                                        vae=vae, positive=positive, steps=4, strength=0.5, cfg=0.0,
                                        scheduler="simple", refinement=1, faces_to_restore=faces_to_restore,
                                        **SETTINGS, **optional)
    return out[0].numpy(), report


def outside(image, faces, indices=None):
    jobs, _ = plan_faces([image], faces, RestoreSettings(**SETTINGS), indices, latent_scale=16)
    return np.max([job.full_mask() for job in jobs], axis=0) == 0


def to_8bit(image):
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def test_flux_restore_keeps_every_8bit_pixel_outside_the_masks(flux, scene):
    image, faces = scene
    out, report = run_node(flux, image, faces)
    keep = outside(image, faces)
    changed = to_8bit(out) != to_8bit(image)
    print(f"Flux restore: {int(changed[keep].sum())} 8-bit values changed outside the masks, "
          f"{int(changed[~keep].sum())} inside\n{report}")
    assert int(changed[keep].sum()) == 0 and np.array_equal(out[keep], image[keep])
    assert int(changed[~keep].sum()) > 0
    assert report.count("restored") == len(faces[0].faces)


def tiny_pulid(seed=0) -> PulidFlux:
    """A PuLID-Flux at the tiny Flux's width, seeded (the identity's tokens are the input here)."""
    gen = torch.Generator().manual_seed(seed)
    cas = torch.nn.ModuleList(PulidCrossAttention(TINY_FLUX["hidden_size"], 32, 2) for _ in hooked_blocks(19, 38))
    for p in cas.parameters():
        p.data.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return PulidFlux(IDFormer(dim=64, depth=1, heads=1, output_dim=32), cas, "tiny PuLID-Flux")


def test_identity_of_a_multi_id_flux_model_is_cropped_to_its_face(flux, scene):
    classes, base, _, _ = flux
    image, faces = scene
    dit = host_module(classes, "dit")
    first = faces[0].faces[0]
    mask = first.full_mask(*image.shape[:2])[None]
    identities = TokenIdentities(torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(2)), mask, [1.0])
    patched = dit.add_pulid_identities(base, identities, tiny_pulid(), hooked_blocks(19, 38))
    out, report = run_node(flux, image, faces, model=patched)
    assert f"face {first.index}: restored" in report and "no identity" in report     # the other face is left
    keep = outside(image, faces, [first.index])
    assert np.array_equal(out[keep], image[keep])
    plain, _ = run_node(flux, image, faces, faces_to_restore=str(first.index))
    assert not np.array_equal(out[~keep], plain[~keep])             # the identity acted inside its face
    # the crop's identity owns tokens of the crop's own grid, none elsewhere
    restore = host_module(classes, "dit_restore")
    x0, y0, x1, y1 = first.box
    cropped = restore.cropped_identities(identities, (x0 - 20, y0 - 20, x1 + 20, y1 + 20), (256, 256))
    owned = cropped.owned_tokens(16, 16)[0]
    assert 0 < len(owned) < 256
    assert restore.cropped_identities(identities, (0, 0, 10, 10), (256, 256)) is None   # a crop off the face


def test_unsupported_family_and_missing_negative_are_refused(flux, scene):
    import comfy.model_patcher
    import comfy.supported_models

    classes, model, vae, positive = flux
    image, faces = scene

    def restore(model, cfg):
        return classes["IDRestore"]().restore(image=torch.from_numpy(image)[None], faces=faces, model=model, vae=vae,
                                              positive=positive, steps=4, strength=0.5, cfg=cfg, scheduler="simple",
                                              refinement=1, faces_to_restore="all", **SETTINGS)
    with pytest.raises(ValueError, match="negative is not connected but cfg is 3"):
        restore(model, 3.0)
    config = comfy.supported_models.SD3({"in_channels": 16, "patch_size": 2, "depth": 1, "adm_in_channels": 32,
                                         "pos_embed_scaling_factor": None, "num_patches": 64,
                                         "pos_embed_max_size": 8, "context_embedder_config": {
                                             "target": "torch.nn.Linear",
                                             "params": {"in_features": 32, "out_features": 64}}})
    sd3 = comfy.model_patcher.ModelPatcher(config.get_model({}, device=torch.device("cpu")), torch.device("cpu"),
                                           torch.device("cpu"))
    latent = {"samples": torch.randn(1, 16, 8, 8)}
    for node, call in (("IDRestore", lambda: restore(sd3, 1.0)),
                       ("DDIMInvert", lambda: classes["DDIMInvert"]().invert(sd3, positive, latent, 4, "simple",
                                                                             0.5, 1.0, 1))):
        with pytest.raises(ValueError, match=f"^{node} works on .* this model is SD3, which it does not support"):
            call()


def test_a_flux_controlnet_steers_the_face_and_leaves_the_background_to_the_bit(flux, scene):
    """A Flux ControlNet as ComfyUI's loader makes one (InstantX / Union layout: ComfyUI's ControlNetFlux,
    the landmark map VAE-encoded) on IDRestore's control_net input: it acts on the regeneration, so the face
    differs from the uncontrolled restore; every 8-bit pixel outside the feathered mask is the input's."""
    from tests.host.tiny_controlnet import tiny_flux_controlnet

    image, faces = scene
    one = FaceSet([ImageFaces(*image.shape[:2], [max(faces[0].faces, key=lambda f: f.width)])])
    plain, _ = run_node(flux, image, one)
    for control_net in (tiny_flux_controlnet(), tiny_flux_controlnet(union_modes=10)):
        controlled, report = run_node(flux, image, one, control_net=control_net, control_strength=1.0)
        assert "restored" in report
        keep = outside(image, one)
        assert np.array_equal(controlled[keep], image[keep])
        steered = np.abs(controlled[~keep] - plain[~keep])
        print(f"Flux ControlNet ({control_net.control_model.num_union_modes} union modes): face moved by up to "
              f"{steered.max():.3g} from the uncontrolled restore")
        assert steered.max() > 1e-3
