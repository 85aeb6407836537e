"""The DiT block patch protocol: how MultiIDApply's PuLID identities live inside a Flux MODEL.

ComfyUI's side (comfy/ldm/flux/model.py). A pack may replace a Flux block by registering a
callable under ``model_options["transformer_options"]["patches_replace"]["dit"][key]``, key
``("double_block", i)`` or ``("single_block", i)``; Flux then calls ``patch(args, extra)`` with
``args = {img, txt (double blocks), vec, pe, attn_mask, transformer_options}`` and
``extra = {"original_block": fn}``; ``fn(args)`` runs the block and returns ``{"img", "txt"}``
(double) or ``{"img"}`` (single, where img is [text tokens ; image tokens]). The image tokens
are the latent's 2x2 patches, row-major, followed by any reference latents' (Kontext).
``forward_orig`` is never swapped here; lldacing's ApplyPulidFlux swaps it during sampling and
then passes ``transformer_options`` in ``extra`` instead of ``args``: both are read.

Ours. :class:`MagicIDBlock`, one per hooked block, a small dispatcher in the manner of
lldacing's ``DitDoubleBlockReplace``: its ``base`` (what was registered at the key before, None:
the block itself) runs first, then every entry whose sigma window holds the current sigma adds
``callback(image_tokens, transformer_options=..., **kwargs)`` computed from the block's own output
(before any residual, the base's included): chained entries sum as ApplyPulidFlux sums them.
``add(callback, **kwargs)`` is that pack's signature, so ApplyPulidFlux applied after MultiIDApply
stacks its entries on our dispatcher. MultiIDApply's entry is :class:`PulidIdentityResidual`,
whose maths is magicid_core's TokenIdentities and PuLID-Flux's block cross-attentions.

Where the image tokens are: a DIFFUSION_MODEL wrapper (:func:`record_token_layout`) notes the
latent's token grid and the text length in transformer_options for the blocks of that call.
"""

from __future__ import annotations

import torch

from .attn2 import current_sigma

DISPATCHER = "magicid.dit.dispatcher/1"
IDENTITY = "magicid.dit.identity/1"
LAYOUT = "magicid_token_layout"       # transformer_options key: (grid height, grid width, text tokens)
WRAPPER_KEY = "magicid_token_layout"
WINDOW = ("sigma_start", "sigma_end")


def is_dispatcher(obj) -> bool:
    return getattr(type(obj), "PROTOCOL", None) == DISPATCHER


def is_identity_entry(callback) -> bool:
    return getattr(type(callback), "PROTOCOL", None) == IDENTITY


def record_token_layout(executor, x, timestep, context, *args, **kwargs):
    """DIFFUSION_MODEL wrapper (Flux's ``_forward`` signature): the token grid of the latent x and the
    text length, for the blocks of this call. Patches of p x p latent pixels, padded as Flux pads."""
    transformer_options = args[4] if len(args) > 4 else kwargs.get("transformer_options")
    if transformer_options is not None:
        patch = executor.class_obj.patch_size
        height, width = x.shape[-2:]
        transformer_options[LAYOUT] = (-(-height // patch), -(-width // patch), context.shape[1])
    return executor(x, timestep, context, *args, **kwargs)


def token_layout(transformer_options) -> tuple[int, int, int]:
    layout = transformer_options.get(LAYOUT)
    if layout is None:
        raise RuntimeError("MultiIDApply's Flux blocks ran without their token layout: the model lost "
                           "MultiIDApply's wrapper (a node that strips wrappers ran after it); apply MultiIDApply last")
    return layout


class PulidIdentityResidual:
    """MultiIDApply's entry: each identity's PuLID residual on the image tokens its face owns."""

    PROTOCOL = IDENTITY

    def __init__(self, identities, pulid):
        self.identities = identities      # magicid_core.diffusion.token_identities.TokenIdentities
        self.pulid = pulid                # magicid_core.identity.pulid_flux.PulidFlux, shared by every block

    def __deepcopy__(self, memo):
        # ModelPatcher.clone() deep-copies model_options: an entry is never changed once made, so clones
        # share it (and the one copy of PuLID's weights) instead of copying 1.2 GB per clone.
        return self

    def __call__(self, img, transformer_options=None, ca_index=0, **_window):
        """The residual on ``img``'s image tokens (the dit entry protocol, as ApplyPulidFlux's entries)."""
        residual = torch.zeros_like(img)
        self.add_to(img, residual, transformer_options, ca_index)
        return residual

    def add_to(self, img, target, transformer_options=None, ca_index=0) -> None:
        """target += the residual computed from ``img`` (both (B, image tokens, D)); in place, on owned tokens only."""
        height, width, _ = token_layout(transformer_options or {})
        grid = height * width             # the latent's tokens; reference latents (Kontext) follow them
        self.identities.add_residuals(self.pulid.cross_attentions[ca_index], img[:, :grid], target[:, :grid],
                                      height, width)

    def to(self, device_or_dtype):
        self.pulid.to(device_or_dtype)    # as the reference casts its CAs to the model's dtype
        return self


class MagicIDBlock:
    """One hooked Flux block: ``base`` (or the block itself), plus residual entries on its image tokens."""

    PROTOCOL = DISPATCHER

    def __init__(self, kind: str, base=None, callback=(), kwargs=()):
        self.kind = kind                  # "double_block" | "single_block"
        self.base = base
        self.callback = list(callback)
        self.kwargs = list(kwargs)

    def add(self, callback, **kwargs) -> "MagicIDBlock":
        missing = set(WINDOW) - set(kwargs)
        if missing:
            raise ValueError(f"a dit entry needs its sigma window: {sorted(missing)} not given")
        self.callback.append(callback)
        self.kwargs.append(kwargs)
        return self

    def __call__(self, args, extra):
        options = args.get("transformer_options") or extra.get("transformer_options") or {}
        out, block_img = self._run_base(args, extra)
        sigma = current_sigma(options)
        active = [(c, kw) for c, kw in zip(self.callback, self.kwargs)
                  if sigma is None or kw["sigma_start"] >= sigma >= kw["sigma_end"]]
        if not active:
            return out
        text = token_layout(options)[2] if self.kind == "single_block" else 0
        tokens = block_img[:, text:]
        img = out["img"].clone()          # block_img may be out["img"]: every entry reads it unchanged
        for callback, kwargs in active:
            rest = {k: v for k, v in kwargs.items() if k not in WINDOW}
            if is_identity_entry(callback):
                callback.add_to(tokens, img[:, text:], transformer_options=options, **rest)
            else:
                img[:, text:] += callback(tokens, transformer_options=options, **rest)
        out["img"] = img
        return out

    def _run_base(self, args, extra):
        """(the base's output, the block's own output img). Every residual is computed from the block's
        own output, as ApplyPulidFlux computes each of its chained entries, so stacking sums the same terms."""
        if self.base is None:
            out = extra["original_block"](args)
            return out, out["img"]
        seen = {}

        def block(block_args):
            result = extra["original_block"](block_args)
            seen["img"] = result["img"]
            return result
        out = self.base(args, {**extra, "original_block": block})
        return out, seen.get("img", out["img"])

    # -- ComfyUI's patch conventions -------------------------------------------------------------
    def to(self, device_or_dtype, *args, **kwargs) -> "MagicIDBlock":
        for callback in self.callback:
            if is_identity_entry(callback):
                callback.to(device_or_dtype)
        if hasattr(self.base, "to"):
            moved = self.base.to(device_or_dtype, *args, **kwargs)
            if moved is not self.base:
                return self._copy(base=moved)
        return self

    def models(self) -> list:
        return self.base.models() if hasattr(self.base, "models") else []

    def identity_entries(self) -> list[PulidIdentityResidual]:
        return [c for c in self.callback if is_identity_entry(c)]

    def _copy(self, **changes) -> "MagicIDBlock":
        fields = {"kind": self.kind, "base": self.base, "callback": self.callback,
                  "kwargs": [dict(kw) for kw in self.kwargs]}
        return MagicIDBlock(**{**fields, **changes})


def dit_patches(model) -> dict:
    return model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})


UNET, FLUX = "unet", "flux"
# ComfyUI's model classes (comfy/model_base.py) MultiIDApply does not support yet, by their users' names
NOT_YET = {"SD3": "SD3", "QwenImage": "Qwen-Image", "Flux2": "Flux.2", "Chroma": "Chroma",
           "ChromaRadiance": "Chroma Radiance", "HunyuanDiT": "HunyuanDiT", "HunyuanImage21": "HunyuanImage 2.1",
           "Lumina2": "Lumina 2", "AuraFlow": "AuraFlow", "PixArt": "PixArt", "HiDream": "HiDream",
           "WAN21": "Wan", "CosmosVideo": "Cosmos", "LTXV": "LTX-Video", "HunyuanVideo": "HunyuanVideo"}


def model_family(model) -> str:
    """UNET (SD1.5 / SDXL and their kin: cross-attention adapters) or FLUX (Flux.1 dev / schnell: PuLID-Flux)."""
    net = model.get_model_object("diffusion_model")
    if all(hasattr(net, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        return UNET
    name = type(model.model).__name__
    if name == "Flux" and hasattr(net, "double_blocks") and hasattr(net, "single_blocks"):
        return FLUX
    raise ValueError(f"MultiIDApply works on SD1.5 / SDXL and Flux.1 (dev, schnell) models; this model is "
                     f"{NOT_YET.get(name, name)}, which it does not support yet")


def flux_blocks(model) -> tuple[int, int, int]:
    """(double blocks, single blocks, hidden width) of a Flux MODEL."""
    net = model.get_model_object("diffusion_model")
    return len(net.double_blocks), len(net.single_blocks), net.hidden_size


def flux_token_grid(model, height: int, width: int) -> tuple[int, int]:
    """Tokens of a height x width picture: its latent (8x smaller, ComfyUI's Flux VAE) in patches of p x p."""
    patch = model.get_model_object("diffusion_model").patch_size
    latent_h, latent_w = -(-height // 8), -(-width // 8)
    return -(-latent_h // patch), -(-latent_w // patch)


def add_pulid_identities(model, identities, pulid, blocks: list[tuple[str, int]]):
    """A clone of ``model`` with MultiIDApply's PuLID identities at ``blocks`` (CA i at blocks[i]).

    Whatever is registered at a block already is kept: a dispatcher of ours gets one more entry (in a
    copy), another pack's replacement (ApplyPulidFlux's) becomes the base of a new dispatcher.
    """
    import comfy.patcher_extension

    entry = PulidIdentityResidual(identities, pulid)
    window = dict(zip(WINDOW, identities.sigma_range))
    clone = model.clone()
    registered = dit_patches(clone)
    for ca_index, key in enumerate(blocks):
        existing = registered.get(key)
        dispatcher = existing._copy() if is_dispatcher(existing) else MagicIDBlock(key[0], base=existing)
        clone.set_model_patch_replace(dispatcher.add(entry, ca_index=ca_index, **window), "dit", *key)
    kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    if not clone.get_wrappers(kind, WRAPPER_KEY):
        clone.add_wrapper_with_key(kind, WRAPPER_KEY, record_token_layout)
    return clone



def pulid_identities(model) -> list:
    """The TokenIdentities of every MultiIDApply applied to this Flux ``model``, oldest first (IDRestore reads them)."""
    found = {}
    for patch in dit_patches(model).values():
        if is_dispatcher(patch):
            for entry in patch.identity_entries():
                found.setdefault(id(entry.identities), entry.identities)
    return list(found.values())
