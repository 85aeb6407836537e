"""Identity scoring: how much each person in an image looks like their reference identity.

score = cos(e_face, e_ref), both embeddings from the same identity model (ArcFace when
its files are present, dlib's offline descriptor otherwise). Each identity is paired with
a face either in index order (identity i <-> face i, the order MultiIDApply uses) or by
the best one-to-one matching. Given the image before a restore too, the same faces
(a restore does not move them) are scored in both images, so one sees what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..faces.records import Identity, ImageFaces
from .embedders import DLIB_MODEL_NAME
from ..image_io import to_rgb_uint8
from .matching import assign_identities, similarity_matrix

ASSIGNMENTS = ("index", "match")
NO_FACE = -1.0   # the score of an identity no face was paired with (cosine's minimum; never NaN)


def embed_faces(image, frame: ImageFaces, embedder, reuse: bool = True) -> ImageFaces:
    """A copy of ``frame`` whose faces carry ``embedder``'s embedding of them in ``image``.

    ``reuse``: keep embeddings the same model already made, valid only when ``frame`` was
    analysed on this very image. The image must be the analysed one's size.
    """
    rgb = to_rgb_uint8(image)
    if rgb.shape[:2] != (frame.height, frame.width):
        raise ValueError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} but its faces were found in a "
                         f"{frame.width}x{frame.height} image: the images must have the same size")
    faces = []
    for face in frame.faces:
        if not reuse or face.embedding is None or face.embedding_model != embedder.model_name:
            face = replace(face, embedding=embedder.embed(rgb, face.box, face.keypoints),
                           embedding_model=embedder.model_name)
        faces.append(face)
    return ImageFaces(frame.height, frame.width, faces)


def face_of_identity(frame: ImageFaces, identities: list[Identity], assignment: str) -> list[int | None]:
    """Per identity, the position of its face in ``frame.faces`` (None: no face for it)."""
    if assignment == "index":
        return [i if i < len(frame.faces) else None for i in range(len(identities))]
    if assignment == "match":
        # every pair may be made (threshold -1): a face that a restore made worse is still scored
        return assign_identities(identities, frame.faces, threshold=-1.0).face_of_identity
    raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")


@dataclass
class IdentityScore:
    identity: str
    face_index: int | None     # the face's index in the image, None when no face was paired
    after: float               # similarity in the (restored) image, NO_FACE without a face
    before: float | None       # similarity in the image before, None when not given

    @property
    def change(self) -> float | None:
        if self.before is None or self.face_index is None:
            return None
        return self.after - self.before


def score_identities(frame: ImageFaces, identities: list[Identity], assignment: str = "index",
                     frame_before: ImageFaces | None = None) -> list[IdentityScore]:
    """One row per identity. ``frame_before`` holds the same faces embedded in the image before."""
    if not identities:
        raise ValueError("no reference identities to score against")
    paired = face_of_identity(frame, identities, assignment)
    after = similarity_matrix(identities, frame.faces)
    before = None if frame_before is None else similarity_matrix(identities, frame_before.faces)
    rows = []
    for i, (ident, f) in enumerate(zip(identities, paired)):
        rows.append(IdentityScore(
            identity=ident.name,
            face_index=None if f is None else frame.faces[f].index,
            after=NO_FACE if f is None else float(after[i, f]),
            before=None if before is None else (NO_FACE if f is None else float(before[i, f])),
        ))
    return rows


def backend_of(embedding_model: str) -> str:
    """The identity backend that makes vectors of this model (see identity.BACKENDS)."""
    if embedding_model == DLIB_MODEL_NAME:
        return "dlib"
    if embedding_model.startswith("arcface:"):
        return "arcface"
    raise ValueError(f"unknown identity model {embedding_model!r}: build the identities with IdentityFromImages")


def score_batch(images, identities: list[Identity], embedder, assignment: str = "index", faces=None,
                images_before=None, on_image=None) -> list[list[IdentityScore]]:
    """Rows per image of a batch. ``faces``: the FaceSet of ``images`` (re-analysed when None);
    ``images_before``: the same images before a restore (scored at the same faces);
    ``on_image(n)`` is called after each image (progress)."""
    from ..analyze import AnalysisSettings, analyze_image

    # Re-analysis finds faces only: the embeddings are made below by the identities' own model.
    settings = AnalysisSettings(skeletons=False, embeddings=False)
    images = list(images)
    if faces is not None and len(faces) != len(images):
        raise ValueError(f"FACES holds {len(faces)} images but {len(images)} images were given")
    if images_before is not None and len(images_before) != len(images):
        raise ValueError(f"{len(images_before)} 'before' images for {len(images)} images: give one before each after")
    out = []
    for n, image in enumerate(images):
        frame = faces[n] if faces is not None else analyze_image(image, settings)
        after = embed_faces(image, frame, embedder)
        before = None if images_before is None else embed_faces(images_before[n], frame, embedder, reuse=False)
        out.append(score_identities(after, identities, assignment, before))
        if on_image is not None:
            on_image(n)
    return out


# --- reporting -----------------------------------------------------------------------

def report_text(rows: list[IdentityScore], threshold: float) -> str:
    """One line per identity, e.g. ``Ann  face 0  0.412 -> 0.655 (+0.243)  match``."""
    lines = []
    for r in rows:
        if r.face_index is None:
            lines.append(f"{r.identity}: no face")
            continue
        score = f"{r.after:.3f}" if r.before is None else f"{r.before:.3f} -> {r.after:.3f} ({r.change:+.3f})"
        verdict = "match" if r.after >= threshold else "no match"
        lines.append(f"{r.identity}: face {r.face_index}  {score}  {verdict}")
    return "\n".join(lines) + f"\n(match threshold {threshold:.3f})"


TABLE_ROW = 28
TABLE_COLUMNS = ((8, "identity"), (190, "face"), (250, "before"), (330, "after"), (410, "change"))
TABLE_WIDTH = 500


def report_table(rows: list[IdentityScore], threshold: float) -> np.ndarray:
    """(H, W, 3) uint8: the scores as a small table; 'after' is green at or above the threshold, red below."""
    height = TABLE_ROW * (len(rows) + 2)
    table = np.full((height, TABLE_WIDTH, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def text(s, col, row, color=(0, 0, 0)):
        cv2.putText(table, s, (TABLE_COLUMNS[col][0], TABLE_ROW * row + 19), font, 0.5, color, 1, cv2.LINE_AA)

    for col, (_, title) in enumerate(TABLE_COLUMNS):
        text(title, col, 0, (90, 90, 90))
    cv2.line(table, (0, TABLE_ROW), (TABLE_WIDTH, TABLE_ROW), (180, 180, 180), 1)
    for n, r in enumerate(rows, start=1):
        text(r.identity[:22], 0, n)
        if r.face_index is None:
            text("no face", 1, n, (160, 0, 0))
            continue
        text(str(r.face_index), 1, n)
        if r.before is not None:
            text(f"{r.before:.3f}", 2, n)
            text(f"{r.change:+.3f}", 4, n, (0, 130, 0) if r.change >= 0 else (190, 0, 0))
        text(f"{r.after:.3f}", 3, n, (0, 140, 0) if r.after >= threshold else (200, 0, 0))
    text(f"match threshold {threshold:.3f}", 0, len(rows) + 1, (90, 90, 90))
    return table
