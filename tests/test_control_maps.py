"""MMF control maps drawn from known keypoints: colours, limbs and positions as the
OpenPose / MediaPipe-face / InstantID annotators draw them, masks, batches, bad input."""

import numpy as np
import pytest

from magicid_core.faces import control_maps as cm
from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.faces.records import Face, FaceSet, ImageFaces
from tests.support.people import group_of_three
from tests.support.no_mediapipe import needs_mediapipe

H, W = 240, 200

# A standing person facing the camera, COCO-18 order; the person's right is the image's left.
STANDING = np.array([
    [100, 40],                           # nose
    [100, 80],                           # neck
    [60, 80], [40, 130], [30, 180],      # r_shoulder, r_elbow, r_wrist
    [140, 80], [160, 130], [170, 180],   # l_shoulder, l_elbow, l_wrist
    [75, 150], [70, 190], [65, 230],     # r_hip, r_knee, r_ankle
    [125, 150], [130, 190], [135, 230],  # l_hip, l_knee, l_ankle
    [88, 30], [112, 30],                 # r_eye, l_eye
    [75, 38], [125, 38],                 # r_ear, l_ear
], np.float32)


def _skeleton(points=STANDING, missing=()):
    sk = np.concatenate([points, np.ones((18, 1), np.float32)], axis=1)
    sk[list(missing), 2] = 0.0
    return sk


def _face(index=0, x0=80.0, y0=20.0, size=40.0, skeleton=None, landmarks=None, mask=None):
    box = np.array([x0, y0, x0 + size, y0 + size], np.float32)
    s = size / 4
    kps = np.array([[x0 + s, y0 + s], [x0 + 3 * s, y0 + s], [x0 + 2 * s, y0 + 2 * s],
                    [x0 + s, y0 + 3 * s], [x0 + 3 * s, y0 + 3 * s]], np.float32)
    return Face(index=index, box=box, score=0.9, keypoints=kps, head_box=box.copy(),
                skeleton=skeleton, landmarks=landmarks, mask=mask)


def _frame(*faces, h=H, w=W):
    return ImageFaces(h, w, list(faces))


def _px(img, x, y):
    return tuple(int(v) for v in img[int(y), int(x)])


def test_every_limb_and_joint_has_its_openpose_colour():
    img = cm.skeleton_map(_frame(_face(skeleton=_skeleton())))
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    # Joints: full colour, the hue wheel red (nose) .. magenta-red (l_ear).
    assert _px(img, 100, 40) == (255, 0, 0)          # nose
    assert _px(img, 100, 80) == (255, 85, 0)         # neck
    assert _px(img, 30, 180) == (170, 255, 0)        # r_wrist
    assert _px(img, 125, 38) == (255, 0, 85)         # l_ear
    for k, color in enumerate(cm.OPENPOSE_COLORS):
        assert _px(img, *STANDING[k]) == color, cm.OPENPOSE_COLORS[k]
    # Limbs: 60 % of their colour, checked at each limb's midpoint where no joint covers it.
    for (a, b), color in zip(cm.OPENPOSE_LIMBS, cm.OPENPOSE_COLORS):
        mid = (STANDING[a] + STANDING[b]) / 2
        if min(np.linalg.norm(STANDING - mid, axis=1)) > cm.OPENPOSE_POINT_RADIUS + 2:
            assert _px(img, *mid) == tuple(int(c * 0.6) for c in color), (a, b)
    # The neck -> right shoulder limb is the dimmed red of limb 0.
    assert _px(img, 80, 80) == (153, 0, 0)
    # Far from the body the canvas stays black.
    assert img[:10, :10].max() == 0 and img[200:, 90:110].max() == 0


def test_missing_keypoints_drop_their_limbs_and_points():
    # Right arm missing from the elbow down (confidence 0), left wrist NaN.
    points = STANDING.copy()
    sk = _skeleton(points, missing=(3, 4))
    sk[7] = np.nan
    img = cm.skeleton_map(_frame(_face(skeleton=sk)))
    assert img[120:190, 20:50].max() == 0            # no right forearm, elbow or wrist
    assert _px(img, 60, 80) == cm.OPENPOSE_COLORS[2]  # the right shoulder is still there
    assert _px(img, 170, 180) == (0, 0, 0)           # no left wrist
    assert _px(img, 160, 130) == cm.OPENPOSE_COLORS[6]
    # A confidence threshold drops low-confidence points too.
    sk2 = _skeleton()
    sk2[0, 2] = 0.2
    assert _px(cm.skeleton_map(_frame(_face(skeleton=sk2)), min_confidence=0.3), 100, 40) == (0, 0, 0)


def test_face_without_skeleton_adds_nothing_but_keeps_its_keypoints():
    frame = _frame(_face(skeleton=None))
    assert cm.skeleton_map(frame).max() == 0
    assert cm.person_region(frame).max() == 0
    assert cm.kps_map(frame).max() == 255


def test_thicker_sticks_for_xinsir_scaling():
    frame = _frame(_face(skeleton=_skeleton(missing=range(2, 18))))   # nose and neck only
    thin = cm.skeleton_map(frame)
    thick = cm.skeleton_map(frame, stick_scale=3)
    assert _px(thin, 100 + 8, 60) == (0, 0, 0)
    assert _px(thick, 100 + 8, 60) == tuple(int(c * 0.6) for c in cm.OPENPOSE_COLORS[12])


def test_68_points_are_drawn_as_openpose_face_keypoints_when_there_is_no_mesh():
    points = np.stack([np.linspace(20, 180, 68), np.full(68, 120.0)], axis=1)
    points[5] = (0, 0)                                  # a missing point (the annotator skips the origin)
    face = _face()
    face.landmarks68 = points
    img = cm.landmark_map(_frame(face))
    assert _px(img, 100, 120) == (255, 255, 255) and _px(img, 100, 125) == (0, 0, 0)   # radius-3 white dots
    assert img[:3, :3].max() == 0 and set(map(tuple, img.reshape(-1, 3))) == {(0, 0, 0), (255, 255, 255)}
    with pytest.raises(ValueError, match="68"):
        cm.draw_face68(np.zeros((H, W, 3), np.uint8), points[:60])


def test_kps_map_matches_instantid_layout():
    face = _face(x0=40, y0=60, size=120)   # points 30 px apart on each axis
    img = cm.kps_map(_frame(face))
    kps = face.keypoints
    for k, color in enumerate(cm.KPS_COLORS):
        assert _px(img, *kps[k]) == color
        if k != 2:   # radius 10: filled 9 px out (away from the nose), black 12 px out
            out = np.sign(kps[k, 0] - kps[2, 0])
            assert _px(img, kps[k, 0] + 9 * out, kps[k, 1]) == color
            assert _px(img, kps[k, 0] + 12 * out, kps[k, 1]) == (0, 0, 0)
    # Each limb goes to the nose in 60 % of its outer point's colour.
    for a, b in cm.KPS_LIMBS:
        mid = (kps[a] + kps[b]) / 2
        assert _px(img, *mid) == tuple(int(c * 0.6) for c in cm.KPS_COLORS[a])
    assert img[:40].max() == 0


def _mesh(h=H, w=W, n=478):
    """A mesh with every point outside the image (MediaPipe drops those)."""
    return np.full((n, 2), -50.0, np.float32)


@needs_mediapipe   # the MediaPipe-face drawing reads the mesh topology from mediapipe
def test_face_mesh_draws_only_visible_edges_in_part_colours():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    lips_edge, oval_edge = sorted(fmc.FACEMESH_LIPS)[0], sorted(fmc.FACEMESH_FACE_OVAL)[0]
    mesh = _mesh()
    mesh[lips_edge[0]] = (50, 100)
    mesh[lips_edge[1]] = (90, 100)
    mesh[oval_edge[0]] = (120, 50)        # the other end stays outside: no oval line
    img = cm.landmark_map(_frame(_face(landmarks=mesh)))
    assert _px(img, 70, 100) == (10, 180, 10)      # lips colour, thickness 2 line
    assert _px(img, 70, 106) == (0, 0, 0)
    assert img[40:60, 110:130].max() == 0          # half-visible edge is skipped
    assert (img.any(axis=-1)).sum() < 40 * 4


@needs_mediapipe
def test_pupils_are_4px_squares_in_iris_colours():
    mesh = _mesh()
    mesh[468] = (60.7, 80.2)    # floored onto the grid: (60, 80)
    mesh[473] = (140, 80)
    img = cm.landmark_map(_frame(_face(landmarks=mesh)))
    assert (img[78:82, 58:62] == (250, 200, 10)).all()
    assert (img[78:82, 138:142] == (10, 200, 250)).all()
    assert img.any(axis=-1).sum() == 32
    # a 468-point (unrefined) mesh has no pupils
    assert cm.landmark_map(_frame(_face(landmarks=mesh[:468]))).max() == 0


@needs_mediapipe
def test_fused_map_lays_landmarks_over_the_skeleton():
    mesh = _mesh()
    mesh[468] = (100, 40)       # right on the nose joint
    frame = _frame(_face(skeleton=_skeleton(), landmarks=mesh))
    maps = cm.mmf_maps(FaceSet([frame]))
    fused, skel = (np.round(maps[name][0] * 255).astype(np.uint8) for name in ("fused", "skeleton"))
    assert _px(fused, 100, 40) == (250, 200, 10)
    assert _px(fused, 60, 80) == _px(skel, 60, 80) == cm.OPENPOSE_COLORS[2]


def test_masks_say_where_each_map_belongs():
    mask = np.zeros((H, W), np.float32)
    mask[22:58, 84:116] = 1.0
    with_mask = _face(index=0, skeleton=_skeleton(), mask=mask)
    without_mask = _face(index=1, x0=10, y0=10, size=30)            # head box instead
    frame = _frame(with_mask, without_mask)
    faces = cm.face_region(frame)
    assert faces[40, 100] == 1 and faces[25, 25] == 1 and faces[150, 100] == 0
    people = cm.person_region(frame)
    for x, y in STANDING:                   # every joint of the person lies inside
        assert people[min(int(y), H - 1), int(x)] == 1
    assert people[5, 195] == 0              # the far corner does not
    assert people[25, 25] == 0              # the second face has no skeleton


def test_batch_of_images_and_empty_images():
    frames = [_frame(_face(skeleton=_skeleton())), _frame()]
    maps = cm.mmf_maps(FaceSet(frames))
    assert maps["skeleton"].shape == (2, H, W, 3) and maps["face_mask"].shape == (2, H, W)
    assert maps["skeleton"].dtype == np.float32 and maps["skeleton"][0].max() == 1.0   # IMAGE values
    for name in ("skeleton", "landmarks", "kps", "fused", "face_mask", "person_mask"):
        assert maps[name][1].max() == 0, name


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="share one size"):
        cm.mmf_maps(FaceSet([_frame(), _frame(h=100, w=100)]))
    with pytest.raises(ValueError, match="no images"):
        cm.mmf_maps(FaceSet([]))
    with pytest.raises(ValueError, match="18 COCO keypoints"):
        cm.skeleton_map(_frame(_face(skeleton=np.zeros((17, 3)))))
    with pytest.raises(ValueError, match="468 or 478"):
        cm.landmark_map(_frame(_face(landmarks=np.zeros((5, 2)))))


def test_schedule_gives_skeleton_first_then_face():
    assert cm.mmf_schedule("together", 0.1, 0.9) == {"skeleton": (0.1, 0.9), "face": (0.1, 0.9)}
    assert cm.mmf_schedule("skeleton_then_face", 0.0, 1.0, 0.4) == {"skeleton": (0.0, 0.4), "face": (0.4, 1.0)}
    # the switch is kept inside start..end: here the skeleton gets no time at all
    assert cm.mmf_schedule("skeleton_then_face", 0.5, 0.8, 0.2) == {"skeleton": (0.5, 0.5), "face": (0.5, 0.8)}
    with pytest.raises(ValueError, match="start_percent"):
        cm.mmf_schedule("together", 0.8, 0.2)
    with pytest.raises(ValueError, match="schedule"):
        cm.mmf_schedule("alternate", 0.0, 1.0)


def test_real_group_photo_maps_line_up_with_its_faces():
    image, _ = group_of_three()          # three real people side by side
    frame = analyze_image(image, AnalysisSettings(embeddings=False))   # with landmarks, masks and skeletons
    assert len(frame.faces) == 3 and all(f.landmarks68 is not None for f in frame.faces)
    for face in frame.faces:
        alone = ImageFaces(frame.height, frame.width, [face])
        drawn = cm.landmark_map(alone).any(axis=-1)
        assert drawn.sum() > 500                                  # a whole face's contours (mesh) or 68 points
        own = face.full_mask(frame.height, frame.width)
        assert (own[drawn] > 0).mean() > 0.95                     # ... inside this face's own mask
        x0, y0, x1, y1 = face.head_box
        kps_drawn = cm.kps_map(alone)
        for x, y in face.keypoints:                               # the 5 keypoints on the head
            assert x0 <= x <= x1 and y0 <= y <= y1 and kps_drawn[int(y), int(x)].any()
        nose = face.skeleton[0]                                   # the skeleton's head on the face
        assert nose[2] > 0 and x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1
        assert cm.person_region(alone)[own > 0.5].min() == 1               # the person region holds the face
    maps = cm.mmf_maps(FaceSet([frame]), min_confidence=0.3)
    landmark_px = maps["landmarks"][0].any(axis=-1)
    assert (maps["face_mask"][0][landmark_px] > 0).mean() > 0.98
    assert maps["skeleton"][0].any(axis=-1)[maps["person_mask"][0] == 0].sum() == 0   # no skeleton off the people


@pytest.mark.parametrize("stick_scale", [1, 3])
def test_map_batch_is_the_single_maps_as_image_values_on_the_real_sample(stick_scale):
    """mmf_maps draws straight on float32 batches; every value must be what the uint8 maps of the
    single-map functions give through ComfyUI's IMAGE conversion (uint8 / 255), bit for bit."""
    frame = analyze_image(group_of_three()[0], AnalysisSettings(embeddings=False))
    second = ImageFaces(frame.height, frame.width, frame.faces[1:])     # a batch of two different images
    maps = cm.mmf_maps(FaceSet([frame, second]), 0.3, stick_scale)
    for b, image in enumerate((frame, second)):
        skeleton = cm.skeleton_map(image, 0.3, stick_scale)
        landmarks = cm.landmark_map(image)
        singles = {"skeleton": skeleton, "landmarks": landmarks, "kps": cm.kps_map(image),
                   "fused": cm.fuse_maps(skeleton, landmarks)}
        for name, single in singles.items():
            assert single.any(), name
            np.testing.assert_array_equal(maps[name][b], single.astype(np.float32) / 255.0, err_msg=name)
        np.testing.assert_array_equal(maps["face_mask"][b], cm.face_region(image))
        np.testing.assert_array_equal(maps["person_mask"][b], cm.person_region(image, 0.3))


def person_region_by_full_canvas_dilation(frame, min_confidence=0.0, margin=0.15):
    """The definition person_region must keep: each person's hull drawn on the whole canvas and
    dilated there by OpenCV's elliptical kernel (what the pack did before; cost grows with the canvas)."""
    import cv2
    region = np.zeros((frame.height, frame.width), np.float32)
    for face in frame.faces:
        sk = np.asarray(face.skeleton, np.float64)
        pts = sk[np.isfinite(sk).all(axis=1) & (sk[:, 2] > min_confidence), :2]
        hb = np.asarray(face.head_box, np.float64)
        pts = np.concatenate([pts, [[hb[0], hb[1]], [hb[2], hb[1]], [hb[2], hb[3]], [hb[0], hb[3]]]])
        person = np.zeros_like(region)
        cv2.fillConvexPoly(person, cv2.convexHull(np.round(pts).astype(np.int32)), 1.0)
        grow = max(1, int(round(margin * max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        np.maximum(region, cv2.dilate(person, kernel), out=region)
    return region


def test_person_region_equals_full_canvas_dilation_on_the_real_sample():
    import cv2
    from pathlib import Path
    sample = cv2.imread(str(Path(__file__).resolve().parents[1] / "assets" / "group6.jpg"))[..., ::-1]
    small = cv2.resize(sample, (400, 200), interpolation=cv2.INTER_AREA)   # the reference is slow on bigger ones
    frame = analyze_image(small, AnalysisSettings(embeddings=False))
    assert len(frame.faces) == 6 and all(f.skeleton is not None for f in frame.faces)
    for min_confidence in (0.0, 0.3):
        expected = person_region_by_full_canvas_dilation(frame, min_confidence)
        assert expected.sum() > 0.3 * expected.size          # people fill much of the picture
        np.testing.assert_array_equal(cm.person_region(frame, min_confidence), expected)


def test_person_region_equals_full_canvas_dilation_on_random_hulls():
    rng = np.random.default_rng(0)
    for _ in range(200):   # hulls inside, across and outside the canvas edges; every margin size
        h, w = (int(v) for v in rng.integers(20, 120, 2))
        faces = []
        for k in range(int(rng.integers(1, 4))):
            n = int(rng.integers(1, 19))
            sk = np.zeros((18, 3), np.float32)
            sk[:n, :2] = rng.uniform(-30, [w + 30, h + 30], (n, 2))
            sk[:n, 2] = 1.0
            x, y, s = *rng.uniform(-10, [w, h]), rng.uniform(0, 30)
            box = np.array([x, y, x + s, y + s * rng.uniform(0.2, 2)], np.float32)
            faces.append(Face(index=k, box=box, score=0.9, keypoints=np.zeros((5, 2), np.float32),
                              head_box=box, skeleton=sk))
        frame, margin = ImageFaces(h, w, faces), float(rng.uniform(0, 0.5))
        np.testing.assert_array_equal(cm.person_region(frame, 0.0, margin),
                                      person_region_by_full_canvas_dilation(frame, 0.0, margin))


def test_schedule_and_maps_refuse_non_finite_numbers_by_name():
    nan = float("nan")
    for args, name in (((nan, 1.0, 0.5), "start_percent"), ((0.0, nan, 0.5), "end_percent"),
                       ((0.0, 1.0, nan), "switch_percent"), ((0.0, 1.0, float("inf")), "switch_percent")):
        with pytest.raises(ValueError, match=rf"^{name} is (nan|inf)"):
            cm.mmf_schedule("skeleton_then_face", *args)
    frame = FaceSet([_frame(_face(skeleton=_skeleton()))])
    with pytest.raises(ValueError, match=r"^min_confidence is nan: give a finite number"):
        cm.mmf_maps(frame, min_confidence=nan)     # (NaN once drew an all-black skeleton)
    with pytest.raises(ValueError, match=r"^stick_scale is 0, outside its range"):
        cm.mmf_maps(frame, stick_scale=0)
