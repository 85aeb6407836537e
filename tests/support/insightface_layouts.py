"""Seeded insightface packs placed in the layouts users have, with insightface deciding where they go.

``place_like_insightface(root, pack)`` lets insightface's own ``utils.storage.ensure_available("models",
pack, root)`` (what ``FaceAnalysis(pack, root)`` calls, and so IPAdapter_plus, InstantID and PuLID with
``root = ComfyUI/models/insightface``) place the pack: it computes the folder and extracts the pack's zip
there. Only the download is stood in for: it serves a zip of seeded files (tests/support/
insightface_onnx_models.py) laid out as the real zips are: ``antelopev2.zip`` holds an ``antelopev2/``
folder, ``buffalo_l.zip`` the files themselves. So the tests place the files where insightface would,
not where our finder looks. Without insightface the pack goes to ``root/models/<pack>``, the folder its
``FaceAnalysis`` documents.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from tests.support.insightface_onnx_models import build_pack

# The released zips that keep their files in a folder named after the pack.
ZIPPED_IN_A_FOLDER = {"antelopev2"}
# A seeded detector that finds about one face on a 256 px portrait (tests/support/people.astronaut).
ONE_FACE_DETECTOR = {"score_bias": -1.5}


def pack_zip(staging: Path, pack: str, **scrfd_options) -> Path:
    """``<pack>.zip`` with seeded files, laid out as the released zip."""
    folder = build_pack(staging, pack, **scrfd_options)
    archive = staging / f"{pack}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{pack}/{file.name}" if pack in ZIPPED_IN_A_FOLDER else file.name)
    return archive


def place_like_insightface(root: Path, pack: str, **scrfd_options) -> Path:
    """Put a seeded pack under ``root`` as ``FaceAnalysis(pack, root)`` would download it; returns the
    folder holding its .onnx files (found on disk afterwards, not assumed)."""
    archive = pack_zip(Path(f"{root}-{pack}-zip"), pack, **scrfd_options)
    try:
        from insightface.utils import storage
    except ImportError:   # the reference is not installed: its documented folder
        target = root / "models" / pack
        target.mkdir(parents=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
    else:
        def serve_zip(url, path=None, overwrite=False, sha1_hash=None):   # the only stand-in: the download
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copy(archive, path)
            return path

        real = storage.download_file
        storage.download_file = serve_zip
        try:
            target = Path(storage.ensure_available("models", pack, root=str(root)))
        finally:
            storage.download_file = real
    return next(target.rglob("*.onnx")).parent


def insightface_resolves_paths() -> bool:
    try:
        from insightface.utils import storage  # noqa: F401
    except ImportError:
        return False
    return True
