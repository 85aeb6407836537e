"""The attn2 patch protocol: how MultiIDApply's identities live inside a MODEL, and how IDRestore
finds, strips and crops them. See docs/ARCHITECTURE.md, "The patch protocol".

ComfyUI's side. A pack may replace a UNet cross-attention ("attn2") layer by registering a
callable under ``model_options["transformer_options"]["patches_replace"]["attn2"][key]``;
ComfyUI then calls ``patch(q, k, v, extra_options) -> out`` instead of the layer's attention.
``key`` is (block name, block id, transformer index), or (block name, block id) for every
transformer of the block; ComfyUI looks the 3-part key up first. When the model moves,
``ModelPatcher.model_patches_to(x)`` calls ``patch.to(x)`` on every registered object that has
``to`` and keeps what it returns (x: the load device, then the model's dtype); ComfyUI loads the
models ``patch.models()`` lists.
``ModelPatcher.clone()`` deep-copies ``model_options``, patch objects included. A registered
object of ours is never changed: each function below clones the given model and replaces
objects in the clone, wrapping the clone's own copies of other packs' patches.

Ours. MultiIDApply registers one :class:`MagicIDAttn2` per cross-attention layer, a small
dispatcher in the manner of IPAdapter_plus's ``Attn2Replace``:

- ``base``: what answered at that key before (another pack's patch), or None for ComfyUI's own
  attention. It runs first, so a patch that was there keeps working.
- entries added with ``add(callback, **kwargs)``: residuals ``callback(out, q, k, v, extra_options,
  **kwargs)`` summed onto the output while the sampling sigma lies in the entry's window
  ``kwargs["sigma_start"] >= sigma >= kwargs["sigma_end"]``. This is ``Attn2Replace.add``'s
  signature, so IPAdapter_plus (and InstantID, which shares it), finding our dispatcher at its
  key, stacks its own entries on it.
- MultiIDApply's entries are :class:`IdentityResidual`: MGMICA's masked identity residual, whose
  maths lives in ``magicid_core.diffusion.attention`` (MultiIDAttention). One entry serves every layer.

IDRestore needs three things, all here: which identities a model carries (``identity_attentions``),
the model without them (``without_identities``: every other patch stays) and the model with
their masks cut to a face crop (``cropped_identities``).
"""

from __future__ import annotations

# Our two classes are recognised by these tags (class attribute PROTOCOL), not by class identity:
# a second import of the pack (ComfyUI reloading it) makes second classes while models patched
# by the first are still around. A change of either class's interface changes its tag.
DISPATCHER = "magicid.attn2.dispatcher/1"
IDENTITY = "magicid.attn2.identity/1"


def is_dispatcher(obj) -> bool:
    """Whether ``obj`` is a MagicIDAttn2 (of this or another import of the pack)."""
    return getattr(type(obj), "PROTOCOL", None) == DISPATCHER


def is_identity_entry(callback) -> bool:
    """Whether a dispatcher entry is MultiIDApply's IdentityResidual."""
    return getattr(type(callback), "PROTOCOL", None) == IDENTITY


def host_attention(q, k, v, extra_options):
    """ComfyUI's own attention, called as the unpatched layer calls it (bit-identical text path)."""
    return comfy_attention(q, k, v, extra_options["n_heads"], extra_options)


def comfy_attention(q, k, v, heads, extra_options):
    """ComfyUI's own attention in MultiIDAttention's signature: the identities attend through it, as
    IPAdapter_plus's ``optimized_attention(q, ip_k, ip_v, heads)`` does, so one identity computes what it computes."""
    from comfy.ldm.modules.attention import optimized_attention

    return optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"),
                               transformer_options=extra_options)


def current_sigma(extra_options) -> float | None:
    sigmas = extra_options.get("sigmas")
    return None if sigmas is None else float(sigmas.detach().flatten()[0])


class IdentityResidual:
    """MultiIDApply's entry: sum_j w_j M_j Attn(q, K_j, V_j), the identities' masked residual
    (``attention``: a magicid_core.diffusion.attention.MultiIDAttention, which holds tokens, masks and weights)."""

    PROTOCOL = IDENTITY

    def __init__(self, attention):
        self.attention = attention

    def __deepcopy__(self, memo):
        # ModelPatcher.clone() deep-copies model_options. An entry is never changed once made (a
        # crop makes a new one), so clones share it instead of copying the adapter's per-layer
        # projections (about 1.4 GB for SDXL FaceID) on every clone.
        return self

    def __call__(self, out, q, k, v, extra_options, **_window):
        if self.attention.is_inert():
            return 0                          # weight 0, no words: the layer's output, bit for bit
        return self.attention.residual(q, extra_options, k, v)   # k, v: the prompt's, for the people's words

    def cropped(self, box_xyxy, out_hw) -> "IdentityResidual":
        """The same identities on a zoomed crop: masks cut to box (FACES pixels), resized to out_hw."""
        return IdentityResidual(self.attention.cropped(box_xyxy, out_hw))


class MagicIDAttn2:
    """One cross-attention layer's dispatcher: ``base`` (or ComfyUI's attention), plus entries."""

    PROTOCOL = DISPATCHER

    def __init__(self, base=None, callback=(), kwargs=()):
        self.base = base                  # the patch this one replaced at its key, None: none
        self.callback = list(callback)    # entries, named as in Attn2Replace
        self.kwargs = list(kwargs)

    def add(self, callback, **kwargs) -> "MagicIDAttn2":
        """Stack one more residual; kwargs must hold its sigma window (sigma_start, sigma_end)."""
        missing = {"sigma_start", "sigma_end"} - set(kwargs)
        if missing:
            raise ValueError(f"an attn2 entry needs its sigma window: {sorted(missing)} not given")
        self.callback.append(callback)
        self.kwargs.append(kwargs)
        return self

    def __call__(self, q, k, v, extra_options):
        out = host_attention(q, k, v, extra_options) if self.base is None else self.base(q, k, v, extra_options)
        sigma = current_sigma(extra_options)
        for callback, kwargs in zip(self.callback, self.kwargs):
            if sigma is None or kwargs["sigma_end"] <= sigma <= kwargs["sigma_start"]:
                out = out + callback(out, q, k, v, extra_options, **kwargs)
        return out.to(q.dtype)            # as Attn2Replace: an entry computed in float32 must not upcast

    # -- ComfyUI's patch conventions -------------------------------------------------------------
    def to(self, device_or_dtype, *args, **kwargs) -> "MagicIDAttn2":
        """model_patches_to: the base moves as ComfyUI would move it; our entries move their
        tensors to the layer's device when they run."""
        if not hasattr(self.base, "to"):
            return self
        moved = self.base.to(device_or_dtype, *args, **kwargs)
        return self if moved is self.base else self._copy(base=moved)

    def models(self) -> list:
        """model_patches_models: the models the base needs loaded (ours need none)."""
        return self.base.models() if hasattr(self.base, "models") else []

    # -- what IDRestore needs ----------------------------------------------------------------------
    def identity_entries(self) -> list[IdentityResidual]:
        return [c for c in self.callback if is_identity_entry(c)]

    def without_identities(self):
        """What this key holds without MultiIDApply: another dispatcher, the base, or None."""
        kept = [(c, kw) for c, kw in zip(self.callback, self.kwargs) if not is_identity_entry(c)]
        if not kept:
            return self.base
        return MagicIDAttn2(self.base, *zip(*kept))

    def cropped(self, box_xyxy, out_hw, done: dict) -> "MagicIDAttn2":
        """A copy whose identity entries act on a zoomed crop; ``done`` shares each cropped
        entry among the layers (an entry serves every layer)."""
        def crop(callback):
            if not is_identity_entry(callback):
                return callback
            if id(callback) not in done:
                done[id(callback)] = callback.cropped(box_xyxy, out_hw)
            return done[id(callback)]
        return self._copy(callback=[crop(c) for c in self.callback])

    def _copy(self, **changes) -> "MagicIDAttn2":
        fields = {"base": self.base, "callback": self.callback, "kwargs": [dict(kw) for kw in self.kwargs]}
        return MagicIDAttn2(**{**fields, **changes})


# -- the registry: attn2 patches of a ModelPatcher ---------------------------------------------------

def attn2_patches(model) -> dict:
    """The model's attn2 replacement patches by key (read only)."""
    return model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})


def _registration_key(registered: dict, layer: tuple, single_transformer: bool) -> tuple:
    """Where to register at a layer: at the key of a patch already there (to wrap it), else at the key
    a later pack will look for: (block, id) when the block has one transformer (as SD1.5 packs and
    ComfyUI's set_model_attn2_replace without transformer index do), else (block, id, index)."""
    if layer in registered:
        return layer
    return layer[:2] if single_transformer else layer


def add_identities(model, attention, layers: list[tuple], sigma_range: tuple[float, float]):
    """A clone of ``model`` with MultiIDApply's identities (``attention``) on every layer key.

    sigma_range = (sigma_start, sigma_end): the entry acts while sigma_start >= sigma >= sigma_end.
    Whatever is registered at a key already is kept: a dispatcher of ours gets one more entry
    (in a copy), another pack's patch becomes the base of a new dispatcher.
    """
    entry = IdentityResidual(attention)
    window = {"sigma_start": float(sigma_range[0]), "sigma_end": float(sigma_range[1])}
    per_block = {}
    for layer in layers:
        per_block[layer[:2]] = per_block.get(layer[:2], 0) + 1
    clone = model.clone()
    registered = attn2_patches(clone)        # as cloned: the dicts set_model_attn2_replace replaces
    for layer in layers:
        key = _registration_key(registered, layer, per_block[layer[:2]] == 1)
        existing = registered.get(key, registered.get(layer[:2]))
        if not is_dispatcher(existing):
            existing = MagicIDAttn2(base=existing)
        clone.set_model_attn2_replace(existing._copy().add(entry, **window), *key)
    from .cancel import add_cancel_wrapper     # here: this file also loads alone (a second import)

    add_cancel_wrapper(clone)     # a stock KSampler on this MODEL stops inside a model call too
    return clone


def identity_attentions(model) -> list:
    """The MultiIDAttention of every MultiIDApply applied to ``model``, oldest first."""
    found = {}
    for patch in attn2_patches(model).values():
        if is_dispatcher(patch):
            for entry in patch.identity_entries():
                found.setdefault(id(entry.attention), entry.attention)
    return list(found.values())


def without_identities(model):
    """The model without MultiIDApply's identities, every other attn2 patch kept.
    The model itself when it carries none."""
    if not identity_attentions(model):
        return model
    clone = model.clone()
    registered = attn2_patches(clone)
    for key, patch in list(registered.items()):
        if is_dispatcher(patch):
            rest = patch.without_identities()
            # nothing left, or only the (block, id) patch that answers here anyway: drop the key
            if rest is None or (len(key) == 3 and rest is registered.get(key[:2])):
                del clone.model_options["transformer_options"]["patches_replace"]["attn2"][key]
            else:
                clone.set_model_attn2_replace(rest, *key)
    return clone


def cropped_identities(model, box_xyxy, out_hw):
    """For IDRestore: a clone whose identities act on a zoomed crop of the FACES image.

    box_xyxy: the crop in the FACES image's pixels; out_hw: the crop's new (height, width).
    The model itself when it carries no identity.
    """
    if not identity_attentions(model):
        return model
    clone, done = model.clone(), {}
    for key, patch in attn2_patches(clone).items():
        if is_dispatcher(patch):
            clone.set_model_attn2_replace(patch.cropped(box_xyxy, out_hw, done), *key)
    return clone
