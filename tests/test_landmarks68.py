"""The 68-point layout: masks from 68 points are as good as from mediapipe's mesh against the known face
region of real photos, the mesh's 68 points agree with dlib's own, and the path without mediapipe
(dlib HOG + dlib 68 points) masks the faces of real group scenes."""

import numpy as np
import pytest

from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces import landmarks68
from magicid_core.faces.detection import make_detector
from magicid_core.faces.landmarks import make_landmarker
from magicid_core.faces.masks import face_masks
from tests.support.face_scenes import match, oval_mask, scene, sizes_scene
from tests.support.no_mediapipe import needs_mediapipe
from tests.support.people import astronaut, grace_hopper


def scenes():
    """Real portraits pasted at known places: 20..160 px faces, crowded and spread out."""
    yield sizes_scene()
    yield scene(620, 420, [("astronaut", 90, 160, 200, False), ("hopper", 80, 255, 230, True),
                           ("astronaut", 100, 350, 210, True), ("hopper", 90, 450, 200, False)], seed=3)
    yield scene(900, 500, [("astronaut", 160, 200, 220, False), ("hopper", 140, 450, 230, True),
                           ("hopper", 60, 700, 200, False), ("astronaut", 40, 820, 260, True)], seed=5)


def mask_ious(settings: AnalysisSettings) -> list[float]:
    """IoU of each true face's own hard mask (no dilation or feather) with its known oval."""
    ious = []
    for image, ovals in scenes():
        faces = analyze_image(image, settings)
        for oval, i in zip(ovals, match(faces.faces, ovals)):
            assert i is not None, f"face of {oval[3]:.0f} px not found"
            mask = face_masks([faces.faces[i]], faces.height, faces.width, "face")[0] > 0.5
            truth = oval_mask(oval, faces.height, faces.width)
            ious.append((truth & mask).sum() / (truth | mask).sum())
    return ious


@needs_mediapipe
def test_masks_from_68_points_are_as_good_as_from_the_mesh():
    # the same detections (mediapipe's), only the landmarks differ; the true ovals were fitted to the mesh
    common = dict(backend="mediapipe", min_face=20, skeletons=False, embeddings=False)
    mesh = mask_ious(AnalysisSettings(landmark_backend="mediapipe_mesh", **common))
    dlib68 = mask_ious(AnalysisSettings(landmark_backend="dlib_68", **common))
    assert len(mesh) == len(dlib68) == 14
    assert np.mean(dlib68) >= np.mean(mesh) - 0.002, f"68 points {np.mean(dlib68):.4f}, mesh {np.mean(mesh):.4f}"
    assert min(dlib68) > 0.85


def test_masks_without_mediapipe_follow_the_faces():
    ious = []
    for image, ovals in scenes():   # faces from 32 px (dlib's HOG promise at the default min_face)
        faces = analyze_image(image, AnalysisSettings(backend="dlib_hog", landmark_backend="dlib_68",
                                                      skeletons=False, embeddings=False))
        for oval, i in zip(ovals, match(faces.faces, ovals)):
            if oval[3] < 30:   # the 24 px face: below the default min_face
                continue
            assert i is not None, f"face of {oval[3]:.0f} px not found"
            mask = face_masks([faces.faces[i]], faces.height, faces.width, "face")[0] > 0.5
            truth = oval_mask(oval, faces.height, faces.width)
            ious.append((truth & mask).sum() / (truth | mask).sum())
    assert len(ious) == 13
    # one small, blurred face in the sizes scene gets a jaw that runs down the neck (IoU ~0.5)
    assert np.median(ious) > 0.88 and np.mean(ious) > 0.85


@needs_mediapipe
@pytest.mark.parametrize("photo", [astronaut, grace_hopper], ids=["astronaut", "hopper"])
def test_the_mesh_mapped_to_68_points_agrees_with_dlibs_68(photo):
    image = photo()
    box = make_detector("mediapipe", min_face=40).detect(image)[0].box
    from_mesh = make_landmarker("mediapipe_mesh").locate(image, box).points68
    dlib = make_landmarker("dlib_68").locate(image, box).points68
    eye_gap = np.hypot(*(dlib[36:42].mean(0) - dlib[42:48].mean(0)))
    error = np.hypot(*(from_mesh - dlib).T) / eye_gap
    parts = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48),
             "mouth": slice(48, 68)}
    for name, part in parts.items():
        assert error[part].mean() < 0.12, f"{name}: {error[part].mean():.3f} of the eye distance"
    assert error.max() < 0.3


def test_face_outline_follows_a_tilted_head():
    # a synthetic 68-point face: jaw on a half ellipse, chin down; tilt it by 30 degrees
    t = np.linspace(np.pi, 0, 17)
    points = np.zeros((68, 2))
    points[:17] = np.stack([50 * np.cos(t), 60 * np.sin(t)], axis=1)   # y down: jaw below the centre
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = points @ rotation.T + (200, 200)
    outline = landmarks68.face_outline(tilted)
    assert outline.shape == (17 + landmarks68.FOREHEAD_POINTS, 2)
    top = outline[17 + landmarks68.FOREHEAD_POINTS // 2] - (200, 200)
    up = rotation @ np.array([0.0, -1.0])
    assert np.allclose(top / np.linalg.norm(top), up, atol=1e-3)            # the forehead above, along the tilt
    assert np.isclose(np.linalg.norm(top), landmarks68.FOREHEAD_RATIO * 60, rtol=1e-3)
