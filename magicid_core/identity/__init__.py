"""Identity: who a face is, and the adapters that carry an identity into a diffusion model.

Imports ``faces/`` and the ``insightface`` backend, never ``diffusion/``.

- ``embedding_models``: the one table of embedding models (name, backend, size, match threshold).
- ``embedders``: identity vectors from a face (ArcFace via insightface packs, or dlib),
  thresholds per model, ``build_identity`` from reference photos, ``identity_from_embeddings``
  from vectors another pack computed.
- ``matching``: identities to faces by the Hungarian method on cosine similarity.
- ``scoring``: how well each identity shows in a picture (IDSimilarity), and its report.
- ``kin``: a child's identity blended from two parents (KinIDBlend).
- ``adapters``: IP-Adapter FaceID / InstantID projection weights (identity vector -> tokens).
"""

from .adapters import IdentityAdapter, load_adapter_file, parse_adapter
from .embedders import BACKENDS, build_identity, make_embedder
from .embedding_models import EMBEDDING_MODELS, EmbeddingModel, backend_of, embedding_model, threshold_for
from .embedders import identity_from_embeddings
from .kin import AGES, GENDERS, family
from .matching import Assignment, assign_identities, similarity_matrix
from .scoring import ASSIGNMENTS, IdentityScore, report_table, report_text, score_batch

__all__ = [
    "BACKENDS", "build_identity", "make_embedder",
    "EMBEDDING_MODELS", "EmbeddingModel", "backend_of", "embedding_model", "threshold_for",
    "identity_from_embeddings",
    "Assignment", "assign_identities", "similarity_matrix",
    "ASSIGNMENTS", "IdentityScore", "report_table", "report_text", "score_batch",
    "AGES", "GENDERS", "family",
    "IdentityAdapter", "load_adapter_file", "parse_adapter",
]
