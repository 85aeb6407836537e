"""What PuLID-Flux reads of a person's reference photos (``PulidInputs``), made as lldacing's ApplyPulidFlux
makes it from an IMAGE (align mode 1), one reference image at a time:

1. the pixels as its ``tensor_to_image`` makes them (x 255, clamped, truncated to uint8);
2. insightface's antelopev2 pack finds the face (the most prominent one) and gives its raw ArcFace vector
   (insightface's ``Face.embedding``, not normalised: PuLID was trained on antelopev2's, so buffalo_l's or
   dlib's vectors cannot stand in for it);
3. ``pulid_face``: the face aligned at 512 px on its 5 keypoints, kept by the face parser's labels (grey face
   on white), resized to 336 and normalised;
4. EVA02-CLIP-L-14-336's embedding and 5 hidden states of that picture.

The IDFormer's tokens of the references are averaged later (``PulidFlux.tokens_of``), as the reference
averages its images' tokens. The models are given loaded (the host finds their files); the tensors go to the
device the EVA-CLIP sits on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.records import PulidInputs
from ..insightface import InsightFaceModelError, find_pack
from .embedders import most_prominent, pack_embedder
from .eva_clip import EvaClipVision
from .face_clip import ipadapter_pixels
from .face_parsing import FaceParser
from .pulid_face import align_for_pulid, eva_input, face_only

PULID_PACK = "antelopev2"    # the insightface pack whose ArcFace vectors PuLID-Flux reads


@dataclass
class PulidFace:
    """One reference face's share of PulidInputs."""

    arcface_raw: np.ndarray     # (512,) float32
    eva_embedding: np.ndarray   # (768,) float32
    eva_hidden: np.ndarray      # (5, 577, 1024) float32


def find_pulid_pack(models_roots):
    """The antelopev2 pack (insightface layouts code), or an InsightFaceModelError saying PuLID needs it."""
    try:
        return find_pack(models_roots, PULID_PACK)
    except InsightFaceModelError as error:
        raise InsightFaceModelError(f"PuLID-Flux identities need insightface's {PULID_PACK} pack (the raw "
                                    f"ArcFace vector PuLID was trained on; buffalo_l or dlib cannot stand in "
                                    f"for it): {error}") from None


def pulid_face_encoder(pack, parse: FaceParser, eva: EvaClipVision) -> "PulidFaceEncoder":
    """The encoder with the antelopev2 ``pack`` (find_pulid_pack's)."""
    return PulidFaceEncoder(pack_embedder(pack), parse, eva)


class PulidFaceEncoder:
    """``encode(image)``: one reference image -> its PulidFace.

    ``arcface``: an ArcFace embedder of the antelopev2 pack (``find_faces``, ``embed_raw``);
    ``parse``: facexlib's BiSeNet (face_parsing.FaceParser); ``eva``: the EVA-CLIP visual tower.
    """

    def __init__(self, arcface, parse: FaceParser, eva: EvaClipVision):
        self.arcface, self.parse, self.eva = arcface, parse, eva

    def encode(self, image) -> PulidFace | None:
        """None when antelopev2 finds no face. The face is found again here, on the reference's pixels, even
        when the identity's own detector is antelopev2 too: PuLID's keypoints are those (one SCRFD run, next
        to seconds of EVA-CLIP)."""
        pixels = ipadapter_pixels(image)          # ApplyPulidFlux's tensor_to_image, in RGB
        face = most_prominent(self.arcface.find_faces(pixels))
        if face is None:
            return None
        raw = self.arcface.embed_raw(pixels, face.box, face.keypoints)
        picture = face_only(align_for_pulid(pixels, face.keypoints), self.parse)
        embedding, hidden = self.eva.features(eva_input(picture))
        return PulidFace(np.asarray(raw, np.float32).reshape(-1), embedding[0].float().cpu().numpy(),
                         np.stack([h[0].float().cpu().numpy() for h in hidden]))

    @staticmethod
    def inputs(faces: list[PulidFace]) -> PulidInputs:
        """The references' faces stacked: what ``Identity.pulid`` holds."""
        return PulidInputs(arcface_raw=np.stack([f.arcface_raw for f in faces]),
                           eva_embedding=np.stack([f.eva_embedding for f in faces]),
                           eva_hidden=np.stack([f.eva_hidden for f in faces], axis=1))
