"""What IDRestore needs from a Flux MODEL patched by MultiIDApply: its identities and person words,
the model without them (inversion) and with them cut to one face's crop (regeneration).

The Flux counterpart of attn2.py's ``identity_attentions`` / ``without_identities`` /
``cropped_identities``: the identities live in dit.py's MagicIDBlock dispatchers (PulidIdentityResidual
entries, TokenIdentities with masks on the FACES image), the words in dit_words.py's wrapper.
Cropping cuts the masks to the crop and resizes them to its working size, so each identity owns the
tokens of its face on the crop's own token grid. Registered objects are never changed: copies go into clones.
"""

from __future__ import annotations

from ...magicid_core.diffusion.ownership import crop_and_resize
from ...magicid_core.diffusion.token_identities import TokenIdentities
from .dit import PulidIdentityResidual, dit_patches, is_dispatcher, is_identity_entry, pulid_identities
from .dit_words import cropped_words, person_words, without_words


def flux_people(model) -> list:
    """Every TokenIdentities and TokenWords on the Flux ``model`` (each has ``masks`` on the FACES image)."""
    words = person_words(model)
    return pulid_identities(model) + ([words] if words is not None else [])


def without_flux_people(model):
    """The model without MultiIDApply's identities and words; every other patch kept at its key."""
    return _replace_entries(without_words(model), lambda entry: None)


def cropped_flux_people(model, box_xyxy, out_hw):
    """A clone whose identities and words act on a zoomed crop (box in FACES pixels, out_hw its size)."""
    done = {}

    def crop(entry):
        if id(entry) not in done:
            identities = cropped_identities(entry.identities, box_xyxy, out_hw)
            done[id(entry)] = None if identities is None else PulidIdentityResidual(identities, entry.pulid)
        return done[id(entry)]
    return _replace_entries(cropped_words(model, box_xyxy, out_hw), crop)


def cropped_identities(identities: TokenIdentities, box_xyxy, out_hw) -> TokenIdentities | None:
    """The identities whose faces reach into the crop, masks cut to it; None when none does."""
    masks = crop_and_resize(identities.masks, box_xyxy, out_hw)
    keep = [i for i, m in enumerate(masks) if (m > 0).any()]
    if not keep:
        return None
    return TokenIdentities(identities.tokens[keep], masks[keep], [identities.weights[i] for i in keep],
                           identities.sigma_range)


def _replace_entries(model, replace):
    """A clone in which every identity entry of our dispatchers is ``replace(entry)`` (None: dropped);
    a dispatcher left without entries gives its key back to its base (or to the block itself)."""
    if not any(is_dispatcher(p) and p.identity_entries() for p in dit_patches(model).values()):
        return model
    clone = model.clone()
    registered = clone.model_options["transformer_options"]["patches_replace"]["dit"]
    for key, patch in list(registered.items()):
        if not is_dispatcher(patch):
            continue
        kept = [(c if not is_identity_entry(c) else replace(c), kw) for c, kw in zip(patch.callback, patch.kwargs)]
        kept = [(c, kw) for c, kw in kept if c is not None]
        if kept:
            registered[key] = patch._copy(callback=[c for c, _ in kept], kwargs=[dict(kw) for _, kw in kept])
        elif patch.base is not None:
            registered[key] = patch.base
        else:
            del registered[key]
    return clone
