"""Each person's own words inside the MGMICA patch (PersonText), on real attention tensors of
SD1.5 and SDXL layer sizes, and their placement (PersonPrompt)."""

import math

import numpy as np
import pytest
import torch

from magicid_core.diffusion.attention import MultiIDAttention, PersonText, batch_is_uncond, sdpa_attention
from magicid_core.diffusion.ownership import owner_map
from magicid_core.diffusion.placement import PersonPrompt, multi_id_patch
from magicid_core.faces.records import Face, ImageFaces
from magicid_core.identity.adapters import parse_adapter
from tests.support.mgmica_layouts import KEY, attention_inputs, faceid_state_dict
from tests.test_mgmica_attention import SD15_LAYERS, SDXL_LAYERS, faces_masks, make_tokens, manual_attention

# The SD1.5 middle block at 512 px (8 cells a side) is in SD15_LAYERS; SDXL's is 32 at 1024 px.
ALL_LAYERS = SD15_LAYERS + SDXL_LAYERS


def projections(width, context, seed=0):
    """A layer's own to_k / to_v (the host's modules), as the node hands them to the patch."""
    g = torch.Generator().manual_seed(seed)
    to_k, to_v = (torch.nn.Linear(context, width, bias=False) for _ in range(2))
    with torch.no_grad():
        for m in (to_k, to_v):
            m.weight.copy_(torch.randn(width, context, generator=g) * context ** -0.5)

    @torch.no_grad()
    def project(key, tokens):
        assert key == KEY                      # the patch asks for the running layer's projection
        return to_k(tokens), to_v(tokens)
    return project, to_k, to_v


def words(lengths, context=768, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, context, generator=g) for n in lengths]


def person_text(prompts, weights, project):
    owner = torch.cat([torch.full((len(t),), i, dtype=torch.long) for i, t in enumerate(prompts)])
    return PersonText(torch.cat(prompts), owner, torch.tensor(weights, dtype=torch.float32), project)


def text_only_patch(masks, prompts, weights, project, **kw):
    return MultiIDAttention(None, masks, [0.0] * len(masks), {KEY: None}, text=person_text(prompts, weights, project), **kw)


@pytest.mark.parametrize("heads", [8, 1])
def test_one_person_covering_the_image_is_the_concatenated_conditioning(heads):
    """Full mask, weight 1: cond rows attend over [global prompt ; person's prompt] exactly as
    ComfyUI does for ConditioningConcat(prompt, person) (keys and values concatenated along the
    tokens, projected by the same to_k / to_v); uncond rows are the plain text attention, bit for bit."""
    cells, width, _ = SD15_LAYERS[1]
    q, k, v, opts = attention_inputs(cells, width, heads)
    project, to_k, to_v = projections(width, 768)
    (mine,) = words([77])
    out = text_only_patch(np.ones((1, 512, 512), np.float32), [mine], [1.0], project)(q, k, v, opts)
    uncond = batch_is_uncond(2, opts)
    for b in range(2):
        if uncond[b]:
            assert torch.equal(out[b], sdpa_attention(q, k, v, heads)[b])
        else:
            with torch.no_grad():
                concatenated = manual_attention(q[b:b + 1], torch.cat([k[b:b + 1], to_k(mine)[None]], 1),
                                                torch.cat([v[b:b + 1], to_v(mine)[None]], 1), heads)
            # float32 rounding: within a few float32 steps of the output's scale (measured: 5e-7 of it)
            scale = float(concatenated.abs().max())
            assert float((out[b] - concatenated[0]).abs().max()) <= 2e-6 * scale


@pytest.mark.parametrize("cells,width,heads", ALL_LAYERS)
def test_each_persons_words_act_only_in_the_cells_they_own(cells, width, heads):
    masks = faces_masks(256)
    project, _, _ = projections(width, 768)
    prompts = words([5, 9, 3])
    q, k, v, opts = attention_inputs(cells, width, heads)
    plain = sdpa_attention(q, k, v, heads)
    base = text_only_patch(masks, prompts, [1.0, 0.8, 1.5], project)(q, k, v, opts)
    owner = torch.from_numpy(owner_map(masks, cells, cells).reshape(-1))
    uncond = batch_is_uncond(2, opts)
    assert torch.equal(base[uncond], plain[uncond]), "the uncond rows must keep the negative prompt alone"
    assert torch.equal(base[:, owner < 0], plain[:, owner < 0]), "words acted on a cell nobody owns"
    for j in range(3):
        changed = list(prompts)
        changed[j] = words([len(prompts[j])], seed=10 + j)[0]
        out = text_only_patch(masks, changed, [1.0, 0.8, 1.5], project)(q, k, v, opts)
        elsewhere = owner != j
        assert torch.equal(out[:, elsewhere], base[:, elsewhere]), f"person {j}'s words leaked outside its cells"
        assert not torch.allclose(out[~uncond][:, owner == j], base[~uncond][:, owner == j])


def test_weight_scales_the_difference_and_zero_is_exactly_unpatched():
    cells, width, heads = SD15_LAYERS[2]
    masks = faces_masks(256, 2)
    project, _, _ = projections(width, 768)
    prompts = words([6, 6])
    q, k, v, opts = attention_inputs(cells, width, heads)
    plain = sdpa_attention(q, k, v, heads)
    assert torch.equal(text_only_patch(masks, prompts, [0.0, 0.0], project)(q, k, v, opts), plain)
    full = text_only_patch(masks, prompts, [1.0, 1.0], project)(q, k, v, opts)
    half = text_only_patch(masks, prompts, [0.5, 0.5], project)(q, k, v, opts)
    assert torch.allclose(half - plain, 0.5 * (full - plain), atol=1e-6)
    one_silent = text_only_patch(masks, prompts, [1.0, 0.0], project)(q, k, v, opts)
    second = torch.from_numpy(owner_map(masks, cells, cells).reshape(-1)) == 1
    assert torch.equal(one_silent[:, second], plain[:, second])


def test_words_and_identities_together_add_up():
    """A person with an identity and words: the identity residual plus the words' difference."""
    cells, width, heads = SD15_LAYERS[1]
    masks = faces_masks(256)
    project, _, _ = projections(width, 768)
    q, k, v, opts = attention_inputs(cells, width, heads)
    tokens = make_tokens(3, width)
    ids_only = MultiIDAttention(tokens, masks, [1.0, 0.0, 1.0], {KEY: 0})
    words_only = text_only_patch(masks, words([4, 4, 4]), [1.0, 1.0, 0.0], project)
    both = MultiIDAttention(tokens, masks, [1.0, 0.0, 1.0], {KEY: 0}, text=words_only.text)
    plain = sdpa_attention(q, k, v, heads)
    expected = plain + ids_only.residual(q, opts) + words_only.residual(q, opts, k, v)
    assert torch.allclose(both(q, k, v, opts), expected, atol=1e-6)
    assert torch.equal(words_only.residual(q, opts), torch.zeros_like(q)), "words need the text keys k, v"


def test_cropped_copy_keeps_the_words_of_the_people_inside():
    masks = faces_masks(256)
    project, _, _ = projections(640, 768)
    prompts = words([3, 5, 7])
    patch = text_only_patch(masks, prompts, [1.0, 2.0, 3.0], project)
    zoom = patch.cropped((110, 85, 170, 145), (256, 256))                # around face 1 only
    assert zoom.masks.shape == (1, 256, 256)
    assert torch.equal(zoom.text.tokens, prompts[1]) and zoom.text.weights.tolist() == [2.0]
    assert zoom.text.owner.tolist() == [0] * 5
    q, k, v, opts = attention_inputs(32, 640, 8)
    assert not torch.equal(zoom(q, k, v, opts), sdpa_attention(q, k, v, 8))


# -- placement: which face the words go to ---------------------------------------------------------

SIZE = 128


def group(n=3) -> ImageFaces:
    faces = []
    for i, m in enumerate(faces_masks(SIZE, n)):
        ys, xs = np.nonzero(m)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        faces.append(Face(index=i, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32), head_box=box, mask=m))
    return ImageFaces(SIZE, SIZE, faces)


@pytest.fixture(scope="module")
def adapter():
    return parse_adapter(faceid_state_dict(widths=[320], context_dim=768, seed=2), "tiny-faceid")


def embeddings(n, seed=3):
    e = np.random.default_rng(seed).normal(size=(n, 512)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_prompts_follow_identities_and_may_name_a_face_without_identity(adapter):
    project, _, _ = projections(320, 768)
    prompts = [PersonPrompt(words([4])[0]), PersonPrompt(words([6])[0], weight=0.5, face_index=2)]
    patch = multi_id_patch(adapter, embeddings(1), group(), {KEY: 0}, face_indices=[1],
                           prompts=prompts, project=project, context_dim=768)
    # person 0 = face 1 with identity and words; person 1 = face 2 with words only
    assert len(patch.masks) == 2 and np.array_equal(patch.masks[1], group().faces[2].mask)
    assert patch.weights.tolist() == [1.0, 0.0] and patch.text.weights.tolist() == [1.0, 0.5]
    assert patch.text.owner.tolist() == [0] * 4 + [1] * 6
    words_alone = multi_id_patch(None, None, group(), {KEY: None}, prompts=[PersonPrompt(words([4])[0], face_index=0)],
                                 project=project, context_dim=768)
    assert words_alone.tokens is None and len(words_alone.masks) == 1
    q, k, v, opts = attention_inputs(32, 320, 8)
    assert torch.isfinite(patch(q, k, v, opts)).all() and torch.isfinite(words_alone(q, k, v, opts)).all()


def test_bad_prompts_are_clear_errors_or_documented_no_ops(adapter):
    project, _, _ = projections(320, 768)
    build = lambda prompts, ids=embeddings(2), **kw: multi_id_patch(
        adapter, ids, group(), {KEY: 0}, prompts=prompts, project=project, context_dim=768, **kw)
    one = lambda n=4, width=768, **kw: PersonPrompt(torch.randn(n, width), **kw)
    with pytest.raises(ValueError, match="person prompt 3 follows identity 3, but there are only 2 identities"):
        build([one(), one(), one()])                                   # more prompts than people
    with pytest.raises(ValueError, match="2048 wide \\(SDXL CLIP\\) but the model reads 768-wide text"):
        build([one(width=2048)])
    with pytest.raises(ValueError, match="goes to face 7, but the image has faces 0..2"):
        build([one(face_index=7)])
    with pytest.raises(ValueError, match="two person prompts"):
        build([one(), one(face_index=0)])
    with pytest.raises(ValueError, match="NaN"):
        build([one(weight=math.nan)])
    # An empty prompt (no tokens) gives no words: the patch is the identities' alone.
    empty = build([one(n=0)])
    assert empty.text is None and len(empty.masks) == 2
    # The person whose identity found no face (-1): its words go nowhere either.
    unplaced = build([one(), one()], face_indices=[0, -1])
    assert len(unplaced.masks) == 1 and unplaced.text.owner.unique().tolist() == [0]
    # Only words, and they go nowhere: nothing to do.
    assert multi_id_patch(None, None, group(), {KEY: None}, prompts=[one(n=0, face_index=0)],
                          project=project, context_dim=768) is None
    # Without identities a prompt goes to the face at its position (FACES order, left to right).
    by_position = multi_id_patch(None, None, group(), {KEY: None}, prompts=[one(n=0), one(n=3), one(n=5)],
                                 project=project, context_dim=768)
    assert np.array_equal(by_position.masks[0], group().faces[1].mask) and by_position.text.owner.tolist() == [0] * 3 + [1] * 5
    with pytest.raises(ValueError, match="person prompt 4 goes to face 3"):
        multi_id_patch(None, None, group(), {KEY: None}, prompts=[one()] * 4, project=project, context_dim=768)
    with pytest.raises(ValueError, match="no faces found"):
        multi_id_patch(None, None, ImageFaces(SIZE, SIZE, []), {KEY: None}, prompts=[one(face_index=0)],
                       project=project, context_dim=768)
