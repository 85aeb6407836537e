"""Identity adapters people already have: IP-Adapter FaceID, FaceID Plus / Plus v2 (SD1.5 / SDXL) and InstantID.

Both files hold two state dicts:
- ``image_proj``: turns a 512-d ArcFace embedding into T context tokens of width C
  (FaceID: an MLP, T = 4 or 16; InstantID: a perceiver Resampler, T = 16, C = 2048; FaceID Plus:
  the MLP's 4 tokens refined over the face's CLIP vision features; projections.py);
- ``ip_adapter``: per cross-attention layer ``{n}.to_k_ip.weight`` / ``{n}.to_v_ip.weight``
  of shape (layer width, C), n = 1, 3, 5, ... in diffusers order (down, up, mid blocks).
  FaceID files also carry LoRA keys (``*_lora.*``): those belong to the separate FaceID
  LoRA, which is applied with a LoRA loader, so they are ignored here.

``.safetensors`` files keep the same keys flat, prefixed ``image_proj.`` / ``ip_adapter.``.
MGMICA (mask-guided multi-identity cross-attention, diffusion/attention.py) reads their tokens;
glossary: docs/ARCHITECTURE.md.

What each adapter reads, as the reference packs feed it (IPAdapter_plus, ComfyUI_InstantID):
- FaceID (MLP) and FaceID portrait: the L2-normalised ArcFace vector; "no identity" = zeros.
- FaceID portrait-unnorm (a Resampler, named ``*unnorm*`` as IPAdapter_plus tells it apart):
  the raw vector; "no identity" = zeros.
- FaceID Plus / Plus v2 (``perceiver_resampler.*`` keys; v2 told by ``plusv2`` in the file name, as
  IPAdapter_plus tells it): the unit vector and the face's CLIP features (face_clip.py); "no identity" =
  zeros with a black image's CLIP features; v2 adds ``weight_faceidv2`` x the perceiver's output to the MLP's.
- InstantID (a Resampler): the raw vector; "no identity" = ``noise * rand`` seeded from the
  vector's sum (ApplyInstantID's negative; its node fixes noise at 0.35), zeros at noise 0.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .embedding_models import ARCFACE, DLIB
from .projections import FaceIDPlusProjection, FaceIDProjection, ResamplerProjection, faceid_plus_from

ARCFACE_DIM = ARCFACE.dim
INSIGHTFACE_HINT = (f"it needs {ARCFACE_DIM}-d ArcFace embeddings: put the antelopev2 or buffalo_l pack into "
                    "ComfyUI/models/insightface/models/ (e.g. models/insightface/models/antelopev2/glintr100.onnx; "
                    "they run on onnxruntime, no insightface package needed), "
                    "then build the identities again")
_IP_KEY = re.compile(r"^(\d+)\.to_([kv])_ip\.weight$")
_FAMILY = {768: "SD1.5", 1024: "SD2", 2048: "SDXL"}
KINDS = {"faceid": "FaceID", "faceid_plus": "FaceID Plus", "faceid_plusv2": "FaceID Plus v2",
         "instantid": "InstantID"}
# Real FaceID / InstantID weights have an RMS of about 0.01 (linear layers) to 1 (layer-norm
# gains); a tensor 100x past that is a damaged or doctored file, whose tokens would swamp the text.
WEIGHT_RMS_LIMIT = 100.0
INSTANTID_NOISE = 0.35      # ApplyInstantID's negative-embedding noise (fixed in that node)


def multi_head_attention(q, k, v, heads: int, attn_mask=None) -> torch.Tensor:
    """Scaled dot-product attention on (B, N, heads*d) tensors, split into heads and merged back.

    ``attn_mask``: bool (N_q, N_k), True where a query may see a key. The MGMICA patch's default
    attention (diffusion/attention.py).
    """
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)      # (B, heads, N, d)
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=attn_mask)
    return out.transpose(1, 2).flatten(2)


@dataclass
class IdentityAdapter:
    """A loaded adapter: the token projection and the per-layer key/value weights."""

    name: str
    kind: str                      # a KINDS key: "faceid", "faceid_plus", "faceid_plusv2" or "instantid"
    projection: nn.Module          # (N, embedding_dim) -> (N, tokens, context_dim)
    to_k: list[torch.Tensor]       # per cross-attention layer, (layer width, context_dim)
    to_v: list[torch.Tensor]
    embedding_dim: int
    context_dim: int
    tokens: int
    reads_raw: bool = False        # reads raw ArcFace vectors (InstantID, FaceID portrait-unnorm)
    clip_width: int | None = None  # FaceID Plus / v2: the width of the CLIP vision features it also reads

    @property
    def family(self) -> str:
        return _FAMILY.get(self.context_dim, f"{self.context_dim}-wide context")

    @property
    def reads_clip(self) -> bool:
        return self.clip_width is not None

    def describe(self) -> str:
        clip = f", reads {self.clip_width}-wide CLIP vision features" if self.reads_clip else ""
        return (f"{self.name} ({KINDS.get(self.kind, self.kind)}, {self.family}: {len(self.to_k)} cross-attention "
                f"layers, {self.tokens} tokens{clip})")

    def check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> float32 (N, D); explains a dlib 128-d or otherwise wrong length."""
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != self.embedding_dim:
            got = e.shape[-1] if e.ndim else 0
            what = f"dlib {got}-d embeddings" if got == DLIB.dim else f"{got}-d embeddings"
            raise ValueError(f"identities: {self.describe()} cannot use {what}: {INSIGHTFACE_HINT}")
        if not np.isfinite(e).all():
            raise ValueError("an identity embedding holds NaN or infinite values")
        return e

    @torch.no_grad()
    def tokens_for(self, embeddings: np.ndarray, negative_noise: float = 0.0, clip=None,
                   faceidv2_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity tokens and the adapter's "no identity" tokens, (N, T, C).

        "No identity" is the projection of zeros, or with ``negative_noise`` > 0 (InstantID)
        of ``negative_noise * rand``, seeded per identity as ApplyInstantID seeds it.
        FaceID Plus / v2 also read ``clip`` = (cond, uncond) CLIP features, each (N, tokens, width)
        (face_clip.clip_inputs); "no identity" pairs zeros with the black image's features, and
        Plus v2 adds ``faceidv2_weight`` x the perceiver's output to the MLP tokens.
        """
        e = torch.from_numpy(self.check_embeddings(embeddings))
        no_identity = negative_embeddings(e, negative_noise)
        if not self.reads_clip:
            return self._project(e), self._project(no_identity)
        if clip is None:
            raise ValueError(f"{self.describe()} needs the faces' CLIP vision features")
        features, no_features = (torch.as_tensor(np.asarray(c, np.float32)) for c in clip)
        plus = {"scale": float(faceidv2_weight), "shortcut": self.kind == "faceid_plusv2"}
        return self._project(e, features, **plus), self._project(no_identity, no_features, **plus)

    def _project(self, rows: torch.Tensor, features: torch.Tensor | None = None, **plus) -> torch.Tensor:
        """(N, T, C) tokens, one identity at a time, as the reference packs project one face per
        application: a product over several rows may round differently from a single row's."""
        dtype = next(self.projection.parameters()).dtype
        if features is None:
            return torch.cat([self.projection(row[None].to(dtype)) for row in rows]).float()
        return torch.cat([self.projection(row[None].to(dtype), f[None].to(dtype), **plus)
                          for row, f in zip(rows, features)]).float()

    def check_fits(self, layer_shapes: list[tuple[int, int]], model_name: str = "this model") -> None:
        """Raise if the layers (width, context width), in diffusers order, are not the adapter's."""
        mine = [tuple(k.shape) for k in self.to_k]
        if [tuple(s) for s in layer_shapes] == mine:
            return
        model_family = _FAMILY.get(layer_shapes[0][1], "") if layer_shapes else ""
        raise ValueError(
            f"{self.describe()} does not fit {model_name}"
            f"{f' ({model_family})' if model_family else ''}: the model has {len(layer_shapes)} "
            f"cross-attention layers of widths {_summary(layer_shapes)}, the adapter "
            f"{len(mine)} of {_summary(mine)}. Use the adapter made for this base model.")


def negative_embeddings(embeddings: torch.Tensor, noise: float) -> torch.Tensor:
    """(N, D) "no identity" inputs: zeros, or ComfyUI_InstantID's ``noise * rand_like(e)`` with
    the generator seeded by ``int(sum(e)) % 1000000007`` (one identity at a time; a local
    generator gives the numbers torch.manual_seed would, without touching the global seed)."""
    if noise <= 0:
        return torch.zeros_like(embeddings)
    rows = []
    for e in embeddings:
        generator = torch.Generator().manual_seed(int(torch.sum(e).item()) % 1000000007)
        rows.append(noise * torch.rand(e.shape, generator=generator, dtype=e.dtype))
    return torch.stack(rows)


def _summary(shapes) -> str:
    widths = sorted({w for w, _ in shapes})
    contexts = sorted({c for _, c in shapes})
    return f"{widths} reading {contexts}-wide text"


def parse_adapter(state: dict, name: str = "adapter", file_keys: list[str] | None = None) -> IdentityAdapter:
    """Nested {"image_proj": ..., "ip_adapter": ...} state dict -> IdentityAdapter (checked).

    ``file_keys``: the keys as stored in the file (for a flat .safetensors file), for the message.

    A Resampler is InstantID's, unless the name says ``unnorm`` (or the state carries
    IPAdapter_plus's ``portraitunnorm`` flag): then it is FaceID portrait-unnorm, told apart by
    name as IPAdapter_plus does (the two files have one key layout).
    """
    if not isinstance(state, dict) or not state.get("image_proj") or not state.get("ip_adapter"):
        if file_keys is None:
            file_keys = list(state) if isinstance(state, dict) else [type(state).__name__]
        missing = [part for part in ("image_proj", "ip_adapter")
                   if not (isinstance(state, dict) and state.get(part))]
        raise ValueError(f"{name} is not an IP-Adapter / InstantID file: it has no {' or '.join(missing)} "
                         f"weights; its first keys are {sorted(map(str, file_keys))[:6]}. Use "
                         "ip-adapter-faceid(-plusv2)_sd15.bin / _sdxl.bin, a FaceID portrait model or InstantID's "
                         "ip-adapter.bin")
    proj, kind = _build_projection(dict(state["image_proj"]), name)
    portrait_unnorm = kind == "instantid" and (state.get("portraitunnorm") or "unnorm" in name.lower())
    if kind == "faceid_plus" and (state.get("faceidplusv2") or "plusv2" in name.lower()):
        kind = "faceid_plusv2"   # one key layout: IPAdapter_plus tells v2 by the file name too
    to_k, to_v = _layer_weights(dict(state["ip_adapter"]), name)
    context_dim = to_k[0].shape[1]
    adapter = IdentityAdapter(name=name, kind="faceid" if portrait_unnorm else kind, projection=proj.eval(),
                              to_k=to_k, to_v=to_v, embedding_dim=proj.embedding_dim,
                              context_dim=proj.context_dim, tokens=proj.tokens,
                              reads_raw=kind == "instantid",
                              clip_width=proj.clip_dim if isinstance(proj, FaceIDPlusProjection) else None)
    if context_dim != adapter.context_dim:
        raise ValueError(f"{name}: its projection makes {adapter.context_dim}-wide tokens but its "
                         f"attention layers read {context_dim}-wide ones; the file is inconsistent")
    check_weights(name, {**{f"image_proj.{k}": v for k, v in proj.state_dict().items()},
                         **{f"ip_adapter.{2 * i + 1}.to_{kv}_ip.weight": w
                            for kv, ws in (("k", to_k), ("v", to_v)) for i, w in enumerate(ws)}})
    return adapter


def check_weights(name: str, weights: dict[str, torch.Tensor]) -> None:
    """Every weight the adapter uses is finite and of a sane size (see WEIGHT_RMS_LIMIT); once, at load."""
    for key, w in weights.items():
        if not w.is_floating_point():
            continue
        if not torch.isfinite(w).all():
            raise ValueError(f"{name}: weight {key} holds NaN or infinite values; the file is damaged, "
                             "download it again")
        rms = float(w.double().square().mean().sqrt()) if w.numel() else 0.0
        if rms > WEIGHT_RMS_LIMIT:
            raise ValueError(f"{name}: weight {key} has an RMS of {rms:.3g}, over {WEIGHT_RMS_LIMIT:g} where "
                             "real adapter files stay near 0.01..1; the file is damaged, download it again")


def _build_projection(sd: dict, name: str) -> tuple[nn.Module, str]:
    if "perceiver_resampler.proj_in.weight" in sd:
        if "perceiver_resampler.layers.0.0.to_out.weight" in sd and \
                sd["perceiver_resampler.layers.0.0.to_out.weight"].shape[0] == 4096:
            raise ValueError(f"{name} is the Kolors FaceID Plus v2 adapter, which MultiIDApply does not read: "
                             "use ip-adapter-faceid-plusv2_sd15.bin or _sdxl.bin")
        try:
            return _load(faceid_plus_from(sd), sd, name), "faceid_plus"
        except KeyError as e:
            raise ValueError(f"{name}: its FaceID Plus weights lack {e}; the file is damaged") from None
    if "latents" in sd and "proj_in.weight" in sd:
        embedding_dim = sd["proj_in.weight"].shape[1]
        if embedding_dim != ARCFACE_DIM:
            raise ValueError(f"{name} is an IP-Adapter Plus model for CLIP image embeddings "
                             f"({embedding_dim}-d), not a face identity adapter")
        try:
            return _load(_resampler_from(sd), sd, name), "instantid"
        except KeyError as e:
            raise ValueError(f"{name}: its Resampler weights lack {e}; the file is damaged") from None
    if {"proj.0.weight", "proj.2.weight", "norm.weight"} <= set(sd) and "proj.3.weight" not in sd:
        e, hidden = sd["proj.0.weight"].shape[1], sd["proj.0.weight"].shape[0]
        context_dim = sd["norm.weight"].shape[0]
        tokens, rest = divmod(sd["proj.2.weight"].shape[0], context_dim)
        if e != ARCFACE_DIM or rest:
            raise ValueError(f"{name} is an MLP IP-Adapter for {e}-d CLIP image embeddings, not FaceID")
        return _load(FaceIDProjection(e, hidden, context_dim, tokens), sd, name), "faceid"
    raise ValueError(f"{name} is not a face identity adapter MultiIDApply knows (IP-Adapter FaceID, FaceID "
                     f"Plus / Plus v2 or InstantID): its image_proj has keys {sorted(sd)[:6]}")


def _resampler_from(sd: dict) -> ResamplerProjection:
    """Read the Resampler's sizes from its weights (InstantID uses 64-wide heads)."""
    _, tokens, dim = sd["latents"].shape
    depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    heads = sd["layers.0.0.to_q.weight"].shape[0] // 64
    return ResamplerProjection(embedding_dim=sd["proj_in.weight"].shape[1], dim=dim,
                               context_dim=sd["proj_out.weight"].shape[0], tokens=tokens,
                               depth=depth, heads=heads, ff_hidden=sd["layers.0.1.1.weight"].shape[0])


def _load(module: nn.Module, sd: dict, name: str) -> nn.Module:
    """load_state_dict with a message that names the file and the offending keys."""
    try:
        module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except (RuntimeError, AttributeError) as e:
        raise ValueError(f"{name}: its image_proj weights do not match the expected layout: "
                         f"{str(e).splitlines()[0][:300]}") from None
    return module.float()


def _layer_weights(sd: dict, name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The to_k_ip / to_v_ip weights in layer order; checks numbering and shapes."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        m = _IP_KEY.match(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    numbers = sorted(found)
    if not numbers:
        raise ValueError(f"{name} has no to_k_ip / to_v_ip attention weights")
    if numbers != list(range(1, 2 * len(numbers), 2)):
        raise ValueError(f"{name}: cross-attention layers are numbered {numbers[:8]}..., "
                         "expected 1, 3, 5, ...: the file is damaged or of another kind")
    to_k, to_v = [], []
    for n in numbers:
        k, v = found[n].get("k"), found[n].get("v")
        if k is None or v is None or k.ndim != 2 or k.shape != v.shape:
            raise ValueError(f"{name}: layer {n} needs to_k_ip and to_v_ip weights of one 2-d shape")
        to_k.append(k.float())
        to_v.append(v.float())
    if len({k.shape[1] for k in to_k}) != 1:
        raise ValueError(f"{name}: its layers read context tokens of different widths")
    return to_k, to_v


def nest_flat_keys(flat: dict) -> dict:
    """Flat safetensors keys ("image_proj.x", "ip_adapter.y") -> the nested layout of .bin files."""
    nested: dict = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        head = "ip_adapter" if head == "adapter_modules" else head
        if head in nested and rest:
            nested[head][rest] = value
    return nested


def load_adapter_file(path: str) -> IdentityAdapter:
    """Load an adapter file safely (safetensors, or torch.load with weights_only=True)."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"adapter file {path} does not exist: put ip-adapter-faceid_sd15.bin / "
                                "ip-adapter-faceid_sdxl.bin into models/ipadapter or InstantID's "
                                "ip-adapter.bin into models/instantid")
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file
            flat = load_file(path, device="cpu")
            file_keys, state = list(flat), nest_flat_keys(flat)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            file_keys = None
            if isinstance(state, dict) and "adapter_modules" in state and "ip_adapter" not in state:
                state = {**state, "ip_adapter": state["adapter_modules"]}
    except Exception as e:  # torch / safetensors say "unpickling error", "header too large", ...
        raise ValueError(f"could not read {name} as an adapter file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else 'no details'}); "
                         "is the download complete?") from None
    return parse_adapter(state, name, file_keys)
