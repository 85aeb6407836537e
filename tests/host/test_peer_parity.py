"""MultiIDApply against the packs users trust, inside a real ComfyUI: IPAdapter_plus and ComfyUI_InstantID.

The same seeded adapter file (the real key layout, ``.bin`` and ``.safetensors``), the same
identity and the same settings go through the reference node and through ours, on a tiny UNet
with the real SD1.5 / SDXL block layout (the references patch hard-coded block ids); the
denoised latents of the first, a middle and the last sampling step must agree within float32
rounding: at most 1e-5 of the largest reference latent (the pack's parity rule, README), also where
ours reads insightface's vector a few float32 steps away (renormalised, or rebuilt as unit x kept norm).

The references run as shipped, loaded by ComfyUI's custom-node loader from MAGICID_PEERS_DIR.
Their insightface FaceAnalysis is a stand-in returning given faces (insightface's own ``Face``
records): that object is their input, not the code under comparison. IPAdapter_plus also
encodes the face crop with CLIP vision, which FaceID (not Plus) discards: a tiny seeded
ComfyUI ClipVisionModel serves.

IPAdapter_plus (and InstantID) register their middle-block patch under ("middle", 1, ...), a key
ComfyUI never calls (its middle block is ("middle", 0)): agreement (the parity rule) is asserted against
the reference with that patch moved to the firing key, or with our middle block off; against
the reference as shipped the difference is ours-minus-theirs at the middle block only.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from magicid_core.diffusion.placement import adapter_inputs
from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces

from tests.host.tiny_models import family_conditioning, tiny_clip_vision, tiny_full_layout_model
from tests.support.mgmica_layouts import faceid_state_dict, flatten, instantid_state_dict

PEERS_DIR = os.environ.get("MAGICID_PEERS_DIR", "")
PEERS = {"ipadapter": "ComfyUI_IPAdapter_plus", "instantid": "ComfyUI_InstantID"}
# Parity: agreement within float32 rounding, at most 1e-5 of the largest latent, not identical bits
# (MGMICA computes each identity on its own cells; a reference computes it on every cell and masks).
# The tiny random UNet's denoised latents reach |x| ~ 40, where float32 values are 4e-6 apart, and
# denoised = x - sigma * eps carries an input's rounding in eps times sigma (14.6 at the first step).
PARITY = 1e-5
STEPS = 3                       # denoised compared at steps 0, 1 and 2 (first, middle, last)
MEASURED: dict[str, float] = {}  # max differences measured (pytest -s prints them)


def _missing_peers() -> str:
    if not PEERS_DIR:
        return "MAGICID_PEERS_DIR is not set: point it at a folder holding ComfyUI_IPAdapter_plus and ComfyUI_InstantID"
    missing = [name for name in PEERS.values() if not Path(PEERS_DIR, name, "__init__.py").is_file()]
    return f"MAGICID_PEERS_DIR={PEERS_DIR} lacks {', '.join(missing)}" if missing else ""


pytestmark = pytest.mark.skipif(bool(_missing_peers()), reason=_missing_peers() or "peers present")


# -- the references' input: faces as insightface gives them -----------------------------------------

KPS = np.array([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]], np.float32)


class FaceAnalysisStandIn:
    """insightface FaceAnalysis as the references use it: ``det_model.input_size`` and ``get(image)``,
    returning one given face (insightface's ``Face``: raw ``embedding``, ``normed_embedding``)."""

    def __init__(self, raw_embedding: np.ndarray):
        self.det_model = SimpleNamespace(input_size=(640, 640))
        self.raw_embedding = raw_embedding.astype(np.float32)

    def get(self, image):
        from insightface.app.common import Face as InsightFace

        return [InsightFace(bbox=np.array([12, 12, 52, 52], np.float32), kps=KPS.copy(), det_score=0.9,
                            embedding=self.raw_embedding.copy())]


def raw_embedding(seed: int, norm: float) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return e / np.linalg.norm(e) * np.float32(norm)


def our_identity(raw: np.ndarray, scale: float | None = None) -> Identity:
    """What IdentityFromImages makes of that face: the unit vector and the raw norm.
    ``scale``: a hand-built identity whose vector is not unit length."""
    norm = float(np.linalg.norm(raw))
    unit = raw / norm
    return Identity(name="ref", embedding=(unit * scale if scale else unit).astype(np.float32),
                    embedding_model="arcface:test", embedding_norm=norm)


def face_set(size: int, masks: list[np.ndarray]) -> FaceSet:
    faces = []
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32),
                          head_box=box, mask=mask.astype(np.float32)))
    return FaceSet([ImageFaces(size, size, faces)])


def reference_image(size=64):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0))


# -- the ComfyUI side -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    """Node classes of this pack and both references; model folders for the seeded files."""
    import folder_paths

    for peer in PEERS.values():
        loaded = asyncio.run(comfy_nodes.load_custom_node(str(Path(PEERS_DIR, peer))))
        assert loaded, f"ComfyUI's custom-node loader failed to load {peer} (see the log above)"
    folders = {}
    for folder in PEERS:   # the references registered models/ipadapter and models/instantid on loading
        folders[folder] = tmp_path_factory.mktemp(folder)
        folder_paths.add_model_folder_path(folder, str(folders[folder]))
    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    return SimpleNamespace(classes=classes, folders=folders, clip_vision=tiny_clip_vision(seed=4),
                           models={}, layers={})


def base_model(host, family):
    if family not in host.models:
        host.models[family] = tiny_full_layout_model(family, seed=1)
        host.layers[family] = layer_widths(host.models[family])
    return host.models[family]


CONTEXT = {"sd15": 768, "sdxl": 2048}


def layer_widths(model) -> list[int]:
    """Cross-attention widths in adapter-file order (input blocks, output blocks, middle block)."""
    unet = model.model.diffusion_model
    return [tb.attn2.to_q.weight.shape[0]
            for blocks in (unet.input_blocks, unet.output_blocks, [unet.middle_block])
            for block in blocks for module in block for tb in getattr(module, "transformer_blocks", [])]


def write_adapter(host, family: str, variant: str, fmt: str) -> str:
    """A seeded adapter file of the real key layout in models/<folder>; returns its name.

    faceid: MLP, 4 tokens, with FaceID's LoRA keys; portrait: MLP, 16 tokens, no LoRA keys;
    unnorm: a Resampler (1280 wide, 12 heads SD1.5 / 20 SDXL) named *unnorm*, as IPAdapter_plus tells it;
    instantid: InstantID's ip-adapter layout (Resampler, 20 heads) in models/instantid.
    """
    base_model(host, family)
    widths, context = host.layers[family], CONTEXT[family]
    if variant == "faceid":
        state = faceid_state_dict(widths=widths, context_dim=context, tokens=4, seed=11)
    elif variant == "portrait":
        state = faceid_state_dict(widths=widths, context_dim=context, tokens=16, seed=12)
        state["ip_adapter"] = {k: v for k, v in state["ip_adapter"].items() if "lora" not in k}
    else:
        heads = 12 if (variant == "unnorm" and family == "sd15") else 20
        state = instantid_state_dict(widths=widths, context_dim=context, dim=1280, heads=heads, seed=13)
    folder = "instantid" if variant == "instantid" else "ipadapter"
    name = f"tiny-{variant}_{family}{'_unnorm' if variant == 'unnorm' else ''}.{fmt}"
    path = host.folders[folder] / name
    if not path.exists():
        if fmt == "bin":
            torch.save(state, path)
        else:
            from safetensors.torch import save_file
            save_file(flatten(state), str(path))
    return name


def denoised_steps(model, family, size=64, cfg=4.0, seed=3) -> torch.Tensor:
    """The denoised latent of the first, a middle and the last of STEPS euler steps (cond + uncond batched)."""
    import comfy.sample

    latent = torch.zeros(1, 4, size // 8, size // 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    seen = []
    comfy.sample.sample(model, noise, STEPS, cfg, "euler", "normal", family_conditioning(family, 1),
                        family_conditioning(family, 2), latent, callback=lambda i, x0, x, n: seen.append(x0.clone()),
                        disable_pbar=True, seed=seed)
    assert len(seen) == STEPS
    return torch.stack([seen[0], seen[STEPS // 2], seen[-1]])


def attn2(model) -> dict:
    return model.model_options["transformer_options"]["patches_replace"]["attn2"]


def middle_moved_to_firing_key(model):
    """The reference with its ("middle", 1, ...) patches under ComfyUI's middle key ("middle", 0, ...)."""
    clone = model.clone()
    patches = attn2(clone)
    for key in [k for k in patches if k[:2] == ("middle", 1)]:
        patches[("middle", 0) + key[2:]] = patches.pop(key)
    return clone


def without_middle(model):
    clone = model.clone()
    patches = attn2(clone)
    for key in [k for k in patches if k[0] == "middle"]:
        del patches[key]
    return clone


def ours(host, family, adapter_name, folder, identities, faces, weight=0.8, start=0.0, end=1.0, **kw):
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"{folder}/{adapter_name}")
    return host.classes["MultiIDApply"]().apply(base_model(host, family), adapter, identities, faces,
                                                weight, start, end, **kw)[0]


def ipadapter_faceid(host, model, adapter_name, raw, weight=0.8, start=0.0, end=1.0, mask=None, size=64):
    (ipadapter,) = host.classes["IPAdapterModelLoader"]().load_ipadapter_model(adapter_name)
    return host.classes["IPAdapterFaceID"]().apply_ipadapter(
        model, ipadapter, start_at=start, end_at=end, weight=weight, weight_faceidv2=1.0, weight_type="linear",
        combine_embeds="concat", image=reference_image(size), clip_vision=host.clip_vision,
        insightface=FaceAnalysisStandIn(raw), embeds_scaling="V only", attn_mask=mask)[0]


def max_diff(a, b) -> float:
    return float((a - b).abs().max())


def check_close(label: str, a: torch.Tensor, b: torch.Tensor):
    """Assert max |a - b| <= PARITY * max |b| (the parity rule), print it, return it."""
    tolerance = PARITY * float(b.abs().max())
    diff = max_diff(a, b)
    MEASURED[label] = max(diff, MEASURED.get(label, 0.0))
    per_step = [max_diff(x, y) for x, y in zip(a, b)]
    print(f"{label}: max |ours - reference| = {diff:.3g} (max |reference| {float(b.abs().max()):.3g})")
    assert diff <= tolerance, (f"{label}: max |ours - reference| = {diff:.3g} > {tolerance:g} "
                               f"(first, middle, last step: {', '.join(f'{d:.3g}' for d in per_step)}; max |reference| {float(b.abs().max()):.3g})")
    return diff


def full_mask(size=64):
    return np.ones((size, size), np.float32)


def adapter_reads(host, folder, name, identity) -> np.ndarray:
    """The vector our adapter reads for ``identity``: the unit vector, or unit x kept raw norm."""
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"{folder}/{name}")
    return adapter_inputs(adapter, [identity])[0]


def same_input_for_reference(host, folder, name, identity, raw) -> np.ndarray:
    """The raw embedding the reference's insightface stand-in returns, so that both sides read the same
    numbers: insightface's ``normed_embedding`` of ``raw`` is our unit vector bit for bit (asserted);
    a raw-reading adapter gets the vector ours rebuilds (within 3 float32 steps of ``raw``, asserted)."""
    ours_reads = adapter_reads(host, folder, name, identity)
    if folder == "ipadapter" and "unnorm" not in name:
        np.testing.assert_array_equal(FaceAnalysisStandIn(raw).get(None)[0].normed_embedding, ours_reads)
        return raw
    assert np.all(np.abs(ours_reads - raw) <= 3 * np.spacing(np.abs(raw))), "raw vector not rebuilt from unit x norm"
    return ours_reads


# -- IP-Adapter FaceID --------------------------------------------------------------------------------

FACEID_CASES = [  # (family, variant, file format); every variant in both formats across the families
    ("sd15", "faceid", "bin"), ("sd15", "portrait", "safetensors"), ("sd15", "unnorm", "bin"),
    ("sdxl", "faceid", "safetensors"), ("sdxl", "portrait", "bin"), ("sdxl", "unnorm", "safetensors"),
]


@pytest.mark.parametrize("family,variant,fmt", FACEID_CASES)
def test_faceid_one_identity_full_mask_equals_ipadapter_plus(host, family, variant, fmt):
    name = write_adapter(host, family, variant, fmt)
    raw = raw_embedding(seed=21, norm=27.5)
    identity = our_identity(raw)
    start, end = (0.1, 0.8) if variant == "portrait" else (0.0, 1.0)
    mine = ours(host, family, name, "ipadapter", [identity], face_set(64, [full_mask()]), 0.8, start, end)
    shipped = ipadapter_faceid(host, base_model(host, family), name,
                               same_input_for_reference(host, "ipadapter", name, identity, raw), 0.8, start, end)

    mine_steps = denoised_steps(mine, family)
    check_close(f"IPAdapter_plus {variant} {family}, reference middle patch moved to the firing key",
                mine_steps, denoised_steps(middle_moved_to_firing_key(shipped), family))
    middle_off = check_close(f"IPAdapter_plus {variant} {family} as shipped, our middle block off",
                             denoised_steps(without_middle(mine), family), denoised_steps(shipped, family))
    # as shipped, the reference leaves the middle block unpatched: that is the whole difference; acting
    # at every step, it stands well above the agreement with our middle block off (in a late window,
    # where denoised moves little, it is only reported)
    middle_only = max_diff(mine_steps, denoised_steps(shipped, family))
    MEASURED[f"IPAdapter_plus {variant} {family} as shipped: ours - theirs (middle block only)"] = middle_only
    print(f"IPAdapter_plus {variant} {family} as shipped: ours - theirs = {middle_only:.3g} (middle block only)")
    if (start, end) == (0.0, 1.0):
        assert middle_only > 10 * middle_off, (f"as shipped, ours - theirs = {middle_only:.3g}: not clearly above "
                                               f"{middle_off:.3g}, measured with our middle block off")


ROUNDED_INPUT_CASES = [  # (family, variant, identity norm): what ours reads is a few float32 steps from theirs
    ("sd15", "faceid", 3.7), ("sdxl", "faceid", 3.7), ("sd15", "unnorm", None),
]


@pytest.mark.parametrize("family,variant,scale", ROUNDED_INPUT_CASES)
def test_faceid_from_insightface_vector_equals_ipadapter_plus_up_to_input_rounding(host, family, variant, scale):
    """End to end from insightface's own raw vector: a hand-built identity of norm 3.7 (FaceID renormalises it
    at the adapter) and a portrait-unnorm identity (its raw vector rebuilt as unit x kept norm)."""
    name = write_adapter(host, family, variant, "bin")
    raw = raw_embedding(seed=21, norm=27.5)
    mine = ours(host, family, name, "ipadapter", [our_identity(raw, scale=scale)], face_set(64, [full_mask()]), 0.8)
    shipped = ipadapter_faceid(host, base_model(host, family), name, raw, 0.8)
    check_close(f"IPAdapter_plus {variant} {family} from insightface's vector{f' (identity norm {scale})' if scale else ''}, "
                "reference middle patch moved to the firing key",
                denoised_steps(mine, family), denoised_steps(middle_moved_to_firing_key(shipped), family))


def test_identity_acts_and_weight_zero_is_exact(host):
    """The comparison above is not between two no-ops: the identity moves the latents."""
    name = write_adapter(host, "sd15", "faceid", "bin")
    plain = denoised_steps(base_model(host, "sd15"), "sd15")
    raw = raw_embedding(seed=21, norm=27.5)
    acted = denoised_steps(ours(host, "sd15", name, "ipadapter", [our_identity(raw)], face_set(64, [full_mask()])), "sd15")
    assert max_diff(acted, plain) > 1e-3
    off = ours(host, "sd15", name, "ipadapter", [our_identity(raw)], face_set(64, [full_mask()]), weight=0.0)
    assert torch.equal(denoised_steps(off, "sd15"), plain)


# -- InstantID ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_instantid_attention_equals_comfyui_instantid(host, fmt):
    """ComfyUI_InstantID's attention path (InstantIDAttentionPatch, the first half of ApplyInstantID),
    fed the raw embedding, with ApplyInstantID's negative noise 0.35 (our default follows it)."""
    name = write_adapter(host, "sdxl", "instantid", fmt)
    raw = raw_embedding(seed=31, norm=24.0)
    identity = our_identity(raw)
    shipped = instantid_attention_patch(host, name, same_input_for_reference(host, "instantid", name, identity, raw))
    mine = ours(host, "sdxl", name, "instantid", [identity], face_set(64, [full_mask()]), 0.8)
    # unlike ApplyInstantID, InstantIDAttentionPatch registers its middle block under ComfyUI's key
    # ("middle", 0, i): as shipped, every patch of it fires
    assert any(key[:2] == ("middle", 0) for key in attn2(shipped))
    check_close(f"InstantID sdxl {fmt}, InstantIDAttentionPatch as shipped",
                denoised_steps(mine, "sdxl"), denoised_steps(shipped, "sdxl"))


def instantid_attention_patch(host, name, raw, weight=0.8):
    (instantid,) = host.classes["InstantIDModelLoader"]().load_model(name)
    return host.classes["InstantIDAttentionPatch"]().patch_attention(
        instantid, FaceAnalysisStandIn(raw), reference_image(), base_model(host, "sdxl"), weight, 0.0, 1.0, noise=0.35)[0]


def test_instantid_from_insightface_raw_vector_equals_comfyui_instantid_up_to_input_rounding(host):
    """End to end from insightface's raw vector: ours reads it rebuilt as unit x kept norm."""
    name = write_adapter(host, "sdxl", "instantid", "bin")
    raw = raw_embedding(seed=31, norm=24.0)
    mine = ours(host, "sdxl", name, "instantid", [our_identity(raw)], face_set(64, [full_mask()]), 0.8)
    check_close("InstantID sdxl from insightface's raw vector, InstantIDAttentionPatch as shipped",
                denoised_steps(mine, "sdxl"), denoised_steps(instantid_attention_patch(host, name, raw), "sdxl"))


def tiny_controlnet_like(model):
    """A seeded ComfyUI ControlNet of the tiny UNet's layout (3-channel hint), wrapped as ComfyUI does."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops
    from tests.host.tiny_models import _seed_weights

    config = {k: v for k, v in model.model.model_config.unet_config.items() if k != "out_channels"}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, device=torch.device("cpu"),
                                     operations=comfy.ops.disable_weight_init, **config)
    _seed_weights(net, 6)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))


def test_apply_instantid_with_controlnet_strength_zero_equals_ours(host):
    """ApplyInstantIDAdvanced as a whole (attention patch and its keypoint ControlNet at strength 0),
    noise 0.35 as ApplyInstantID: its conditioning goes through the sampler as it returns it. Like
    IPAdapter_plus, it registers its middle block under ("middle", 1, i), which never fires."""
    import comfy.sample

    name = write_adapter(host, "sdxl", "instantid", "bin")
    raw = raw_embedding(seed=33, norm=21.0)
    base = base_model(host, "sdxl")
    fed = same_input_for_reference(host, "instantid", name, our_identity(raw), raw)
    (instantid,) = host.classes["InstantIDModelLoader"]().load_model(name)
    model, positive, negative = host.classes["ApplyInstantIDAdvanced"]().apply_instantid(
        instantid, FaceAnalysisStandIn(fed), tiny_controlnet_like(base), reference_image(), base,
        family_conditioning("sdxl", 1), family_conditioning("sdxl", 2), 0.0, 1.0,
        ip_weight=0.8, cn_strength=0.0, noise=0.35)
    mine = ours(host, "sdxl", name, "instantid", [our_identity(raw)], face_set(64, [full_mask()]), 0.8)

    def steps(m, pos, neg):
        latent = torch.zeros(1, 4, 8, 8)
        seen = []
        comfy.sample.sample(m, comfy.sample.prepare_noise(latent, 3), STEPS, 4.0, "euler", "normal",
                            pos, neg, latent, callback=lambda i, x0, x, n: seen.append(x0.clone()), disable_pbar=True, seed=3)
        return torch.stack([seen[0], seen[STEPS // 2], seen[-1]])

    ours_steps = steps(mine, family_conditioning("sdxl", 1), family_conditioning("sdxl", 2))
    check_close("InstantID ApplyInstantIDAdvanced, ControlNet strength 0, reference middle patch moved to the firing key",
                ours_steps, steps(middle_moved_to_firing_key(model), positive, negative))
    check_close("InstantID ApplyInstantIDAdvanced, ControlNet strength 0, as shipped, our middle block off",
                steps(without_middle(mine), family_conditioning("sdxl", 1), family_conditioning("sdxl", 2)),
                steps(model, positive, negative))


def test_instantid_reads_the_kept_raw_norm_not_the_sqrt_512_stand_in(host):
    """An identity without its raw norm gets sqrt(512) instead: a different picture from InstantID's."""
    name = write_adapter(host, "sdxl", "instantid", "bin")
    raw = raw_embedding(seed=31, norm=24.0)
    kept = denoised_steps(ours(host, "sdxl", name, "instantid", [our_identity(raw)], face_set(64, [full_mask()])), "sdxl")
    no_norm = our_identity(raw)
    no_norm.embedding_norm = None
    stand_in = denoised_steps(ours(host, "sdxl", name, "instantid", [no_norm], face_set(64, [full_mask()])), "sdxl")
    assert max_diff(kept, stand_in) > 1e-4


# -- several identities --------------------------------------------------------------------------------

def quadrants(size):
    masks = []
    for top in (0, size // 2):
        for left in (0, size // 2):
            m = np.zeros((size, size), np.float32)
            m[top:top + size // 2, left:left + size // 2] = 1
            masks.append(m)
    return masks


def test_four_identities_in_disjoint_quadrants_each_get_what_ipadapter_gives_it_alone(host):
    """Quadrant masks stay exactly 0/1 at every layer (down to 2x2 at 128 px), so IPAdapter_plus applied
    once per identity with that identity's mask gives each cell its identity's reference residual (within the parity rule)."""
    size, name = 128, write_adapter(host, "sd15", "faceid", "bin")
    raws = [raw_embedding(seed=40 + i, norm=20.0 + i) for i in range(4)]
    weights = [0.6, 0.8, 1.0, 1.2]
    masks = quadrants(size)
    mine = ours(host, "sd15", name, "ipadapter", [our_identity(r) for r in raws], face_set(size, masks),
                weight=1.0, face_indices="0, 1, 2, 3", identity_weights=", ".join(map(str, weights)))
    reference = base_model(host, "sd15")
    for raw, weight, mask in zip(raws, weights, masks):
        fed = same_input_for_reference(host, "ipadapter", name, our_identity(raw), raw)
        reference = ipadapter_faceid(host, reference, name, fed, weight, mask=torch.from_numpy(mask)[None], size=size)
    check_close("IPAdapter_plus faceid sd15, 4 identities in disjoint quadrants",
                denoised_steps(mine, "sd15", size=size), denoised_steps(middle_moved_to_firing_key(reference), "sd15", size=size))


# -- stacking with IPAdapter_plus on one model ---------------------------------------------------------

@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("order", ["ipadapter first", "multi_id first"])
def test_stacks_with_ipadapter_plus_in_either_order(host, family, order):
    """IPAdapter_plus (identity A) and MultiIDApply (identity B, full mask) on one model: both act, in
    either order, exactly as IPAdapter_plus applied twice in the same order (residuals are summed in the
    order applied). Middle blocks left out on both sides (the reference's never fires)."""
    name = write_adapter(host, family, "faceid", "bin" if family == "sd15" else "safetensors")
    raw_a, raw_b = raw_embedding(seed=51, norm=22.0), raw_embedding(seed=52, norm=25.0)
    base, faces = base_model(host, family), face_set(64, [full_mask()])
    (adapter,) = host.classes["MagicIDAdapterLoader"]().load(f"ipadapter/{name}")
    apply_b = lambda model: host.classes["MultiIDApply"]().apply(model, adapter, [our_identity(raw_b)], faces, 0.9, 0.0, 1.0)[0]
    reference_a = lambda model: ipadapter_faceid(host, model, name, raw_a, 0.7)
    reference_b = lambda model: ipadapter_faceid(host, model, name, raw_b, 0.9)
    if order == "ipadapter first":
        stacked, reference = apply_b(reference_a(base)), reference_b(reference_a(base))
    else:
        stacked, reference = reference_a(apply_b(base)), reference_a(reference_b(base))
    check_close(f"stacking with IPAdapter_plus {family}, {order}",
                denoised_steps(without_middle(stacked), family), denoised_steps(without_middle(reference), family))
    # and both act: neither alone gives this
    only_b = denoised_steps(without_middle(apply_b(base)), family)
    assert max_diff(denoised_steps(without_middle(stacked), family), only_b) > 1e-3

