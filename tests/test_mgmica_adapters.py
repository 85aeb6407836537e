"""Adapter loading through the same file loader users hit, on state dicts with the real layout."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from magicid_core.identity.adapters import load_adapter_file, parse_adapter
from tests.support.mgmica_layouts import SD15_WIDTHS, SDXL_WIDTHS, faceid_state_dict, flatten, instantid_state_dict


def small_instantid(**kw):
    return instantid_state_dict(dim=128, heads=2, depth=2, **kw)


@pytest.fixture
def embeddings():
    e = np.random.default_rng(0).normal(size=(2, 512)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_faceid_bin_and_safetensors_load_the_same(tmp_path, embeddings):
    state = faceid_state_dict()
    torch.save(state, tmp_path / "ip-adapter-faceid_sd15.bin")
    save_file(flatten(state), str(tmp_path / "ip-adapter-faceid_sd15.safetensors"))
    a = load_adapter_file(str(tmp_path / "ip-adapter-faceid_sd15.bin"))
    b = load_adapter_file(str(tmp_path / "ip-adapter-faceid_sd15.safetensors"))
    assert (a.kind, a.family, len(a.to_k), a.tokens, a.context_dim) == ("faceid", "SD1.5", 16, 4, 768)
    assert [k.shape[0] for k in a.to_k] == SD15_WIDTHS
    assert torch.equal(a.tokens_for(embeddings)[0], b.tokens_for(embeddings)[0])
    a.check_fits([(w, 768) for w in SD15_WIDTHS])


def test_faceid_tokens_are_the_published_projection(embeddings):
    p = faceid_state_dict()["image_proj"]
    cond, uncond = parse_adapter(faceid_state_dict()).tokens_for(embeddings)
    e = torch.from_numpy(embeddings)
    for x, out in ((e, cond), (torch.zeros_like(e), uncond)):
        # LayerNorm(reshape(W2 GELU(W1 e + b1) + b2, (4, 768)))
        h = F.gelu(x @ p["proj.0.weight"].T + p["proj.0.bias"]) @ p["proj.2.weight"].T + p["proj.2.bias"]
        want = F.layer_norm(h.reshape(-1, 4, 768), (768,), p["norm.weight"], p["norm.bias"])
        assert torch.allclose(out, want, atol=1e-5)


def test_instantid_resampler_matches_the_perceiver_equations(embeddings):
    state = instantid_state_dict(dim=128, heads=2, depth=1)
    p = state["image_proj"]
    cond, _ = parse_adapter(state).tokens_for(embeddings)
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], p[n + ".weight"], p[n + ".bias"])
    x = torch.from_numpy(embeddings)[:, None] @ p["proj_in.weight"].T + p["proj_in.bias"]   # (B, 1, dim)
    lat = p["latents"].expand(2, -1, -1)
    xs, ls = ln(x, "layers.0.0.norm1"), ln(lat, "layers.0.0.norm2")
    q = ls @ p["layers.0.0.to_q.weight"].T
    k, v = (torch.cat([xs, ls], 1) @ p["layers.0.0.to_kv.weight"].T).chunk(2, -1)
    heads = lambda t: t.reshape(2, t.shape[1], 2, 64).transpose(1, 2)
    att = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 8.0, -1) @ heads(v)
    lat = lat + att.transpose(1, 2).reshape(2, 16, 128) @ p["layers.0.0.to_out.weight"].T
    ff = F.gelu(ln(lat, "layers.0.1.0") @ p["layers.0.1.1.weight"].T) @ p["layers.0.1.3.weight"].T
    want = ln((lat + ff) @ p["proj_out.weight"].T + p["proj_out.bias"], "norm_out")
    assert cond.shape == (2, 16, 2048)
    assert torch.allclose(cond, want, atol=1e-4)


def test_instantid_fits_sdxl_not_sd15(tmp_path):
    torch.save(small_instantid(), tmp_path / "ip-adapter.bin")
    a = load_adapter_file(str(tmp_path / "ip-adapter.bin"))
    assert (a.kind, a.family, len(a.to_k), a.tokens) == ("instantid", "SDXL", 70, 16)
    a.check_fits([(w, 2048) for w in SDXL_WIDTHS])
    with pytest.raises(ValueError, match=r"SDXL.*does not fit.*\(SD1\.5\)"):
        a.check_fits([(w, 768) for w in SD15_WIDTHS])


def test_sd15_adapter_on_sdxl_says_so():
    with pytest.raises(ValueError, match=r"SD1\.5: 16 cross-attention layers.*\(SDXL\): the model has 70"):
        parse_adapter(faceid_state_dict(), "faceid.bin").check_fits([(w, 2048) for w in SDXL_WIDTHS])


def test_sdxl_faceid_layout():
    a = parse_adapter(faceid_state_dict(widths=SDXL_WIDTHS, context_dim=2048))
    assert (a.family, a.tokens, len(a.to_k)) == ("SDXL", 4, 70)


@pytest.mark.parametrize("image_proj,message", [
    ({"proj.weight": torch.zeros(3072, 1024), "proj.bias": torch.zeros(3072),
      "norm.weight": torch.ones(768), "norm.bias": torch.zeros(768)}, "not a face identity adapter"),
    ({"perceiver_resampler.proj_in.weight": torch.zeros(768, 1280)}, "FaceID Plus"),
    ({"latents": torch.zeros(1, 16, 768), "proj_in.weight": torch.zeros(768, 1280)}, "CLIP image"),
])
def test_other_adapter_kinds_are_named(image_proj, message):
    with pytest.raises(ValueError, match=message):
        parse_adapter({"image_proj": image_proj, "ip_adapter": faceid_state_dict()["ip_adapter"]})


def test_damaged_layouts_are_clear_errors():
    state = faceid_state_dict()
    del state["ip_adapter"]["5.to_v_ip.weight"]
    with pytest.raises(ValueError, match="layer 5 needs to_k_ip and to_v_ip"):
        parse_adapter(state)
    state = faceid_state_dict()
    del state["ip_adapter"]["31.to_k_ip.weight"], state["ip_adapter"]["31.to_v_ip.weight"]
    del state["ip_adapter"]["15.to_k_ip.weight"], state["ip_adapter"]["15.to_v_ip.weight"]
    with pytest.raises(ValueError, match="numbered"):
        parse_adapter(state)
    state = faceid_state_dict()
    state["image_proj"]["norm.bias"] = torch.zeros(10)
    with pytest.raises(ValueError, match="image_proj weights do not match"):
        parse_adapter(state)
    state = small_instantid()
    del state["image_proj"]["layers.1.0.to_kv.weight"]
    with pytest.raises(ValueError, match="image_proj"):
        parse_adapter(state)
    state = small_instantid()
    del state["image_proj"]["layers.0.0.to_q.weight"]
    with pytest.raises(ValueError, match="lack"):
        parse_adapter(state)
    with pytest.raises(ValueError, match=r"no image_proj or ip_adapter weights; its first keys are \['state_dict'\]"):
        parse_adapter({"state_dict": {}})


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    (tmp_path / "cut.bin").write_bytes(b"PK\x03\x04 not a zip")
    with open(tmp_path / "code.bin", "wb") as f:       # a pickle that would run code: refused
        pickle.dump({"image_proj": print}, f, protocol=2)
    for name in ("cut.safetensors", "cut.bin", "code.bin"):
        with pytest.raises(ValueError, match="could not read"):
            load_adapter_file(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match="models/ipadapter"):
        load_adapter_file(str(tmp_path / "missing.bin"))
    save_file({"model.weight": torch.zeros(2)}, str(tmp_path / "checkpoint.safetensors"))
    with pytest.raises(ValueError, match=r"not an IP-Adapter / InstantID file: it has no image_proj or "
                                         r"ip_adapter weights; its first keys are \['model.weight'\]"):
        load_adapter_file(str(tmp_path / "checkpoint.safetensors"))


@pytest.mark.parametrize("damage", ["nan", "inf", "times_1e30"])
@pytest.mark.parametrize("part, key", [("image_proj", "proj.2.weight"), ("ip_adapter", "5.to_v_ip.weight")])
def test_files_with_damaged_weights_are_refused_at_load(tmp_path, damage, part, key):
    state = faceid_state_dict()
    w = state[part][key] = state[part][key].clone()      # (layers of one width may share a tensor)
    if damage == "times_1e30":
        w.mul_(1e30)
    else:
        w[0, :3] = float(damage)
    for path in (tmp_path / "bad.bin", tmp_path / "bad.safetensors"):
        torch.save(state, path) if path.suffix == ".bin" else save_file(flatten(state), str(path))
        message = "RMS of .* over 100" if damage == "times_1e30" else "NaN or infinite"
        with pytest.raises(ValueError, match=rf"^{path.name}: weight {part}.{key} (holds|has an) {message}.*download"):
            load_adapter_file(str(path))


def test_real_layout_weights_are_well_inside_the_sanity_limit():
    from magicid_core.identity.adapters import WEIGHT_RMS_LIMIT, check_weights
    for state in (faceid_state_dict(), small_instantid()):
        a = parse_adapter(state)                       # loads: the check passes
        rms = max(float(w.square().mean().sqrt()) for w in a.to_k + list(a.projection.state_dict().values()))
        assert rms < WEIGHT_RMS_LIMIT / 10
        check_weights("x", {"w": torch.full((4,), WEIGHT_RMS_LIMIT * 0.99)})


def test_embeddings_of_the_wrong_kind(embeddings):
    a = parse_adapter(faceid_state_dict())
    with pytest.raises(ValueError, match="dlib 128-d.*insightface"):
        a.tokens_for(np.zeros((2, 128), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        a.tokens_for(np.full((1, 512), np.nan, np.float32))


def test_a_resampler_named_unnorm_is_faceid_portrait_unnorm_reading_raw_vectors(tmp_path):
    """IPAdapter_plus tells portrait-unnorm from InstantID by the file name (one key layout)."""
    state = small_instantid(widths=SD15_WIDTHS, context_dim=768)
    torch.save(state, tmp_path / "ip-adapter-faceid-portrait_sd15_unnorm.bin")
    torch.save(state, tmp_path / "ip-adapter.bin")
    unnorm = load_adapter_file(str(tmp_path / "ip-adapter-faceid-portrait_sd15_unnorm.bin"))
    instantid = load_adapter_file(str(tmp_path / "ip-adapter.bin"))
    assert (unnorm.kind, unnorm.reads_raw) == ("faceid", True)
    assert (instantid.kind, instantid.reads_raw) == ("instantid", True)
    assert parse_adapter(faceid_state_dict()).reads_raw is False


def test_faceid_reads_unit_vectors_whatever_the_identity_norm(embeddings):
    """A hand-built identity of norm 3.7 gets the tokens of its unit vector (IPAdapter_plus's normed_embedding)."""
    from magicid_core.diffusion.placement import adapter_inputs
    from magicid_core.faces.records import Identity

    adapter = parse_adapter(faceid_state_dict())
    scaled = [Identity(name=f"p{i}", embedding=e * 3.7, embedding_model="arcface:test") for i, e in enumerate(embeddings)]
    np.testing.assert_allclose(np.linalg.norm(adapter_inputs(adapter, scaled), axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(adapter_inputs(adapter, scaled), embeddings, atol=1e-7)


def test_faceid_reads_an_insightface_unit_vector_bit_for_bit():
    """insightface's normed_embedding (raw / |raw| in float32) has a norm a few float32 steps from 1:
    it is read as it is, so IPAdapter_plus and the pack feed the adapter the same numbers."""
    from magicid_core.diffusion.placement import adapter_inputs
    from magicid_core.faces.records import Identity

    adapter = parse_adapter(faceid_state_dict())
    raws = np.random.default_rng(8).normal(size=(16, 512)).astype(np.float32) * 23.0
    normed = [raw / np.linalg.norm(raw) for raw in raws]          # insightface's Face.normed_embedding
    assert any(abs(float(np.linalg.norm(n)) - 1) > 0 for n in normed)  # some are not exactly unit in float32
    identities = [Identity(name=f"p{i}", embedding=n, embedding_model="arcface:test") for i, n in enumerate(normed)]
    np.testing.assert_array_equal(adapter_inputs(adapter, identities), np.stack(normed))


def test_instantid_negative_is_comfyui_instantids_noise_times_rand():
    """ApplyInstantID: torch.manual_seed(int(sum(e)) % 1000000007); noise * torch.rand_like(e)."""
    from magicid_core.identity.adapters import negative_embeddings

    raw = torch.from_numpy(np.random.default_rng(5).normal(size=(2, 512)).astype(np.float32) * 1.3)
    state = torch.random.get_rng_state()
    expected = []
    for e in raw[:, None]:                    # ComfyUI_InstantID's clip_embed is (1, 1, 512) per reference
        torch.manual_seed(int(torch.sum(e).item()) % 1000000007)
        expected.append(0.35 * torch.rand_like(e)[0])
    torch.random.set_rng_state(state)
    assert torch.equal(negative_embeddings(raw, 0.35), torch.stack(expected))
    assert torch.equal(negative_embeddings(raw, 0.0), torch.zeros_like(raw))
