"""insightface packs are found in every layout users have, and auto's fallback to dlib says why.

Where insightface is installed, its own ``storage.ensure_available`` places the seeded packs
(tests/support/insightface_layouts.py), so these tests cannot share the finder's assumptions.
"""

import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx package builds the seeded models: pip install -r requirements-test.txt")

from magicid_core.analyze import FALLBACK_NOTE_START, AnalysisSettings, analyze_image  # noqa: E402
from magicid_core.identity.adapters import parse_adapter  # noqa: E402
from magicid_core.identity.embedders import check_dlib_identities, make_embedder  # noqa: E402
from magicid_core.faces.records import Identity  # noqa: E402
from magicid_core.insightface import PACKS, find_pack, find_pack_or_reason  # noqa: E402
from magicid_core.insightface.packs import session_providers  # noqa: E402
from tests.support.insightface_layouts import ONE_FACE_DETECTOR, place_like_insightface  # noqa: E402
from tests.support.insightface_onnx_models import build_pack  # noqa: E402
from tests.support.mgmica_layouts import faceid_state_dict  # noqa: E402
from tests.support.people import astronaut  # noqa: E402


def _portrait() -> np.ndarray:
    return cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("pack", list(PACKS))
def test_a_pack_where_insightface_puts_it_is_found_under_its_root(tmp_path, pack):
    root = tmp_path / "insightface"               # what the peer packs pass as FaceAnalysis' root
    folder = place_like_insightface(root, pack)   # root/models/<pack> (antelopev2: .../antelopev2/antelopev2)
    assert root / "models" in folder.parents
    found = find_pack(root)
    assert (found.name, found.folder) == (pack, folder)
    assert make_embedder("auto", root).model_name == f"arcface:{pack}"
    # a folder registered with its models/ level (extra_model_paths.yaml pointing at .../insightface/models)
    assert find_pack(root / "models").folder == folder


@pytest.mark.parametrize("layout", ["<pack>", "<pack>/<pack>"])
def test_flat_and_nested_packs_unpacked_by_hand_are_found(tmp_path, layout):
    folder = build_pack(tmp_path / layout.replace("<pack>", "antelopev2").rpartition("/")[0], "antelopev2")
    assert find_pack(tmp_path).folder == folder
    assert make_embedder("auto", [tmp_path / "elsewhere", tmp_path]).model_name == "arcface:antelopev2"


def test_the_environment_variable_names_a_root_in_any_layout(tmp_path, monkeypatch):
    folder = place_like_insightface(tmp_path / "insightface", "buffalo_l")
    monkeypatch.setenv("MAGICID_INSIGHTFACE_DIR", str(tmp_path / "insightface"))
    assert find_pack().folder == folder and make_embedder("auto").model_name == "arcface:buffalo_l"


def test_auto_analysis_uses_the_pack_insightface_placed(tmp_path):
    place_like_insightface(tmp_path / "insightface", "antelopev2", **ONE_FACE_DETECTOR)
    faces = analyze_image(_portrait(), AnalysisSettings(insightface_roots=(str(tmp_path / "insightface"),)))
    assert faces.faces and {f.embedding_model for f in faces.faces} == {"arcface:antelopev2"}
    assert {f.detector for f in faces.faces} == {"insightface"}
    assert not any(n.startswith(FALLBACK_NOTE_START) for n in faces.notes)


def test_a_pack_put_in_place_or_swapped_later_is_used_at_once(tmp_path):
    """The model caches are keyed by the pack found now: no restart of ComfyUI is needed."""
    settings = AnalysisSettings(insightface_roots=(str(tmp_path),), skeletons=False)
    before = analyze_image(_portrait(), settings)
    assert any(n.startswith(FALLBACK_NOTE_START) for n in before.notes)
    folder = place_like_insightface(tmp_path, "buffalo_l", **ONE_FACE_DETECTOR)
    after = analyze_image(_portrait(), settings)
    assert after.faces and {f.detector for f in after.faces} == {"insightface"} and not after.notes
    assert {f.embedding_model for f in after.faces} == {"arcface:buffalo_l"}
    shutil.rmtree(folder)
    place_like_insightface(tmp_path, "antelopev2", **ONE_FACE_DETECTOR)
    swapped = analyze_image(_portrait(), settings)
    assert swapped.faces and {f.embedding_model for f in swapped.faces} == {"arcface:antelopev2"}
    shutil.rmtree(tmp_path / "models")
    assert make_embedder("auto", tmp_path).model_name == "dlib_resnet_v1"


def test_without_a_pack_auto_says_it_used_dlib_where_it_looked_and_what_it_expects(tmp_path):
    faces = analyze_image(_portrait(), AnalysisSettings(insightface_roots=(str(tmp_path),), skeletons=False))
    assert faces.faces and {f.embedding_model for f in faces.faces} == {"dlib_resnet_v1"}
    (note,) = faces.notes
    assert note.startswith(FALLBACK_NOTE_START) and "dlib for the identity embeddings" in note
    assert str(tmp_path) in note and "models/<pack>" in note
    for files in PACKS.values():
        assert all(name in note for name in files)
    # asked for dlib, nothing fell back: no note
    quiet = analyze_image(_portrait(), AnalysisSettings(backend="dlib_hog", identity_backend="dlib",
                                                        insightface_roots=(str(tmp_path),), skeletons=False))
    assert quiet.notes == []


def test_the_preview_label_sits_on_a_dark_strip_at_the_bottom():
    from magicid_core.faces.preview import draw_label

    picture = np.full((200, 300, 3), 200, np.uint8)
    labelled = draw_label(picture, "no insightface pack found: auto used dlib / mediapipe (see the note and the log)")
    changed = np.nonzero((labelled != picture).any(axis=(1, 2)))[0]
    assert changed.min() > 150 and changed.max() == 199            # only a strip along the bottom edge
    strip = labelled[changed.min():]
    assert (strip == 50).any() and (strip[..., 0] > 200).any()     # darkened, with light text on it


def test_an_arcface_adapter_given_dlib_identities_says_why_they_are_dlib(tmp_path):
    adapter = parse_adapter(faceid_state_dict(), name="ip-adapter-faceid_sd15.bin")
    dlib_ids = [Identity("Ann", np.ones(128, np.float32) / np.sqrt(128), "dlib_resnet_v1")]
    with pytest.raises(ValueError) as err:
        check_dlib_identities(adapter, dlib_ids, [tmp_path])
    text = str(err.value)
    assert "'Ann' came from dlib" in text and "512-d ArcFace" in text and "no insightface pack is found" in text
    assert str(tmp_path) in text and "glintr100.onnx" in text and "w600k_r50.onnx" in text
    folder = place_like_insightface(tmp_path, "buffalo_l")
    with pytest.raises(ValueError, match=f"pack is there now \\({folder}\\): build the identities again"):
        check_dlib_identities(adapter, dlib_ids, [tmp_path])
    arcface_ids = [Identity("Ann", np.ones(512, np.float32) / np.sqrt(512), "arcface:buffalo_l")]
    check_dlib_identities(adapter, arcface_ids, [tmp_path])   # nothing to say


def test_find_pack_or_reason(tmp_path):
    assert find_pack_or_reason(tmp_path)[0] is None and str(tmp_path) in find_pack_or_reason(tmp_path)[1]
    place_like_insightface(tmp_path, "antelopev2")
    pack, reason = find_pack_or_reason(tmp_path)
    assert pack.name == "antelopev2" and reason == ""


@pytest.mark.parametrize("available, chosen", [
    (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["DmlExecutionProvider", "CPUExecutionProvider"], ["DmlExecutionProvider", "CPUExecutionProvider"]),
    (["OpenVINOExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
])
def test_sessions_run_on_cuda_or_directml_when_the_runtime_has_it(available, chosen, monkeypatch):
    monkeypatch.delenv("MAGICID_ONNX_PROVIDERS", raising=False)
    assert session_providers(available) == chosen
    monkeypatch.setenv("MAGICID_ONNX_PROVIDERS", "CPUExecutionProvider")
    assert session_providers(available) == ["CPUExecutionProvider"]


def test_a_session_here_asks_the_installed_runtime(tmp_path):
    import onnxruntime

    from magicid_core.insightface import load_session

    folder = build_pack(tmp_path, "buffalo_l")
    session = load_session(folder / "det_10g.onnx")
    assert session.get_providers() == session_providers(onnxruntime.get_available_providers())
