"""Person words on Flux: the people's prompts beside the main prompt in Flux's joint attention.

ComfyUI's side. Flux's ``_forward(x, timestep, context, ...)`` gives every text token of ``context``
the RoPE position zero (``txt_ids`` are zeros) and runs ``txt_in`` on all of them, so words put into
``context`` (before the main prompt: the call without words is then one slice) are text tokens like the
main prompt's. Every attention of Flux's blocks runs through
``optimized_attention``, which hands the call to ``transformer_options["optimized_attention_override"]``
(``override(func, q, k, v, heads, mask=..., skip_reshape=True, ...)``) when one is set.

Ours. A DIFFUSION_MODEL wrapper (:class:`PersonWordsWrapper`) puts the people's words into the
context, and for that call sets an attention override that runs magicid_core's JointLayout.attend
(two calls of the host's own attention: the rows without words as the model computes them, then the
rows that see words under the mask). The entry carries the core's TokenWords; IDRestore crops it per
face (:func:`cropped_words`) and inverts without it (:func:`without_words`).
"""

from __future__ import annotations

import torch

from .dit import LAYOUT

WORDS = "magicid.dit.words/1"
WRAPPER_KEY = "magicid_person_words"
OVERRIDE = "optimized_attention_override"


def is_words_wrapper(obj) -> bool:
    return getattr(type(obj), "PROTOCOL", None) == WORDS


class PersonWordsWrapper:
    """DIFFUSION_MODEL wrapper (Flux's ``_forward`` signature) that puts ``words`` (TokenWords) into each call."""

    PROTOCOL = WORDS

    def __init__(self, words):
        self.words = words

    def __deepcopy__(self, memo):
        return self                       # never changed once made: clones share it

    def __call__(self, executor, x, timestep, context, *args, **kwargs):
        transformer_options = args[4] if len(args) > 4 else kwargs.get("transformer_options")
        if transformer_options is None:
            return executor(x, timestep, context, *args, **kwargs)
        if context.shape[-1] != self.words.width:
            raise ValueError(f"the person prompts are {self.words.width} wide but this model's text is "
                             f"{context.shape[-1]} wide: encode them with the CLIP of this Flux checkpoint")
        net = executor.class_obj
        patch = net.patch_size
        height, width = -(-x.shape[-2] // patch), -(-x.shape[-1] // patch)
        references = args[2] if len(args) > 2 else kwargs.get("ref_latents")    # (y, guidance, ref_latents, ...)
        extra = sum(_tokens(r, patch) for r in references or [])
        main = context.shape[1]
        layout = self.words.layout(main, height, width, extra)
        words = self.words.tokens().to(context.device, context.dtype)
        context = torch.cat([words[None].expand(context.shape[0], -1, -1), context], dim=1)
        transformer_options[LAYOUT] = (height, width, context.shape[1])   # PuLID's single blocks: text incl. words
        acting = _acting_rows(len(x), transformer_options)
        transformer_options[OVERRIDE] = _joint_override(layout, transformer_options.get(OVERRIDE), acting)
        return executor(x, timestep, context, *args, **kwargs)


def _tokens(reference_latent, patch) -> int:
    h, w = reference_latent.shape[-2:]
    return -(-h // patch) * -(-w // patch)


def _acting_rows(batch: int, transformer_options):
    """The batch rows whose words act, as JointLayout.attend takes them: every row of the positive prompt,
    none of the negative's (ComfyUI batches cond / uncond chunks in this order). slice(None): all rows."""
    kinds = transformer_options.get("cond_or_uncond") or [0]
    per = batch // len(kinds)
    act = torch.tensor([k != 1 for k in kinds for _ in range(per)], dtype=torch.bool)
    if bool(act.all()):
        return slice(None)
    return act.nonzero()[:, 0] if bool(act.any()) else None


def _joint_override(layout, previous, acting):
    """The attention override for one call: the joint sequence's two attention calls (see JointLayout).

    The call without words runs the model's own attention function (``func``: its output is the same to the
    bit as without words). The masked call, over the few rows that see words, runs ComfyUI's
    ``attention_pytorch`` (torch's fused attention, ComfyUI's default on GPUs, takes the additive mask without
    building the score matrix): on the CPU the model's sub-quadratic attention costs twice as much per call.
    (``kwargs`` carry ComfyUI's ``_inside_attn_wrapper``, so attention_pytorch does not call this override again.)
    """
    from comfy.ldm.modules.attention import attention_pytorch

    def override(func, q, k, v, heads, mask=None, **kwargs):
        def attention(q_, k_, v_, bias):
            chosen = func if bias is None else attention_pytorch
            if previous is not None:
                return previous(chosen, q_, k_, v_, heads, mask=bias, **kwargs)
            return chosen(q_, k_, v_, heads, mask=bias, **kwargs)
        if mask is not None or q.shape[2] != layout.length or not kwargs.get("skip_reshape"):
            raise ValueError("the person prompts on Flux cannot share an attention with an attention mask or "
                             "another text layout: leave person_prompts unconnected with this model")
        return layout.attend(attention, q, k, v, acting)
    return override


def add_person_words(model, words):
    """A clone of the Flux ``model`` whose calls carry ``words`` (TokenWords) beside the main prompt."""
    import comfy.patcher_extension

    clone = model.clone()
    kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    clone.remove_wrappers_with_key(kind, WRAPPER_KEY)
    clone.add_wrapper_with_key(kind, WRAPPER_KEY, PersonWordsWrapper(words))
    return clone


def person_words(model):
    """The TokenWords of the Flux ``model``'s person words, or None."""
    import comfy.patcher_extension

    found = [w for w in model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
             if is_words_wrapper(w)]
    return found[-1].words if found else None


def without_words(model):
    """The model without the person words (inversion follows the picture as it is)."""
    if person_words(model) is None:
        return model
    import comfy.patcher_extension

    clone = model.clone()
    clone.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    return clone


def cropped_words(model, box_xyxy, out_hw):
    """The model with its person words' masks cut to a zoomed crop (IDRestore, one face at a time)."""
    words = person_words(model)
    if words is None:
        return model
    cropped = words.cropped(box_xyxy, out_hw)
    return without_words(model) if cropped is None else add_person_words(without_words(model), cropped)


def flux_words(model, prompts, image_faces, identities=None, face_indices=None):
    """TokenWords for PersonPrompt's ``prompts`` on a Flux ``model`` (None: no words on any face); a prompt
    follows the identity at its position (placed as MultiIDApply places it) or names its face."""
    from ...magicid_core.diffusion.placement import assign_faces
    from ...magicid_core.diffusion.token_words import words_patch

    if not prompts:
        return None
    identity_faces = assign_faces(list(identities), image_faces.faces, face_indices) if identities else None
    width = model.get_model_object("diffusion_model").params.context_in_dim
    return words_patch(list(prompts), image_faces, identity_faces, width)


def add_flux_words(model, image_faces, prompts):
    """IDRestore's person_prompts on Flux: the words on their faces (by position or named face), the model
    itself when none goes to a face."""
    words = flux_words(model, prompts, image_faces)
    return model if words is None else add_person_words(model, words)
