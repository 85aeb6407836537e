"""IdentityFromImages inside a real ComfyUI, called through the pack's NODE_CLASS_MAPPINGS."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.people import astronaut, crop_scaled, grace_hopper


def _image(*arrays):
    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0)


class _Node:
    """IdentityFromImages as the tests call it: ``build`` gives the result, ``ui`` the last UI part."""

    def __init__(self, node):
        self.node, self.ui = node, None

    def build(self, *args, **kwargs):
        out = self.node.build(*args, **kwargs)
        self.ui = out["ui"]
        return out["result"]


@pytest.fixture(scope="module")
def node(comfy_nodes):
    return _Node(comfy_nodes.NODE_CLASS_MAPPINGS["IdentityFromImages"]())


def test_builds_and_appends_identities(node):
    (ids,) = node.build(_image(astronaut(), crop_scaled(astronaut(), 0, 512, 0, 512, 512)), "Eileen", "dlib")
    (ids,) = node.build(_image(grace_hopper()[:512]), "", "auto", identities=ids)
    assert [i.name for i in ids] == ["Eileen", "person 2"]
    assert [i.reference_count for i in ids] == [2, 1]
    assert {i.embedding_model for i in ids} == {"dlib_resnet_v1"}   # no insightface models in this ComfyUI
    (note,) = node.ui["magicid_notes"]   # auto fell back to dlib: the node says so, where it looked, what it needs
    assert note.startswith("no insightface pack found, so auto used dlib") and "glintr100.onnx" in note
    assert float(ids[0].embedding @ ids[1].embedding) < 0.9


def test_bad_input_gives_clear_errors(node):
    (ids,) = node.build(_image(astronaut()), "Eileen", "dlib")
    with pytest.raises(ValueError, match="already in the list"):
        node.build(_image(astronaut()), "Eileen", "dlib", identities=ids)
    with pytest.raises(ValueError, match="reference image 2 of 2"):
        node.build(_image(astronaut(), np.zeros((512, 512, 3), np.uint8)), "Ann", "dlib")


def test_arcface_without_models_names_comfyui_insightface_folder(node, tmp_path, monkeypatch):
    import folder_paths

    with pytest.raises(ValueError) as err:
        node.build(_image(astronaut()), "Eileen", "arcface")
    text = str(err.value)
    assert str(Path(folder_paths.models_dir) / "insightface") in text
    assert "scrfd_10g_bnkps.onnx" in text and "glintr100.onnx" in text and "det_10g.onnx" in text
    # a registered insightface folder holding a nested antelopev2 with corrupt files: the file is named
    nested = tmp_path / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx"):
        (nested / name).write_bytes(b"\x00" * 64)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface", ([str(tmp_path)], {".onnx"}))
    with pytest.raises(ValueError, match=f"{nested}/(glintr100|scrfd_10g_bnkps).onnx could not be loaded"):
        node.build(_image(astronaut()), "Eileen", "arcface")


def test_face_detect_masks_carries_skeletons_and_embeddings(comfy_nodes):
    from tests.support.people import group_of_three

    detect = comfy_nodes.NODE_CLASS_MAPPINGS["FaceDetectMasks"]()
    image, _ = group_of_three()
    args = dict(image=_image(image), backend="auto", min_face_px=32, mask_mode="face", dilation_px=4, feather_px=8,
                max_faces=0, order="left_to_right", error_if_no_face=False)
    faces = detect.detect(**args, identity_backend="dlib", skeletons=True)["result"][0][0].faces
    assert len(faces) == 3
    assert all(f.embedding_model == "dlib_resnet_v1" and f.embedding.shape == (128,) for f in faces)
    assert all(f.skeleton.shape == (18, 3) and f.skeleton[0, 2] > 0 for f in faces)
    bare = detect.detect(**args, identity_backend="none", skeletons=False)["result"][0][0].faces
    assert all(f.embedding is None and f.skeleton is None for f in bare)
    with pytest.raises(ValueError, match="insightface.*glintr100.onnx"):
        detect.detect(**args, identity_backend="arcface")
