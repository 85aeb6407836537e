"""Each person's own words (PersonPrompt -> MultiIDApply, IDRestore) inside a real ComfyUI, on tiny
real UNets: parity with ComfyUI's ConditioningConcat, confinement to owned cells at every SD1.5 and
SDXL layer size, the restore pass, and bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.diffusion.ownership import owner_map
from magicid_core.faces.records import Face, FaceSet, Identity, ImageFaces

from tests.host.tiny_loader_nodes import tiny_clip
from tests.host.tiny_models import text_conditioning, tiny_sd15_model, tiny_vae
from tests.support.mgmica_layouts import faceid_state_dict


def disc_faces(size: int, discs) -> ImageFaces:
    """Faces with disc masks; discs = (cx, cy, r) as fractions of the image side."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    faces = []
    for i, (cx, cy, r) in enumerate(discs):
        mask = ((yy - cy * size) ** 2 + (xx - cx * size) ** 2 <= (r * size) ** 2).astype(np.float32)
        box = np.array([cx - r, cy - r, cx + r, cy + r], np.float32) * size
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32), head_box=box, mask=mask))
    return ImageFaces(size, size, faces)


FOUR = [(0.14, 0.4, 0.1), (0.38, 0.45, 0.09), (0.62, 0.4, 0.08), (0.86, 0.5, 0.05)]


def whole_image_face(size: int) -> ImageFaces:
    box = np.array([0, 0, size, size], np.float32)
    return ImageFaces(size, size, [Face(index=0, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32),
                                        head_box=box, mask=np.ones((size, size), np.float32))])


def identity(seed=3):
    e = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return Identity(name=f"p{seed}", embedding=e / np.linalg.norm(e), embedding_model="arcface:test")


def words(n=6, width=768, seed=0):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


# SD1.5 / SDXL layer sizes on tiny UNets: a 4-level SD1.5 layout at 512 px attends at 64, 32, 16 and
# 8 (middle) cells a side, as SD1.5 does; an SDXL layout (no attention at the top level, two
# transformers per block, 2048-wide text) at 1024 px attends at 64 and 32 (and 32 in the middle).
SD15_LIKE = dict(channel_mult=[1, 1, 1, 1], num_res_blocks=[1, 1, 1, 1], transformer_depth=[1, 1, 1, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1)
SDXL_LIKE = dict(channel_mult=[1, 1, 1], num_res_blocks=[1, 1, 1], transformer_depth=[0, 2, 2],
                 transformer_depth_output=[0, 0, 2, 2, 2, 2], transformer_depth_middle=2, context_dim=2048,
                 use_linear_in_transformer=True)
FAMILIES = {"sd15": (SD15_LIKE, 512, 768, {64, 32, 16, 8}), "sdxl": (SDXL_LIKE, 1024, 2048, {64, 32})}


@pytest.fixture(scope="module")
def host(comfy_nodes, tmp_path_factory):
    """Node instances and an adapter file per context width in models/ipadapter."""
    import folder_paths

    classes = comfy_nodes.NODE_CLASS_MAPPINGS
    folder = tmp_path_factory.mktemp("ipadapter")
    folder_paths.add_model_folder_path("ipadapter", str(folder))
    return {"nodes": comfy_nodes, "classes": classes, "folder": folder, "apply": classes["MultiIDApply"](),
            "prompt": classes["PersonPrompt"]()}


def layers_of(host, model):
    """(key, width, context width) of the model's cross-attention layers, as MultiIDApply reads them."""
    return sys.modules[host["classes"]["MultiIDApply"].__module__].cross_attention_layers(model)


def adapter_for(host, model, name):
    layers = layers_of(host, model)
    torch.save(faceid_state_dict(widths=[w for _, w, _ in layers], context_dim=layers[0][2], seed=5),
               host["folder"] / name)
    return host["classes"]["MagicIDAdapterLoader"]().load(f"ipadapter/{name}")[0]


class PromptOf:
    """PERSON_PROMPTS without a CLIP: the core record, as PersonPrompt makes it."""

    @staticmethod
    def make(*specs):
        from magicid_core.diffusion.placement import PersonPrompt
        return [PersonPrompt(tokens, weight, face) for tokens, weight, face in specs]


def apply(host, model, adapter, image_faces, prompts, identities=None, weight=0.0):
    """MultiIDApply with identities at ``weight`` (0: only the words act)."""
    ids = identities or [identity(i) for i in range(max(1, len(image_faces.faces)))][:len(image_faces.faces)]
    return host["apply"].apply(model, adapter, ids, FaceSet([image_faces]), weight, 0.0, 1.0,
                               face_indices=", ".join(str(i) for i in range(len(ids))), person_prompts=prompts)[0]


def one_step(host, model, positive, size=64, steps=3, cfg=3.0, negative=None):
    nodes = host["nodes"]
    (latent,) = nodes.EmptyLatentImage().generate(size, size, 1)
    negative = negative or text_conditioning(2)
    return nodes.common_ksampler(model, 11, steps, cfg, "euler", "normal", positive, negative, latent)[0]["samples"]


def test_person_covering_the_image_samples_like_comfyuis_concatenated_conditioning(host):
    """One person, mask = the whole image, weight 1: sampling (CFG 3, 3 steps) equals the plain
    model sampled with ConditioningConcat(prompt, person's words), the node ComfyUI offers for
    appending a conditioning's tokens to a prompt's."""
    model = tiny_sd15_model(seed=0)
    adapter = adapter_for(host, model, "tiny-sd15.bin")
    mine = words(77, seed=4)
    patched = apply(host, model, adapter, whole_image_face(64), PromptOf.make((mine, 1.0, None)))
    (concatenated,) = host["nodes"].ConditioningConcat().concat(text_conditioning(1), [[mine[None], {}]])
    ours, reference = one_step(host, patched, text_conditioning(1)), one_step(host, model, concatenated)
    plain = one_step(host, model, text_conditioning(1))
    assert (ours - reference).abs().max() < 1e-4 * reference.abs().max()
    assert (plain - reference).abs().max() > 100 * (ours - reference).abs().max()   # the words do act


def record_layers(host, model, positive, negative, size):
    """(q, k, v, extra_options) of every cross-attention call of one real sampling step (CFG on)."""
    from comfy.ldm.modules.attention import optimized_attention

    seen = {}

    def recorder(q, k, v, extra_options):
        key = (extra_options["block"][0], extra_options["block"][1], extra_options["block_index"])
        seen.setdefault(key, (q.clone(), k.clone(), v.clone(), dict(extra_options)))
        return optimized_attention(q, k, v, extra_options["n_heads"])

    recording = model.clone()
    for key, _, _ in layers_of(host, model):
        recording.set_model_attn2_replace(recorder, *key)
    one_step(host, recording, positive, size=size, steps=1, cfg=2.0, negative=negative)
    assert set(seen) == {key for key, _, _ in layers_of(host, model)}
    return seen


def attn2_patch(model, key):
    attn2 = model.model_options["transformer_options"]["patches_replace"]["attn2"]
    return attn2.get(key, attn2.get(key[:2]))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_persons_words_change_attention_only_in_the_cells_they_own(host, family):
    """Four people with words; person j's words replaced: at every cross-attention layer of the
    tiny UNet (real q, k, v recorded from ComfyUI's sampling, the layer's own to_k / to_v), the
    output changes only in the cells j owns -- exactly 0 elsewhere -- and only on the cond rows."""
    changes, size, width, sizes = FAMILIES[family]
    model = tiny_sd15_model(seed=1, **changes)
    adapter = adapter_for(host, model, f"tiny-{family}.bin")
    faces = disc_faces(size, FOUR)
    prompt, negative = ([[torch.randn(1, 77, width, generator=torch.Generator().manual_seed(s)), {}]] for s in (9, 10))
    recorded = record_layers(host, model, prompt, negative, size)
    assert {opts["activations_shape"][-1] for _, _, _, opts in recorded.values()} == sizes
    prompts = [(words(4 + j, width, seed=j), 1.0, None) for j in range(4)]
    base = apply(host, model, adapter, faces, PromptOf.make(*prompts))
    outputs = {key: attn2_patch(base, key)(q, k, v, opts) for key, (q, k, v, opts) in recorded.items()}
    for j in range(4):
        changed = list(prompts)
        changed[j] = (words(4 + j, width, seed=20 + j), 1.0, None)
        other = apply(host, model, adapter, faces, PromptOf.make(*changed))
        for key, (q, k, v, opts) in recorded.items():
            before, after = outputs[key], attn2_patch(other, key)(q, k, v, opts)
            h, w = opts["activations_shape"][-2:]
            owner = torch.from_numpy(owner_map(np.stack([f.mask for f in faces.faces]), h, w).reshape(-1))
            cond = torch.tensor([c == 0 for c in opts["cond_or_uncond"]]).repeat_interleave(len(q) // len(opts["cond_or_uncond"]))
            diff = (after - before).abs()
            assert diff[:, owner != j].max() == 0, f"person {j}'s words leaked at {key} ({h}x{w})"
            assert diff[~cond].max() == 0, f"person {j}'s words reached the uncond rows at {key}"
            assert diff[cond][:, owner == j].max() > 0, f"person {j}'s words did nothing at {key}"


def test_person_prompt_node_encodes_like_clip_text_encode_and_checks_widths(host):
    clip = tiny_clip(seed=2)
    (prompts,) = host["prompt"].attach(clip, "laughing, red scarf", 0.8, -1)
    (prompts,) = host["prompt"].attach(clip, "   ", 1.0, 2, person_prompts=prompts)
    (reference,) = host["nodes"].CLIPTextEncode().encode(clip, "laughing, red scarf")
    assert torch.equal(prompts[0].tokens, reference[0][0][0]) and prompts[0].weight == 0.8
    assert prompts[0].face_index is None and prompts[1].face_index == 2 and len(prompts[1].tokens) == 0
    model = tiny_sd15_model(seed=0)
    adapter = adapter_for(host, model, "tiny-sd15.bin")
    faces = disc_faces(64, FOUR[:2])
    patched = apply(host, model, adapter, faces, prompts)          # the empty prompt is a no-op
    assert torch.isfinite(one_step(host, patched, text_conditioning(1))).all()
    with pytest.raises(ValueError, match="2048 wide \\(SDXL CLIP\\) but the model reads 768-wide text"):
        apply(host, model, adapter, faces, PromptOf.make((words(5, 2048), 1.0, None)))
    with pytest.raises(ValueError, match="person prompt 3 follows identity 3, but there are only 2 identities"):
        apply(host, model, adapter, faces, PromptOf.make(*[(words(3), 1.0, None)] * 3))


# -- IDRestore: each face regenerates with its own words ----------------------------------------------

from tests.host.test_id_restore_host import paste_masks, run_node, scene  # noqa: E402,F401  (scene: a fixture)


def test_id_restore_regenerates_each_face_with_its_own_words(comfy_nodes, scene):
    """Words for faces 1 and 2 of three real faces; only face 2's words change between two runs:
    face 2 comes out different, every other pixel identical, the background the input's bits."""
    image, faces = scene
    first = PromptOf.make((words(8, seed=1), 1.0, 1), (words(8, seed=2), 1.0, 2))
    second = PromptOf.make((words(8, seed=1), 1.0, 1), (words(8, seed=3), 1.0, 2))
    one, _, report = run_node(comfy_nodes, image, faces, person_prompts=first)
    two, _, _ = run_node(comfy_nodes, image, faces, person_prompts=second)
    outside = paste_masks(image, faces) == 0
    assert np.array_equal(one[outside], image[outside]) and np.array_equal(two[outside], image[outside])
    face2 = paste_masks(image, faces, [2]) > 0
    assert np.abs(one[face2] - two[face2]).mean() > 1e-4, "face 2's own words did nothing"
    assert np.array_equal(one[~face2], two[~face2]), "face 2's words reached another face"
    assert report.count("restored") == len(faces[0].faces)       # faces without words are restored too


def test_id_restore_refuses_prompts_for_a_batch_and_for_missing_faces(comfy_nodes, scene):
    image, faces = scene
    with pytest.raises(ValueError, match="goes to face 7"):
        run_node(comfy_nodes, image, faces, person_prompts=PromptOf.make((words(4), 1.0, 7)))
    batch = np.stack([image, image])
    node = comfy_nodes.NODE_CLASS_MAPPINGS["IDRestore"]()
    with pytest.raises(ValueError, match="one picture"):
        node.restore(torch.from_numpy(batch), FaceSet([faces[0], faces[0]]), tiny_sd15_model(), tiny_vae(),
                     text_conditioning(1), 2, 0.5, 3.0, "karras", 256, 0.4, 3, 0, "all",
                     negative=text_conditioning(2), person_prompts=PromptOf.make((words(4), 1.0, 0)))


def test_words_follow_a_lora_patched_in_after_multi_id_apply(host):
    """The words' keys and values are kept between steps (host/unet.py's UNetTextProjection); a LoRA on
    every to_k / to_v applied after MultiIDApply still reaches them: sampling equals MultiIDApply applied
    after the LoRA, and the model without the LoRA samples as before."""
    model = tiny_sd15_model(seed=0)
    adapter = adapter_for(host, model, "tiny-sd15-lora.bin")
    prompts, faces = PromptOf.make((words(77, seed=4), 1.0, None)), whole_image_face(64)

    def lora(m):
        clone, gen = m.clone(), torch.Generator().manual_seed(9)
        weights = {k: w for k, w in clone.model.state_dict().items() if k.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))}
        clone.add_patches({k: (torch.randn(w.shape, generator=gen) * 0.05,) for k, w in weights.items()}, 1.0)
        return clone

    patched = apply(host, model, adapter, faces, prompts)
    before = one_step(host, patched, text_conditioning(1))          # keeps the words' keys of the plain weights
    with_lora = one_step(host, lora(patched), text_conditioning(1))
    reference = one_step(host, apply(host, lora(model), adapter, faces, prompts), text_conditioning(1))
    assert torch.equal(with_lora, reference)
    assert (with_lora - before).abs().max() > 1e-3                   # the LoRA acts
    assert torch.equal(one_step(host, patched, text_conditioning(1)), before)
