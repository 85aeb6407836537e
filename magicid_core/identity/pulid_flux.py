"""PuLID-Flux: the IDFormer that turns a face into identity tokens, and the per-block
cross-attention (CA) modules that add those tokens to Flux's image tokens.

The file users have (``models/pulid/pulid_flux_v0.9.x.safetensors``) holds two parts:
- ``pulid_encoder.*``: the IDFormer (a perceiver resampler). Its latents are 32 learnt queries
  plus 5 tokens mapped from the identity vector ``id = [ArcFace raw (512) ; EVA-CLIP embedding,
  L2-normalised (768)]``; they attend, two layers per scale, to the identity tokens and to 5
  EVA-CLIP hidden states (each mapped 1024 -> dim). Output: the 32 queries projected to 2048.
- ``pulid_ca.{0..19}.*``: one CA per hooked Flux block (double blocks 0, 2, ..., 18 then single
  blocks 0, 4, ..., 36). Each is a perceiver cross-attention whose queries are the block's image
  tokens and whose keys / values are the 32 identity tokens:

      residual = W_out · softmax(q kᵀ / sqrt(d)) v,   q = W_q LN₂(img),  [k ; v] = W_kv LN₁(id tokens)

Same maths as PuLID's ``flux/encoders_flux.py`` (and lldacing/ComfyUI_PuLID_Flux_ll, which copies
it); written here as small modules whose parameter names follow the file's keys. Never imports comfy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCFACE_DIM = 512
EVA_EMBED_DIM = 768             # EVA02-CLIP-L-14-336's image embedding
EVA_HIDDEN_DIM = 1024           # its hidden states (5 of them feed the IDFormer)
EVA_SCALES = 5
ID_TOKENS = 32                  # IDFormer's output tokens per identity
CA_HEAD_DIM = 128               # every PuLID-Flux CA: 16 heads of 128
DOUBLE_INTERVAL, SINGLE_INTERVAL = 2, 4   # a CA at every 2nd double and every 4th single block
CA_KEY = re.compile(r"^pulid_ca\.(\d+)\.")


def _attend(q, k, v, heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v on (B, Nq, heads*d), (B|1, Nk, heads*d) -> (B, Nq, heads*d).
    mask: None, or (Nq, Nk) bool, True where a query may attend to a key."""
    b, nq, width = q.shape
    d = width // heads
    split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, d).transpose(1, 2)  # noqa: E731
    k, v = split(k), split(v)
    if k.shape[0] != b:             # one identity for every row of the batch (cond and uncond)
        k, v = k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)
    out = F.scaled_dot_product_attention(split(q), k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, nq, width)


class _PerceiverLayers(nn.Module):
    """The weights both perceiver attentions share: LN1 (context), LN2 (queries), q, kv and out projections."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm1, self.norm2 = nn.LayerNorm(kv_dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(kv_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)


class PerceiverAttention(_PerceiverLayers):
    """IDFormer layer: latents attend to [context ; latents]."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__(dim, dim, heads, dim_head)

    def forward(self, context: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        context, latents = self.norm1(context), self.norm2(latents)
        k, v = self.to_kv(torch.cat((context, latents), dim=1)).chunk(2, dim=-1)
        return self.to_out(_attend(self.to_q(latents), k, v, self.heads))


class PulidCrossAttention(_PerceiverLayers):
    """One CA of PuLID-Flux: a block's image tokens (queries) attend to the identity tokens."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dim_head: int = CA_HEAD_DIM):
        super().__init__(dim, kv_dim, heads, dim_head)

    def keys_values(self, id_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 32, kv_dim) identity tokens -> their K, V (each (N, 32, inner))."""
        return self.to_kv(self.norm1(id_tokens)).chunk(2, dim=-1)

    def attend(self, img: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
        """The residual for L image tokens (B, L, dim) from identity keys / values (1|B, S, inner); mask
        (L, S) bool limits each token to some of the keys (several identities' keys side by side)."""
        return self.to_out(_attend(self.to_q(self.norm2(img)), k, v, self.heads, mask))

    def forward(self, id_tokens: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """(1|B, 32, kv_dim), (B, L, dim) -> the residual for those L image tokens (B, L, dim)."""
        return self.attend(img, *self.keys_values(id_tokens))


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    """IDFormer's mappings: Linear, LN, LeakyReLU, Linear, LN, LeakyReLU, Linear (1024 wide)."""
    return nn.Sequential(nn.Linear(d_in, 1024), nn.LayerNorm(1024), nn.LeakyReLU(),
                         nn.Linear(1024, 1024), nn.LayerNorm(1024), nn.LeakyReLU(),
                         nn.Linear(1024, d_out))


class IDFormer(nn.Module):
    """Identity vector (B, 1280) + 5 EVA-CLIP hidden states (B, 577, 1024) -> (B, 32, output_dim)."""

    def __init__(self, dim=1024, depth=10, dim_head=64, heads=16, num_id_token=5, num_queries=ID_TOKENS,
                 output_dim=2048, ff_mult=4):
        super().__init__()
        self.dim, self.num_id_token, self.num_queries = dim, num_id_token, num_queries
        self.layers_per_scale = depth // EVA_SCALES
        self.latents = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.proj_out = nn.Parameter(torch.zeros(dim, output_dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads),
                           nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult, bias=False), nn.GELU(),
                                         nn.Linear(dim * ff_mult, dim, bias=False))])
            for _ in range(depth))
        for scale in range(EVA_SCALES):
            setattr(self, f"mapping_{scale}", _mlp(EVA_HIDDEN_DIM, dim))
        self.id_embedding_mapping = _mlp(ARCFACE_DIM + EVA_EMBED_DIM, dim * num_id_token)

    def forward(self, id_vector: torch.Tensor, vit_hidden: list[torch.Tensor]) -> torch.Tensor:
        id_tokens = self.id_embedding_mapping(id_vector).reshape(-1, self.num_id_token, self.dim)
        latents = torch.cat((self.latents.expand(len(id_tokens), -1, -1), id_tokens), dim=1)
        for scale in range(EVA_SCALES):
            context = torch.cat((id_tokens, getattr(self, f"mapping_{scale}")(vit_hidden[scale])), dim=1)
            first = scale * self.layers_per_scale
            for attention, feed_forward in self.layers[first:first + self.layers_per_scale]:
                latents = attention(context, latents) + latents
                latents = feed_forward(latents) + latents
        return latents[:, :self.num_queries] @ self.proj_out


def hooked_blocks(double_blocks: int, single_blocks: int) -> list[tuple[str, int]]:
    """The Flux blocks PuLID's CAs act at, in CA order: ("double_block", 0), ..., ("single_block", 36)."""
    return ([("double_block", i) for i in range(0, double_blocks, DOUBLE_INTERVAL)]
            + [("single_block", i) for i in range(0, single_blocks, SINGLE_INTERVAL)])


@dataclass
class PulidFlux:
    """A loaded PuLID-Flux file: one IDFormer and the CAs, one copy for every identity."""

    encoder: IDFormer
    cross_attentions: nn.ModuleList
    name: str = "PuLID-Flux"

    @property
    def width(self) -> int:
        """The Flux hidden size the CAs read (3072 for Flux.1)."""
        return self.cross_attentions[0].to_q.in_features

    def check_fits(self, blocks: list[tuple[str, int]], width: int, family: str) -> None:
        if width != self.width:
            raise ValueError(f"{self.name} acts on {self.width}-wide Flux.1 blocks, but this {family} model is "
                             f"{width} wide: use it with Flux.1 dev or schnell")
        if len(blocks) != len(self.cross_attentions):
            raise ValueError(f"{self.name} holds {len(self.cross_attentions)} block attentions, but this "
                             f"{family} model has {len(blocks)} blocks where PuLID acts: use it with Flux.1")

    @torch.no_grad()
    def identity_tokens(self, arcface_raw: torch.Tensor, eva_embedding: torch.Tensor,
                        eva_hidden: list[torch.Tensor]) -> torch.Tensor:
        """(N, 32, 2048) tokens from raw ArcFace vectors (N, 512), EVA-CLIP embeddings (N, 768, normalised
        here as the reference does) and the 5 EVA-CLIP hidden states (each (N, 577, 1024))."""
        dtype = self.encoder.latents.dtype
        eva_embedding = eva_embedding / eva_embedding.norm(dim=1, keepdim=True)
        id_vector = torch.cat((arcface_raw, eva_embedding), dim=-1).to(dtype)
        return self.encoder(id_vector, [h.to(dtype) for h in eva_hidden])

    def tokens_of(self, inputs) -> torch.Tensor:
        """(1, 32, 2048) tokens of one identity (faces.records.PulidInputs of R references): the mean of
        each reference's tokens, as ApplyPulidFlux averages its images."""
        tokens = self.identity_tokens(torch.from_numpy(inputs.arcface_raw), torch.from_numpy(inputs.eva_embedding),
                                      [torch.from_numpy(h) for h in inputs.eva_hidden])
        return tokens.mean(dim=0, keepdim=True) if len(tokens) > 1 else tokens

    def to(self, *args, **kwargs) -> "PulidFlux":
        self.encoder.to(*args, **kwargs)
        self.cross_attentions.to(*args, **kwargs)
        return self


def is_pulid_flux(state_dict: dict) -> bool:
    return any(k.startswith("pulid_encoder.") for k in state_dict) and any(CA_KEY.match(k) for k in state_dict)


def parse_pulid_flux(state_dict: dict, name: str = "PuLID-Flux", dtype=torch.float32) -> PulidFlux:
    """A PuLID-Flux state dict (the file's flat keys) -> PulidFlux; dims read from the weights."""
    if not is_pulid_flux(state_dict):
        raise ValueError(f"{name} is not a PuLID-Flux file: it lacks pulid_encoder.* / pulid_ca.N.* weights "
                         "(pulid_flux_v0.9.0 / v0.9.1.safetensors go into models/pulid)")
    encoder_sd = {k[len("pulid_encoder."):]: v for k, v in state_dict.items() if k.startswith("pulid_encoder.")}
    latents, proj_out = encoder_sd["latents"], encoder_sd["proj_out"]
    dim = latents.shape[-1]
    depth = len({k.split(".")[1] for k in encoder_sd if k.startswith("layers.")})
    inner = encoder_sd["layers.0.0.to_q.weight"].shape[0]
    num_id = encoder_sd["id_embedding_mapping.6.weight"].shape[0] // dim
    ff_mult = encoder_sd["layers.0.1.1.weight"].shape[0] // dim
    encoder = IDFormer(dim=dim, depth=depth, dim_head=64, heads=inner // 64, num_id_token=num_id,
                       num_queries=latents.shape[1], output_dim=proj_out.shape[1], ff_mult=ff_mult)
    _load(encoder, encoder_sd, f"{name}'s pulid_encoder")
    count = 1 + max(int(CA_KEY.match(k).group(1)) for k in state_dict if CA_KEY.match(k))
    modules = []
    for i in range(count):
        prefix = f"pulid_ca.{i}."
        sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        missing = {"to_q.weight", "to_kv.weight"} - set(sd)
        if missing:
            raise ValueError(f"{name} lacks pulid_ca.{i}.{sorted(missing)[0]}: its layout is not PuLID-Flux's "
                             "(the file is damaged or not pulid_flux_v0.9.x)")
        inner, width = sd["to_q.weight"].shape
        ca = PulidCrossAttention(width, sd["to_kv.weight"].shape[1], inner // CA_HEAD_DIM)
        _load(ca, sd, f"{name}'s pulid_ca.{i}")
        modules.append(ca)
    return PulidFlux(encoder.to(dtype).eval(), nn.ModuleList(modules).to(dtype).eval(), name)


def _load(module: nn.Module, state_dict: dict, what: str) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{what} does not have PuLID-Flux's layout ({str(error).splitlines()[0]}): "
                         "use pulid_flux_v0.9.0 / v0.9.1.safetensors") from None


def load_pulid_flux(path: str, dtype=torch.float32) -> PulidFlux:
    """Read a PuLID-Flux ``.safetensors`` file safely (no pickle)."""
    if not path.endswith(".safetensors"):
        raise ValueError(f"{os.path.basename(path)}: PuLID-Flux files are .safetensors "
                         "(pulid_flux_v0.9.1.safetensors); pickled files are not read")
    from safetensors.torch import load_file
    try:
        state_dict = load_file(path)
    except Exception as error:  # a truncated or foreign file: say which
        raise ValueError(f"cannot read {path} as safetensors ({error}): download it again") from None
    return parse_pulid_flux(state_dict, os.path.basename(path), dtype)
