"""A real ComfyUI finds the user's insightface packs in every layout they have, and says so when it finds none.

One ``--cpu`` server with this pack, an ``extra_model_paths.yaml`` that registers two ``insightface``
folders (one with, one without its ``models/`` level) and ``MAGICID_INSIGHTFACE_DIR``. For each layout a
seeded pack (tests/support/insightface_layouts.py) is put in place, where insightface's own
``storage.ensure_available`` puts it when it can, and a prompt runs FaceDetectMasks and IdentityFromImages
with their default settings: both must give ``arcface:<pack>`` embeddings. With no pack, both nodes show the
note that auto used dlib, where it looked and which files it expects, and the log says it too.
No restart between layouts: the pack found is part of the detector cache's key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx", reason="the onnx package builds the seeded models: pip install -r requirements-test.txt")

from tests.host.comfy_server import ComfyServer, make_base_dir  # noqa: E402
from tests.support.insightface_layouts import ONE_FACE_DETECTOR, place_like_insightface  # noqa: E402
from tests.support.insightface_onnx_models import build_pack  # noqa: E402
from tests.support.people import astronaut  # noqa: E402

HERE = Path(__file__).parent
FALLBACK = "no insightface pack found, so auto used"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = make_base_dir(tmp_path_factory.mktemp("insightface_layouts"))
    (base / "custom_nodes" / "magicid_probe_nodes.py").symlink_to(HERE / "probe_nodes.py")
    extra = base / "extra"
    config = base / "extra_model_paths.yaml"
    config.write_text(f"magicid_layouts:\n    base_path: {extra}\n    insightface: |\n"
                      "        with_models_level/insightface\n"
                      "        without_models_level/insightface/models\n")
    srv = ComfyServer(base, extra_args=["--extra-model-paths-config", str(config)],
                      env={"MAGICID_INSIGHTFACE_DIR": str(base / "env_root")})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _places(base: Path) -> dict:
    """layout -> how to put a pack there (returns the pack's name)."""
    models = base / "models" / "insightface"
    extra = base / "extra"
    return {
        "insightface's own, antelopev2": lambda: _insightface(models, "antelopev2"),
        "insightface's own, buffalo_l": lambda: _insightface(models, "buffalo_l"),
        "flat": lambda: _by_hand(models, "antelopev2"),
        "nested": lambda: _by_hand(models / "antelopev2", "antelopev2"),
        "extra_model_paths.yaml, registered with models/": lambda: _insightface(
            extra / "with_models_level" / "insightface", "buffalo_l"),
        "extra_model_paths.yaml, registered at models/": lambda: _insightface(
            extra / "without_models_level" / "insightface", "antelopev2"),
        "MAGICID_INSIGHTFACE_DIR": lambda: _insightface(base / "env_root", "buffalo_l"),
    }


def _insightface(root: Path, pack: str) -> str:
    place_like_insightface(root, pack, **ONE_FACE_DETECTOR)
    return pack


def _by_hand(folder: Path, pack: str) -> str:
    build_pack(folder, pack, **ONE_FACE_DETECTOR)
    return pack


def _clear(base: Path) -> None:
    for folder in (base / "models" / "insightface", base / "extra", base / "env_root"):
        shutil.rmtree(folder, ignore_errors=True)


def _run(server, picture: str) -> dict:
    """LoadImage -> FaceDetectMasks and IdentityFromImages, defaults -> the probe; outputs by node."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "2": {"class_type": "FaceDetectMasks", "inputs": {
            "image": ["1", 0], "backend": "auto", "min_face_px": 32, "mask_mode": "face", "dilation_px": 4,
            "feather_px": 8, "max_faces": 0, "order": "left_to_right", "error_if_no_face": True}},
        "3": {"class_type": "IdentityFromImages", "inputs": {"images": ["1", 0], "name": "Ann", "backend": "auto"}},
        "4": {"class_type": "MagicIDEmbeddingProbe", "inputs": {"faces": ["2", 0], "identities": ["3", 0]}},
    }
    entry = server.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _picture(server, name: str) -> str:
    """The portrait under a new name: a new LoadImage input, so ComfyUI runs the nodes again."""
    portrait = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(portrait).save(server.base_dir / "input" / name)
    return name


def test_default_settings_use_the_pack_in_every_layout(server):
    defaults = server.get("/object_info/FaceDetectMasks")["FaceDetectMasks"]["input"]
    assert defaults["required"]["backend"][1]["default"] == "auto"
    assert defaults["optional"]["identity_backend"][1]["default"] == "auto"
    for i, (layout, place) in enumerate(_places(server.base_dir).items()):
        _clear(server.base_dir)
        pack = place()
        outputs = _run(server, _picture(server, f"layout_{i}.png"))
        report = outputs["4"]
        assert report["faces"] and set(report["faces"]) == {f"arcface:{pack}"}, layout
        assert report["identities"] == [f"arcface:{pack}"], layout
        notes = outputs.get("2", {}).get("magicid_notes", []) + outputs.get("3", {}).get("magicid_notes", [])
        assert not any(FALLBACK in n for n in notes), (layout, notes)


def test_without_a_pack_the_fallback_is_shown_on_both_nodes_and_logged(server):
    _clear(server.base_dir)
    outputs = _run(server, _picture(server, "no_pack.png"))
    assert outputs["4"]["identities"] == ["dlib_resnet_v1"]
    base = server.base_dir
    for node in ("2", "3"):   # FaceDetectMasks, IdentityFromImages
        (note,) = [n for n in outputs[node]["magicid_notes"] if n.startswith(FALLBACK)]
        assert "dlib for the identity embeddings" in note
        for folder in (base / "models" / "insightface", base / "extra" / "with_models_level" / "insightface",
                       base / "extra" / "without_models_level" / "insightface" / "models", base / "env_root"):
            assert str(folder) in note, (node, folder)
        assert all(f in note for f in ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "det_10g.onnx", "w600k_r50.onnx"))
    assert FALLBACK in server.log()
    # FaceDetectMasks' preview carries the short label on a dark strip along its bottom edge
    shown = outputs["2"]["images"][0]
    preview = np.asarray(Image.open(base / "temp" / shown["subfolder"] / shown["filename"]).convert("RGB"), np.float32)
    picture = np.asarray(Image.open(base / "input" / "no_pack.png").convert("RGB"), np.float32)
    assert preview[-6:].mean() < 0.5 * picture[-6:].mean()
