"""Body skeletons from mediapipe Pose on real photos, mapped to OpenPose COCO-18."""

import numpy as np
import pytest
from PIL import Image

from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.records import COCO18_NAMES
from magicid_core.identity.embedders import make_embedder
from magicid_core.faces.pose import PoseEstimator, blazepose_to_coco18, head_only_skeleton, person_crop
from tests.support.people import ROOT, astronaut

P = {name: i for i, name in enumerate(COCO18_NAMES)}


@pytest.fixture(scope="module")
def pose():
    with PoseEstimator() as estimator:
        yield estimator


@pytest.fixture(scope="module")
def astronaut_face():
    return max(make_embedder("dlib").find_faces(astronaut()), key=lambda d: d.score)


def _inside(point, box):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_astronaut_skeleton_is_anatomically_placed(pose, astronaut_face):
    box = astronaut_face.box
    s = pose.skeleton(astronaut(), box, astronaut_face.keypoints, astronaut_face.score)
    assert s.shape == (18, 3)
    for name in ("nose", "r_eye", "l_eye", "neck", "r_shoulder", "l_shoulder"):
        assert s[P[name], 2] > 0.5, name
    for name in ("nose", "r_eye", "l_eye"):
        assert _inside(s[P[name]], box), name
    face_h = box[3] - box[1]
    cx = (box[0] + box[2]) / 2
    for name in ("neck", "r_shoulder", "l_shoulder"):
        assert box[3] < s[P[name], 1] < box[3] + 1.5 * face_h, name   # below the chin, above the waist
    # the subject's right shoulder appears on the image's left
    assert s[P["r_shoulder"], 0] < cx - 0.5 * face_h and s[P["l_shoulder"], 0] > cx + 0.5 * face_h
    assert s[P["r_eye"], 0] < s[P["l_eye"], 0]
    assert np.allclose(s[P["neck"], :2], (s[P["r_shoulder"], :2] + s[P["l_shoulder"], :2]) / 2)
    # knees and ankles are below the picture's edge: missing, with no position
    for name in ("r_knee", "l_knee", "r_ankle", "l_ankle"):
        assert s[P[name]].tolist() == [0, 0, 0], name


def test_body_out_of_frame_leaves_head_points_only(pose, astronaut_face):
    head = np.ascontiguousarray(astronaut()[:175])   # cut just under the chin
    s = pose.skeleton(head, astronaut_face.box, astronaut_face.keypoints, astronaut_face.score)
    for name in ("nose", "r_eye", "l_eye"):
        assert s[P[name], 2] > 0 and _inside(s[P[name]], astronaut_face.box), name
    for name in ("neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_hip", "l_hip"):
        assert s[P[name], 2] == 0, name


def test_no_person_found_gives_the_face_keypoints_as_head(pose, astronaut_face):
    blank = np.full((300, 300, 3), 40, np.uint8)
    box = np.array([100, 40, 160, 100], np.float32)
    kps = np.array([[115, 60], [145, 60], [130, 75], [118, 88], [142, 88]], np.float32)
    s = pose.skeleton(blank, box, kps, 0.8)
    assert np.array_equal(s, head_only_skeleton(kps, 0.8))
    assert s[P["nose"]].tolist() == pytest.approx([130, 75, 0.8]) and s[P["r_eye"], 0] == 115
    assert (s[:, 2] > 0).sum() == 3


def test_each_person_of_the_six_person_sample_gets_their_own_skeleton():
    # neighbours overlap in this photo: without greying out the other heads Pose often took a neighbour
    image = np.asarray(Image.open(ROOT / "assets" / "group6.jpg").convert("RGB"))
    faces = analyze_image(image, AnalysisSettings(mesh=False, embeddings=False)).faces
    assert len(faces) == 6
    for face in faces:
        s, box = face.skeleton, face.box
        assert _inside(s[P["nose"]], box) and s[P["nose"], 2] > 0.5
        assert s[P["r_shoulder"], 2] > 0.5 and s[P["l_shoulder"], 2] > 0.5, face.index
        assert s[P["r_shoulder"], 0] < face.center[0] < s[P["l_shoulder"], 0]
        assert s[P["neck"], 1] > box[3]


def test_blazepose_mapping_neck_and_points_outside_the_image():
    landmarks = np.zeros((33, 3), np.float32)
    landmarks[:, 2] = 0.9
    landmarks[:, 0] = np.arange(33) * 10          # x encodes the BlazePose index
    landmarks[:, 1] = 50
    landmarks[28, 1] = 500                        # right ankle below a 100-px-high image
    s = blazepose_to_coco18(landmarks, height=100, width=400)
    assert s[P["nose"], 0] == 0 and s[P["r_shoulder"], 0] == 120 and s[P["l_shoulder"], 0] == 110
    assert s[P["r_eye"], 0] == 50 and s[P["l_eye"], 0] == 20 and s[P["r_ear"], 0] == 80 and s[P["l_ear"], 0] == 70
    assert s[P["l_hip"], 0] == 230 and s[P["r_knee"], 0] == 260 and s[P["l_ankle"], 0] == 270
    assert s[P["neck"]].tolist() == pytest.approx([115, 50, 0.9])
    assert s[P["r_ankle"]].tolist() == [0, 0, 0]


def test_person_crop_extends_down_and_sideways_and_clips():
    x0, y0, x1, y1 = person_crop(np.array([100, 100, 140, 150], np.float32), height=1000, width=1000)
    assert (x0, y0, x1, y1) == (0, 50, 245, 500)   # left edge -5 clipped to 0
    assert person_crop(np.array([0, 0, 50, 50], np.float32), 100, 80) == (0, 0, 80, 100)
