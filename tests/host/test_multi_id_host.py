"""MultiIDApply inside a real ComfyUI: a tiny SD1.5-shaped UNet sampled with ComfyUI's KSampler."""

from __future__ import annotations

import importlib
import importlib.util
import os
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


def pack_module(classes, name):
    """A module of the pack's nodes/ package as ComfyUI's loader imported it, e.g. "host.unet"."""
    return importlib.import_module(classes["MultiIDApply"].__module__.rsplit(".", 1)[0] + "." + name)


@pytest.fixture(scope="module")
def setup(comfy_nodes, tmp_path_factory):
    """Node classes, the tiny model, its layers, and an adapter loaded from models/ipadapter."""
    import folder_paths

    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    model = tiny_sd15_model(seed=0)
    pack = {name: pack_module(classes, f"host.{name}") for name in ("unet", "attn2", "folders")}
    layers = pack["unet"].cross_attention_layers(model)
    folder = tmp_path_factory.mktemp("ipadapter")
    # The tiny UNet is SD1.5-shaped (768-wide text) with 32/64-wide layers: an adapter to match.
    torch.save(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=768, seed=5),
               folder / "tiny-faceid.bin")
    pack["folders"].register_adapter_folders()
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
    assert setup["pack"]["unet"].coarsest_layer_size(setup["model"], SIZE, SIZE) == (4, 4)


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
    attn2 = setup["pack"]["attn2"]
    registered = patched.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert all(attn2.is_dispatcher(p) and p.base is recorder for p in registered.values())
    ours = attn2.identity_attentions(patched)            # one identity patch serves every layer
    assert len(ours) == 1 and type(ours[0]).__name__ == "MultiIDAttention"
    patch = ours[0]
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
    attn2 = setup["pack"]["attn2"]
    zoomed = attn2.cropped_identities(patched, (4, 12, 36, 44), (SIZE, SIZE))
    patches = attn2.identity_attentions(zoomed)
    assert len(patches) == 1
    crop = patches[0]
    assert crop.masks.shape == (1, SIZE, SIZE)                   # only the first face is in the box
    assert torch.isfinite(sample(setup, zoomed)).all()
    assert attn2.cropped_identities(setup["model"], (0, 0, 8, 8), (8, 8)) is setup["model"]


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


# -- the attn2 patch protocol (nodes/host/attn2.py) on a real ModelPatcher -------------------------

class HalfAttention:
    """Another pack's attn2 patch: half the text attention. It moves as ComfyUI patches do
    (``to`` returns the moved object, for a device or a dtype) and records each move."""

    def __init__(self, moves):
        self.moves = moves

    def __call__(self, q, k, v, extra_options):
        from comfy.ldm.modules.attention import optimized_attention
        return 0.5 * optimized_attention(q, k, v, extra_options["n_heads"])

    def __deepcopy__(self, memo):      # ModelPatcher.clone() deep-copies patches: copies share the record
        return HalfAttention(self.moves)

    def to(self, device_or_dtype, *args, **kwargs):
        self.moves.append(device_or_dtype)
        return self if not isinstance(device_or_dtype, torch.device) or device_or_dtype.type == "cpu" \
            else HalfAttention(self.moves)

    def models(self):
        return []


def registered(model) -> dict:
    return dict(model.model_options["transformer_options"]["patches_replace"]["attn2"])


def kinds(model) -> dict:
    """What answers at each attn2 key (ModelPatcher.clone() deep-copies patches: compare kinds)."""
    return {key: type(p).__name__ for key, p in registered(model).items()}


def with_foreign_patch(setup, moves=None):
    """The tiny model with HalfAttention on every block, as an SD1.5 pack registers it: (block, id)."""
    model, foreign = setup["model"].clone(), HalfAttention([] if moves is None else moves)
    for key, _, _ in setup["layers"]:
        model.set_model_attn2_replace(foreign, *key[:2])
    return model, foreign


def test_identities_wrap_a_foreign_patch_and_stripping_puts_it_back(setup):
    attn2 = setup["pack"]["attn2"]
    base, _ = with_foreign_patch(setup)
    patched = apply(setup, model=base)
    assert registered(patched).keys() == registered(base).keys()           # ours took over its keys...
    assert all(attn2.is_dispatcher(p) and isinstance(p.base, HalfAttention) for p in registered(patched).values())
    assert not torch.equal(sample(setup, patched), sample(setup, base))    # ...and both act
    stripped = attn2.without_identities(patched)
    assert kinds(stripped) == kinds(base)                                  # the foreign patch, at its keys
    assert torch.equal(sample(setup, stripped), sample(setup, base))
    plain = attn2.without_identities(apply(setup))
    assert registered(plain) == {} and torch.equal(sample(setup, plain), sample(setup, setup["model"]))


def test_two_multi_id_applies_stack_and_strip_together(setup):
    attn2 = setup["pack"]["attn2"]
    once = apply(setup)
    twice = apply(setup, model=once, identities=identities()[:1], face_indices="1")
    assert len(attn2.identity_attentions(twice)) == 2 and len(attn2.identity_attentions(once)) == 1
    assert not torch.equal(sample(setup, twice), sample(setup, once))
    assert registered(attn2.without_identities(twice)) == {}


def test_cropping_keeps_the_foreign_patch_and_leaves_the_model_unchanged(setup):
    attn2 = setup["pack"]["attn2"]
    base, _ = with_foreign_patch(setup)
    patched = apply(setup, model=base)
    zoomed = attn2.cropped_identities(patched, (4, 12, 36, 44), (SIZE, SIZE))
    assert all(isinstance(p.base, HalfAttention) for p in registered(zoomed).values())
    assert [a.masks.shape for a in attn2.identity_attentions(zoomed)] == [(1, SIZE, SIZE)]
    assert [a.masks.shape for a in attn2.identity_attentions(patched)] == [(2, SIZE, SIZE)]
    assert torch.isfinite(sample(setup, zoomed)).all()


def test_the_dispatcher_moves_with_the_model_as_comfyui_moves_patches(setup):
    attn2 = setup["pack"]["attn2"]
    moves = []
    base, _ = with_foreign_patch(setup, moves)
    patched = apply(setup, model=base)
    before = registered(patched)
    sample(setup, patched)                                 # ComfyUI loads the model: model_patches_to(...)
    assert torch.device("cpu") in moves and torch.float32 in moves
    assert registered(patched) == before                      # a move to where it already is: no copy
    foreign = next(iter(before.values())).base
    identity = attn2.identity_attentions(patched)
    patched.model_patches_to(torch.device("meta"))
    after = registered(patched)
    assert all(attn2.is_dispatcher(p) and p is not before[key] and p.base is not foreign and p.base.moves is moves
               for key, p in after.items())
    assert all(p.base is foreign for p in before.values())    # a move makes new dispatchers
    assert attn2.identity_attentions(patched) == identity
    assert patched.model_patches_models() == []


def test_clones_share_the_identity_entries(setup):
    """ModelPatcher.clone() deep-copies model options; our entries are shared, not copied."""
    attn2 = setup["pack"]["attn2"]
    patched = apply(setup)
    clone = patched.clone()
    assert registered(clone).keys() == registered(patched).keys()
    assert all(c is not p for c, p in zip(registered(clone).values(), registered(patched).values()))
    assert attn2.identity_attentions(clone) == attn2.identity_attentions(patched)
    assert torch.equal(sample(setup, clone), sample(setup, patched))


def test_blocks_with_several_transformers_get_a_dispatcher_per_transformer(setup):
    """SDXL-like blocks (two transformers): there our keys are (block, id, index), wrapping the
    (block, id) patch another pack put on the whole block; stripping leaves just that patch."""
    from collections import Counter

    from magicid_core.identity.adapters import parse_adapter

    attn2 = setup["pack"]["attn2"]
    model = tiny_sd15_model(seed=0, transformer_depth=[1, 2], transformer_depth_output=[1, 1, 2, 2],
                            transformer_depth_middle=2)
    layers = setup["pack"]["unet"].cross_attention_layers(model)
    per_block = Counter(key[:2] for key, _, _ in layers)
    assert max(per_block.values()) == 2 and min(per_block.values()) == 1
    adapter = parse_adapter(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=768, seed=5),
                            "ip-adapter-faceid_sd15.bin")
    foreign = HalfAttention([])
    for block in per_block:
        model.set_model_attn2_replace(foreign, *block)
    patched = apply(setup, model=model, adapter=adapter)
    ours = {key for key, p in registered(patched).items() if attn2.is_dispatcher(p)}
    assert ours == {key if per_block[key[:2]] > 1 else key[:2] for key, _, _ in layers}
    now = registered(patched)
    assert all(isinstance(now[key].base, HalfAttention) for key in ours)
    assert all(now[key].base is now[key[:2]] for key in ours if len(key) == 3)   # the block's own patch
    assert not torch.equal(sample(setup, patched), sample(setup, model))
    stripped = attn2.without_identities(patched)
    assert kinds(stripped) == kinds(model)
    assert torch.equal(sample(setup, stripped), sample(setup, model))


# -- with IPAdapter_plus, the pack whose Attn2Replace our dispatcher follows (MAGICID_PEERS_DIR) --------

def ipadapter_plus():
    """IPAdapter_plus's IPAdapterPlus.py from the peer checkout, imported as ComfyUI's loader would
    import the pack's package, without running its __init__ (its nodes are not registered)."""
    folder = os.path.join(os.environ.get("MAGICID_PEERS_DIR", ""), "ComfyUI_IPAdapter_plus")
    if not os.path.isfile(os.path.join(folder, "IPAdapterPlus.py")):
        pytest.skip("MAGICID_PEERS_DIR is not set or holds no ComfyUI_IPAdapter_plus checkout")
    name = "ipadapter_plus_peer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return importlib.import_module(name + ".IPAdapterPlus")


def apply_ipadapter(ipa, setup, model):
    """What IPAdapter_plus's ipadapter_execute does to a model, on the tiny UNet's layers: a real
    IPAdapter (FaceID layout, seeded) and its set_model_patch_replace at the keys its SD1.5 loop uses."""
    widths = [w for _, w, _ in setup["layers"]]
    adapter = ipa.IPAdapter(faceid_state_dict(widths=widths, context_dim=768, seed=9), cross_attention_dim=768,
                            output_cross_attention_dim=768, clip_embeddings_dim=512, is_faceid=True)
    embedding = torch.randn(1, 512, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        cond, uncond = adapter.image_proj_model(embedding), adapter.image_proj_model(torch.zeros_like(embedding))
    model = model.clone()
    for number, (key, _, _) in enumerate(setup["layers"]):
        kwargs = {"ipadapter": adapter, "weight": 1.0, "cond": cond, "cond_alt": None, "uncond": uncond,
                  "weight_type": "linear", "mask": None, "sigma_start": 999999999.9, "sigma_end": 0.0,
                  "unfold_batch": False, "embeds_scaling": "V only", "module_key": str(number * 2 + 1)}
        ipa.set_model_patch_replace(model, kwargs, key[:2])
    return model


def test_multi_id_apply_after_ipadapter_plus_keeps_it_working(setup):
    ipa, attn2 = ipadapter_plus(), setup["pack"]["attn2"]
    only_ipadapter = apply_ipadapter(ipa, setup, setup["model"])
    theirs = registered(only_ipadapter)
    assert all(isinstance(p, ipa.Attn2Replace) for p in theirs.values())
    both = apply(setup, model=only_ipadapter)
    assert registered(both).keys() == theirs.keys()
    assert all(attn2.is_dispatcher(p) and isinstance(p.base, ipa.Attn2Replace) for p in registered(both).values())
    reference = sample(setup, only_ipadapter)
    assert not torch.equal(reference, sample(setup, setup["model"]))          # IPAdapter acts...
    assert not torch.equal(sample(setup, both), reference)                     # ...and the identities on top
    stripped = attn2.without_identities(both)
    assert kinds(stripped) == kinds(only_ipadapter) and torch.equal(sample(setup, stripped), reference)


def test_ipadapter_plus_after_multi_id_apply_stacks_on_our_dispatcher(setup):
    """IPAdapter_plus finds our dispatcher at its key and calls its add(): it stacks, not replaces."""
    ipa, attn2 = ipadapter_plus(), setup["pack"]["attn2"]
    ours_only = sample(setup, apply(setup))
    both = apply_ipadapter(ipa, setup, apply(setup))
    for patch in registered(both).values():
        assert attn2.is_dispatcher(patch) and len(patch.identity_entries()) == 1
        assert patch.callback[-1] is ipa.ipadapter_attention                    # their entry, their function
    result = sample(setup, both)
    assert torch.isfinite(result).all() and not torch.equal(result, ours_only)
    only_ipadapter = sample(setup, apply_ipadapter(ipa, setup, setup["model"]))
    stripped = attn2.without_identities(both)
    assert all(p.callback == [ipa.ipadapter_attention] for p in registered(stripped).values())
    assert torch.allclose(sample(setup, stripped), only_ipadapter, atol=1e-5)  # IPAdapter alone is left
