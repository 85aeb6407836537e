"""IDSimilarity: per person, how much the face in an image looks like its reference identity."""

from __future__ import annotations

from ..magicid_core.identity.embedders import make_embedder, threshold_for
from ..magicid_core.identity.scoring import ASSIGNMENTS, backend_of, report_table, report_text, score_batch
from .common import CATEGORY, FACES, IDENTITIES, images_to_numpy, numpy_to_images
from .models import insightface_roots


class IDSimilarity:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image to score (e.g. after IDRestore)."}),
                "identities": (IDENTITIES, {"tooltip": "The reference identities (same identity model for all)."}),
                "assignment": (list(ASSIGNMENTS), {"tooltip": "index: identity i is face i (MultiIDApply's order). "
                                                              "match: the best one-to-one pairing by similarity."}),
            },
            "optional": {
                "faces": (FACES, {"tooltip": "The faces of this image; when not connected the image is re-analysed."}),
                "image_before": ("IMAGE", {"tooltip": "The same image before the restore, scored at the same faces."}),
            },
        }

    RETURN_TYPES = ("FLOAT", "FLOAT", "STRING", "IMAGE")
    RETURN_NAMES = ("similarity", "similarity_before", "report", "table")
    OUTPUT_IS_LIST = (True, True, False, False)
    OUTPUT_TOOLTIPS = ("Cosine similarity per identity (image by image); -1 where no face was found for it.",
                       "The same for image_before (empty when it is not connected).",
                       "One line per identity: before -> after, and match / no match at the model's threshold.",
                       "The scores as a small table.")
    FUNCTION = "score"
    CATEGORY = CATEGORY + "/identity"

    def score(self, image, identities, assignment, faces=None, image_before=None):
        import comfy.utils

        if not identities:
            raise ValueError("IDSimilarity needs at least one reference identity")
        model = identities[0].embedding_model
        embedder = make_embedder(backend_of(model), insightface_roots())
        threshold = threshold_for(model)
        images = images_to_numpy(image)
        before = None if image_before is None else images_to_numpy(image_before)
        progress = comfy.utils.ProgressBar(len(images))
        per_image = score_batch(images, identities, embedder, assignment, faces, before,
                                on_image=lambda n: progress.update(1))
        rows = [r for image_rows in per_image for r in image_rows]
        text = "\n\n".join(report_text(image_rows, threshold) for image_rows in per_image)
        table = numpy_to_images([report_table(image_rows, threshold) for image_rows in per_image])
        return ([r.after for r in rows], [r.before for r in rows if r.before is not None], text, table)
