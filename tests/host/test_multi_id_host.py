"""MultiIDApply inside a real ComfyUI: a tiny SD1.5-shaped UNet sampled with ComfyUI's KSampler."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces

from tests.host.tiny_models import text_conditioning, tiny_sd15_model

from tests.support.mgmica_layouts import faceid_state_dict

SIZE = 64  # image pixels: latent 8x8, the tiny UNet attends at 8x8 and 4x4


def disc(cx, cy, r):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)


def two_faces(mask_size=SIZE) -> FaceSet:
    faces = []
    for i, (cx, cy, r) in enumerate([(18, 26, 10), (46, 30, 7)]):
        box = np.array([cx - r, cy - r, cx + r, cy + r], np.float32)
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32),
                          head_box=box, mask=disc(cx, cy, r)[:mask_size, :mask_size]))
    return FaceSet([ImageFaces(SIZE, SIZE, faces)])


def identities(n=2, dim=512):
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        e = rng.normal(size=dim).astype(np.float32)
        out.append(Identity(name=f"p{i}", embedding=e / np.linalg.norm(e), embedding_model="arcface:test"))
    return out


def pack_module(classes):
    """The pack's nodes/multi_id_apply.py as ComfyUI's loader imported it."""
    return sys.modules[classes["MultiIDApply"].__module__]


@pytest.fixture(scope="module")
def setup(comfy_nodes, tmp_path_factory):
    """Node classes, the tiny model, its layers, and an adapter loaded from models/ipadapter."""
    import folder_paths

    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    model = tiny_sd15_model(seed=0)
    pack = pack_module(classes)
    layers = pack.cross_attention_layers(model)
    folder = tmp_path_factory.mktemp("ipadapter")
    # The tiny UNet is SD1.5-shaped (768-wide text) with 32/64-wide layers: an adapter to match.
    torch.save(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=768, seed=5),
               folder / "tiny-faceid.bin")
    pack.register_adapter_folders()
    folder_paths.add_model_folder_path("ipadapter", str(folder))
    assert "ipadapter/tiny-faceid.bin" in classes["MagicIDAdapterLoader"].INPUT_TYPES()["required"]["adapter_file"][0]
    (adapter,) = classes["MagicIDAdapterLoader"]().load("ipadapter/tiny-faceid.bin")
    return {"nodes": comfy_nodes, "apply": classes["MultiIDApply"](), "model": model,
            "layers": layers, "adapter": adapter, "pack": pack}


def sample(setup, model, seed=7, cfg=3.0, batch=2, steps=3):
    nodes = setup["nodes"]
    (latent,) = nodes.EmptyLatentImage().generate(SIZE, SIZE, batch)
    (out,) = nodes.KSampler().sample(model, seed, steps, cfg, "euler", "normal",
                                     text_conditioning(1), text_conditioning(2), latent)
    return out["samples"]


def apply(setup, **kw):
    args = dict(model=setup["model"], adapter=setup["adapter"], identities=identities(), faces=two_faces(),
                weight=1.0, start_percent=0.0, end_percent=1.0)
    args.update(kw)
    return setup["apply"].apply(**args)[0]


def test_tiny_unet_layers_include_the_middle_block(setup):
    keys = [key for key, _, _ in setup["layers"]]
    assert ("middle", 0, 0) in keys and len(keys) == 7       # input 1, 3; output 0-3; middle
    assert setup["pack"].coarsest_layer_size(setup["model"], SIZE, SIZE) == (4, 4)


def test_ownership_preview_output(setup):
    model, preview = setup["apply"].apply(setup["model"], setup["adapter"], identities(), two_faces(),
                                          1.0, 0.0, 1.0)
    assert preview.shape == (1, SIZE, SIZE, 3) and torch.isfinite(preview).all()
    bright = {tuple(np.round(c, 2)) for c in preview[0].reshape(-1, 3).numpy() if c.max() > 0.5}
    assert len(bright) == 2                                   # both identities own cells at 4x4


def test_patch_fires_on_every_cross_attention_layer_with_cfg_and_batch_2(setup):
    """A recorder attn2 patch sits under MultiIDApply: ComfyUI calls ours, ours stacks on it."""
    seen, branches, residual_keys = set(), set(), set()

    def recorder(q, k, v, extra_options):
        seen.add((extra_options["block"][0], extra_options["block"][1], extra_options["block_index"]))
        branches.update(extra_options["cond_or_uncond"])
        from comfy.ldm.modules.attention import optimized_attention
        return optimized_attention(q, k, v, extra_options["n_heads"])

    base = setup["model"].clone()
    for key, _, _ in setup["layers"]:
        base.set_model_attn2_replace(recorder, *key)
    patched = apply(setup, model=base)
    ours = {p for p in patched.model_options["transformer_options"]["patches_replace"]["attn2"].values()}
    assert len(ours) == 1 and type(next(iter(ours))).__name__ == "MultiIDAttention"
    patch = next(iter(ours))
    owned_residual = patch._owned_residual

    def observed(q, extra_options):   # watch the identity residual of our patch per layer, unchanged
        rows, added = owned_residual(q, extra_options)
        if len(rows) and added.abs().max() > 0:
            residual_keys.add((extra_options["block"][0], extra_options["block"][1], extra_options["block_index"]))
        return rows, added

    patch._owned_residual = observed
    out = sample(setup, patched, batch=2, cfg=3.0)
    expected = {key for key, _, _ in setup["layers"]}
    assert seen == expected and residual_keys == expected
    assert branches == {0, 1}                                  # cond and uncond both went through
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_sampling_is_deterministic_and_identity_changes_the_picture(setup):
    patched = apply(setup)
    a, b = sample(setup, patched, seed=11), sample(setup, patched, seed=11)
    assert torch.equal(a, b)
    assert not torch.allclose(a, sample(setup, setup["model"], seed=11))


def test_weight_zero_and_unassigned_identities_leave_the_model_exactly_unchanged(setup):
    plain = sample(setup, setup["model"], seed=5)
    assert torch.equal(sample(setup, apply(setup, weight=0.0), seed=5), plain)
    assert torch.equal(sample(setup, apply(setup, face_indices="-1, -1"), seed=5), plain)


def tiny_controlnet(seed=1):
    """A ControlNet of the tiny UNet's shape (3-channel hint), seeded, wrapped as ComfyUI does."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops
    import comfy.supported_models
    from tests.host.tiny_models import TINY_SD15_UNET, _seed_weights

    # the UNet config as ComfyUI completes it for SD1.5 (heads etc.), less the output channels
    unet_config = comfy.supported_models.SD15(dict(TINY_SD15_UNET)).unet_config
    config = {k: v for k, v in unet_config.items() if k != "out_channels"}
    net = comfy.cldm.cldm.ControlNet(**config, hint_channels=3, dtype=torch.float32,
                                     device=torch.device("cpu"), operations=comfy.ops.disable_weight_init)
    _seed_weights(net, seed)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))


def test_composes_with_a_controlnet(setup):
    """ControlNets never see the attn2 patch; the identity still acts, and weight 0 is still exact."""
    nodes = setup["nodes"]
    hint = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    positive, negative = nodes.ControlNetApplyAdvanced().apply_controlnet(
        text_conditioning(1), text_conditioning(2), tiny_controlnet(), hint, 1.0, 0.0, 1.0)[:2]

    def run(model):
        (latent,) = nodes.EmptyLatentImage().generate(SIZE, SIZE, 2)
        return nodes.KSampler().sample(model, 3, 3, 3.0, "euler", "normal", positive, negative, latent)[0]["samples"]

    with_control = run(setup["model"])
    assert not torch.equal(with_control, sample(setup, setup["model"], seed=3))   # the ControlNet acts
    both = run(apply(setup))
    assert torch.isfinite(both).all() and not torch.allclose(both, with_control)
    assert torch.equal(run(apply(setup, weight=0.0)), with_control)


def test_crop_helper_reregisters_a_cropped_patch(setup):
    patched = apply(setup)
    zoomed = setup["pack"].crop_multi_id_patches(patched, (4, 12, 36, 44), (SIZE, SIZE))
    patches = {p for p in zoomed.model_options["transformer_options"]["patches_replace"]["attn2"].values()}
    assert len(patches) == 1
    crop = next(iter(patches))
    assert crop.masks.shape == (1, SIZE, SIZE)                   # only the first face is in the box
    assert torch.isfinite(sample(setup, zoomed)).all()
    assert setup["pack"].crop_multi_id_patches(setup["model"], (0, 0, 8, 8), (8, 8)) is setup["model"]


def test_bad_inputs_are_clear_errors(setup):
    with pytest.raises(ValueError, match="dlib 128-d"):
        apply(setup, identities=identities(dim=128))
    with pytest.raises(ValueError, match="only 2 faces"):
        apply(setup, identities=identities(3))
    with pytest.raises(ValueError, match="no faces"):
        apply(setup, faces=FaceSet([ImageFaces(SIZE, SIZE, [])]))
    with pytest.raises(ValueError, match="masks must be in the image's pixels"):
        apply(setup, faces=two_faces(mask_size=32))
    empty = two_faces()
    empty[0].faces[1].mask = np.zeros((SIZE, SIZE), np.float32)
    with pytest.raises(ValueError, match="empty"):
        apply(setup, faces=empty)
    with pytest.raises(ValueError, match="does not fit"):
        from magicid_core.identity.adapters import parse_adapter
        apply(setup, adapter=parse_adapter(faceid_state_dict(), "ip-adapter-faceid_sd15.bin"))
