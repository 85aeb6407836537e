"""Identity scoring on real photos with the real offline (dlib) identity model."""

import cv2
import numpy as np
import pytest

from magicid_core.analyze import AnalysisSettings, analyze_image
from magicid_core.identity.embedders import build_identity, make_embedder, threshold_for
from magicid_core.identity.scoring import NO_FACE, report_table, report_text, score_batch
from tests.support.people import astronaut, crop_scaled, grace_hopper, group_of_three


@pytest.fixture(scope="module")
def embedder():
    return make_embedder("dlib")


@pytest.fixture(scope="module")
def eileen(embedder):
    # the reference: another crop and scale of the astronaut photo than the ones scored
    return build_identity("Eileen", [crop_scaled(astronaut(), 30, 330, 90, 390, 200)], embedder)


@pytest.fixture(scope="module")
def grace(embedder):
    return build_identity("Grace", [grace_hopper()], embedder)


FIND_FACES = AnalysisSettings(skeletons=False)   # faces, masks and the embeddings (auto backend: dlib here)


def _main_face_only(image):
    """The analysis of ``image`` keeping its largest face (the photos hold one person)."""
    frame = analyze_image(image, FIND_FACES)
    frame.faces = [max(frame.faces, key=lambda f: f.width * f.height)]
    return frame


def test_same_person_in_two_crops_scores_above_threshold_another_person_below(embedder, eileen, grace):
    threshold = threshold_for(embedder.model_name)
    image = crop_scaled(astronaut(), 0, 400, 40, 440, 360)   # another crop and scale again
    frame = _main_face_only(image)
    [[same]], [[other]] = (score_batch([image], [who], embedder, faces=[frame]) for who in (eileen, grace))
    assert same.after > threshold > other.after
    assert same.face_index == 0 and same.before is None and same.change is None


def test_before_and_after_show_what_a_restore_did(embedder, eileen):
    after = astronaut()
    frame = _main_face_only(after)
    x0, y0, x1, y1 = frame.faces[0].box.astype(int)
    before = after.copy()    # the "damaged" picture: the face blurred beyond recognition
    before[y0:y1, x0:x1] = cv2.GaussianBlur(after[y0:y1, x0:x1], (0, 0), 9)
    [[row]] = score_batch([after], [eileen], embedder, faces=[frame], images_before=[before])
    assert row.after > threshold_for(embedder.model_name) and row.change > 0.05
    assert row.after - row.before == pytest.approx(row.change)
    text = report_text([row], threshold_for(embedder.model_name))
    assert f"{row.before:.3f} -> {row.after:.3f}" in text and "match" in text
    table = report_table([row], threshold_for(embedder.model_name))
    assert table.dtype == np.uint8 and table.shape[1] == 500 and (table < 128).any()


def test_match_pairs_identities_with_their_faces_where_index_order_does_not(embedder, eileen, grace):
    image, _ = group_of_three()          # cameraman, Grace, Eileen, left to right
    frame = analyze_image(image, FIND_FACES)
    assert len(frame.faces) == 3
    threshold = threshold_for(embedder.model_name)
    [matched] = score_batch([image], [eileen, grace], embedder, "match", faces=[frame])
    assert [r.face_index for r in matched] == [2, 1]
    assert all(r.after > threshold for r in matched)
    [by_index] = score_batch([image], [eileen, grace], embedder, "index", faces=[frame])
    assert [r.face_index for r in by_index] == [0, 1]
    assert by_index[0].after < threshold        # Eileen's reference against the cameraman


def test_an_image_without_faces_reports_no_face_never_nan(embedder, eileen):
    blank = np.full((256, 256, 3), 127, np.uint8)
    [[row]] = score_batch([blank], [eileen], embedder)      # re-analysed: no face found
    assert row.face_index is None and row.after == NO_FACE
    assert "no face" in report_text([row], 0.9)
    assert report_table([row], 0.9).shape == (28 * 3, 500, 3)


def test_bad_input_gives_clear_errors(embedder, eileen):
    image = astronaut()
    frame = _main_face_only(image)
    with pytest.raises(ValueError, match="same size"):
        score_batch([image], [eileen], embedder, faces=[frame], images_before=[image[:256, :256]])
    with pytest.raises(ValueError, match="no reference identities"):
        score_batch([image], [], embedder, faces=[frame])
    stranger = type(eileen)("Other", eileen.embedding, "arcface:antelopev2")
    with pytest.raises(ValueError, match="different models"):
        score_batch([image], [stranger], embedder, faces=[frame])
    with pytest.raises(ValueError, match="FACES holds 1 images but 2"):
        score_batch([image, image], [eileen], embedder, faces=[frame])
