"""The attn2 patch protocol (nodes/host/attn2.py) on real attention tensors, without a host.

The dispatcher's own logic: base first, entries inside their sigma windows, stripping and
cropping MultiIDApply's entries only, moving with the model, recognition across a second
import of the pack. The registry on a real ModelPatcher is tested in tests/host/.
"""

import importlib.util

import pytest
import torch

from magicid_core.diffusion.attention import MultiIDAttention, sdpa_attention
from tests.support.mgmica_layouts import KEY, attention_inputs
from tests.test_mgmica_attention import faces_masks, make_tokens
from tests.support.workflow_defs import PACK_DIR, _load_pack

CELLS, WIDTH, HEADS = 16, 320, 8


def attn2_module():
    _load_pack()
    return importlib.import_module("magicid_pack.nodes.host.attn2")


def text_attention(q, k, v, options):
    return sdpa_attention(q, k, v, options["n_heads"])


def foreign(out, q, k, v, options, scale, **_window):
    """Another pack's entry, in IPAdapter_plus's Attn2Replace.add signature."""
    return scale * out


def identity_entry(attn2, weights=(1.0, 1.0)):
    return attn2.IdentityResidual(MultiIDAttention(make_tokens(2, WIDTH), faces_masks(256, 2), list(weights), {KEY: 0}))


@pytest.fixture
def inputs():
    return attention_inputs(CELLS, WIDTH, HEADS)          # sigma 5 in options


def test_base_runs_first_then_each_entry_inside_its_sigma_window(inputs):
    attn2 = attn2_module()
    q, k, v, opts = inputs
    entry = identity_entry(attn2)
    d = attn2.MagicIDAttn2(base=text_attention).add(entry, sigma_start=10.0, sigma_end=1.0)
    d.add(foreign, scale=0.5, sigma_start=4.0, sigma_end=0.0)          # sigma 5 is outside: does not act
    base = text_attention(q, k, v, opts)
    assert torch.equal(d(q, k, v, opts), base + entry.attention.residual(q, opts))
    inside = dict(opts, sigmas=torch.tensor([2.0, 2.0]))
    expected = base + entry.attention.residual(q, inside)
    assert torch.equal(d(q, k, v, inside), expected + 0.5 * expected)  # the foreign entry sees the sum so far
    no_sigma = {key: value for key, value in opts.items() if key != "sigmas"}
    assert torch.equal(d(q, k, v, no_sigma), expected + 0.5 * expected)


def test_weight_zero_gives_the_base_output_bit_for_bit(inputs):
    attn2 = attn2_module()
    q, k, v, opts = inputs
    d = attn2.MagicIDAttn2(base=text_attention).add(identity_entry(attn2, (0.0, 0.0)), sigma_start=9e9, sigma_end=0.0)
    assert torch.equal(d(q, k, v, opts), text_attention(q, k, v, opts))


def test_an_entry_without_its_sigma_window_is_refused():
    attn2 = attn2_module()
    with pytest.raises(ValueError, match="sigma_end"):
        attn2.MagicIDAttn2().add(foreign, scale=1.0, sigma_start=1.0)


def test_stripping_keeps_every_patch_that_is_not_ours(inputs):
    attn2 = attn2_module()
    q, k, v, opts = inputs
    entry = identity_entry(attn2)
    alone = attn2.MagicIDAttn2().add(entry, sigma_start=9e9, sigma_end=0.0)
    assert alone.without_identities() is None                           # ComfyUI's attention again
    over_base = attn2.MagicIDAttn2(base=text_attention).add(entry, sigma_start=9e9, sigma_end=0.0)
    assert over_base.without_identities() is text_attention             # the patch it wrapped, as it was
    mixed = attn2.MagicIDAttn2(base=text_attention).add(entry, sigma_start=9e9, sigma_end=0.0)
    mixed.add(foreign, scale=0.25, sigma_start=9e9, sigma_end=0.0)
    rest = mixed.without_identities()
    assert attn2.is_dispatcher(rest) and rest.identity_entries() == [] and rest.callback == [foreign]
    base = text_attention(q, k, v, opts)
    assert torch.equal(rest(q, k, v, opts), base + 0.25 * base)
    assert mixed.identity_entries() == [entry]                          # the original is not changed


def test_cropping_cuts_our_masks_once_for_all_layers_and_leaves_the_rest(inputs):
    attn2 = attn2_module()
    entry = identity_entry(attn2)
    layers = [attn2.MagicIDAttn2(base=text_attention).add(entry, sigma_start=9e9, sigma_end=0.0)
              .add(foreign, scale=0.1, sigma_start=9e9, sigma_end=0.0) for _ in range(2)]
    done = {}
    crops = [d.cropped((40, 70, 100, 130), (256, 256), done) for d in layers]   # around face 0 only
    (first,), (second,) = (c.identity_entries() for c in crops)
    assert first is second and first.attention.masks.shape == (1, 256, 256)
    assert all(c.base is text_attention and c.callback[1] is foreign for c in crops)
    assert all(d.identity_entries() == [entry] for d in layers) and entry.attention.masks.shape == (2, 256, 256)
    q, k, v, opts = inputs
    assert torch.isfinite(crops[0](q, k, v, opts)).all()


class Movable:
    """A foreign patch that moves like IPAdapter_plus's: ``to`` returns the moved object."""

    def __init__(self, device="cpu"):
        self.device = device

    def __call__(self, q, k, v, options):
        return text_attention(q, k, v, options)

    def to(self, device, *args, **kwargs):
        return self if str(device) == self.device else Movable(str(device))

    def models(self):
        return [f"model on {self.device}"]


def test_moves_with_the_model_as_model_patches_to_calls_it():
    attn2 = attn2_module()
    d = attn2.MagicIDAttn2(base=Movable()).add(identity_entry(attn2), sigma_start=9e9, sigma_end=0.0)
    assert d.to(torch.device("cpu")) is d                               # nothing to move
    moved = d.to(torch.device("meta"))
    assert moved is not d and moved.base.device == "meta" and d.base.device == "cpu"
    assert moved.identity_entries() == d.identity_entries()
    assert moved.models() == ["model on meta"] and attn2.MagicIDAttn2().models() == []
    plain = attn2.MagicIDAttn2(base=text_attention)
    assert plain.to(torch.device("meta")) is plain                      # a base without ``to`` stays


def test_a_second_import_of_the_pack_is_recognised():
    """ComfyUI may import the pack again while models patched by the first import live on."""
    attn2 = attn2_module()
    spec = importlib.util.spec_from_file_location("second_attn2", PACK_DIR / "nodes" / "host" / "attn2.py")
    second = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(second)
    assert second.MagicIDAttn2 is not attn2.MagicIDAttn2
    other = second.MagicIDAttn2(base=text_attention).add(
        second.IdentityResidual(identity_entry(attn2).attention), sigma_start=9e9, sigma_end=0.0)
    assert attn2.is_dispatcher(other) and attn2.is_identity_entry(other.callback[0])
    assert not attn2.is_dispatcher(text_attention) and not attn2.is_identity_entry(foreign)
