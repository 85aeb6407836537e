"""Person words on Flux.1 inside a real ComfyUI (ComfyUI's own Flux class, Flux.1's 19 + 38 blocks, tiny widths).

- One person whose face covers the whole picture: sampling equals sampling with the two prompts
  concatenated (ConditioningConcat's tokens), to 1e-5 of the largest latent.
- Two people on part of the picture: at every double and single block, run on the same input with
  and without the words, every image token nobody owns comes out the same to the bit, the negative
  prompt's rows entirely, and a person's tokens do change.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from magicid_core.diffusion.placement import PersonPrompt
from tests.support.mask_faces import faces_from_masks
from tests.host.tiny_models import TINY_FLUX, flux_conditioning, tiny_flux_model

LATENT = 8                     # 8 x 8 latent: 4 x 4 tokens, a 64 px picture
SIZE = LATENT * 8
STEPS = 2


def words(seed: int, tokens: int = 5) -> torch.Tensor:
    return torch.randn(tokens, TINY_FLUX["context_in_dim"], generator=torch.Generator().manual_seed(50 + seed))


def region(y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[y0:y1, x0:x1] = 1
    return mask


@pytest.fixture(scope="module")
def host(comfy_nodes):
    module = comfy_nodes.NODE_CLASS_MAPPINGS["MultiIDApply"].__module__.rsplit(".", 1)[0] + ".host.dit_words"
    return sys.modules[module]


def with_words(host, model, masks, prompts):
    patch = host.flux_words(model, prompts, faces_from_masks(masks)[0])
    assert patch is not None
    return host.add_person_words(model, patch), patch


def sample(model, positive, negative=None, cfg=1.0, seed=3) -> torch.Tensor:
    import comfy.sample

    latent = torch.zeros(1, 16, LATENT, LATENT)
    return comfy.sample.sample(model, comfy.sample.prepare_noise(latent, seed), STEPS, cfg, "euler", "simple",
                               positive, negative if negative is not None else positive, latent,
                               disable_pbar=True, seed=seed)


def test_one_person_over_the_whole_picture_equals_concatenated_prompts(host):
    model = tiny_flux_model(seed=4)
    said = words(1)
    patched, _ = with_words(host, model, [region(0, SIZE, 0, SIZE)], [PersonPrompt(said, 1.0, 0)])
    main = flux_conditioning(1)
    concatenated = [[torch.cat([main[0][0], said[None]], dim=1), dict(main[0][1])]]
    ours, reference = sample(patched, main), sample(model, concatenated)
    scale, diff = float(reference.abs().max()), float((ours - reference).abs().max())
    print(f"person words over the whole picture vs concatenated prompts: max diff {diff:.3g} (largest {scale:.3g})")
    assert diff <= 1e-5 * scale
    assert float((sample(model, main) - reference).abs().max()) > 1e-3 * scale    # the words matter


def test_words_change_nothing_outside_their_people_at_every_block(host):
    masks = [region(0, 24, 0, 24), region(32, 64, 40, 64)]      # tokens (0..1, 0..1) and (2..3, 2..3)
    model = tiny_flux_model(seed=5)
    patched, patch = with_words(host, model, masks, [PersonPrompt(words(1), 1.0, 0), PersonPrompt(words(2, 3), 0.7, 1)])
    grid = LATENT // 2
    layout = patch.layout(flux_conditioning(1)[0][0].shape[1], grid, grid)
    owned = torch.zeros(grid * grid, dtype=torch.bool)
    owned[layout.special[layout.main + layout.words:] - layout.main - layout.words] = True
    assert 0 < int(owned.sum()) < grid * grid
    seen = []

    def compare(args, extra, kind):
        """The block on its input with the words, and on the same input without them (the blocks add
        in place, so the run without words goes first, on copies)."""
        options = args["transformer_options"]
        text = args["txt"].shape[1] if kind == "double_block" else options[host.LAYOUT][2]
        main = text - layout.words                               # [words ; main prompt ; image]
        plain_args = {**args, "pe": args["pe"][:, :, layout.words:],
                      "transformer_options": {k: v for k, v in options.items() if k != host.OVERRIDE}}
        if kind == "double_block":
            plain_args["txt"], plain_args["img"] = args["txt"][:, layout.words:].clone(), args["img"].clone()
            plain_image = extra["original_block"](plain_args)["img"]
            out = extra["original_block"](args)
            image_out = out["img"]
        else:
            plain_args["img"] = args["img"][:, layout.words:].clone()
            plain_image = extra["original_block"](plain_args)["img"][:, main:]
            out = extra["original_block"](args)
            image_out = out["img"][:, text:]
        uncond = torch.tensor([k == 1 for k in options["cond_or_uncond"]])
        seen.append((kind, torch.equal(image_out[:, ~owned], plain_image[:, ~owned]),
                     torch.equal(image_out[uncond], plain_image[uncond]),
                     not torch.equal(image_out[~uncond][:, owned], plain_image[~uncond][:, owned])))
        return out

    checked = patched.clone()
    for kind, count in (("double_block", TINY_FLUX["depth"]), ("single_block", TINY_FLUX["depth_single_blocks"])):
        for i in range(count):
            checked.set_model_patch_replace(lambda args, extra, kind=kind: compare(args, extra, kind), "dit", kind, i)
    sample(checked, flux_conditioning(1), flux_conditioning(2), cfg=2.0)
    blocks = TINY_FLUX["depth"] + TINY_FLUX["depth_single_blocks"]
    assert len(seen) == STEPS * blocks                      # cond and uncond batched: one call per block
    assert all(outside for _, outside, _, _ in seen), [k for k, o, _, _ in seen if not o][:5]
    assert all(uncond for _, _, uncond, _ in seen)
    assert all(inside for _, _, _, inside in seen)


def test_weight_zero_and_no_face_leave_the_model_unchanged(host):
    model = tiny_flux_model(seed=4)
    assert host.flux_words(model, [PersonPrompt(words(1), 0.0, 0)], faces_from_masks([region(0, 32, 0, 32)])[0]) is None
    assert host.flux_words(model, [PersonPrompt(words(1), 1.0, -1)], faces_from_masks([region(0, 32, 0, 32)])[0]) is None


def test_words_of_another_text_width_are_refused(host):
    model = tiny_flux_model(seed=4)
    with pytest.raises(ValueError, match="wide"):
        host.flux_words(model, [PersonPrompt(torch.zeros(4, 768), 1.0, 0)], faces_from_masks([region(0, 32, 0, 32)])[0])
