"""insightface's ONNX model packs (antelopev2, buffalo_l), run with onnxruntime directly.

No ``insightface`` pip package: it needs a compiler. Its two models we use are plain
ONNX graphs: the SCRFD face detector (boxes + 5 keypoints) and the ArcFace recogniser
(512-d identity vector from a 112x112 aligned face).
"""

from .arcface import ARCFACE_TEMPLATE, ArcFaceRecognizer, align_face, similarity_transform
from .packs import (PACKS, InsightFaceModelError, InsightFacePack, default_models_roots, find_pack,
                    find_pack_or_reason, load_session)
from .scrfd import InsightFaceDetector

__all__ = [
    "ARCFACE_TEMPLATE", "ArcFaceRecognizer", "align_face", "similarity_transform",
    "PACKS", "InsightFaceModelError", "InsightFacePack", "default_models_roots", "find_pack",
    "find_pack_or_reason", "load_session",
    "InsightFaceDetector",
]
