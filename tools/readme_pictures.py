"""The README's pictures of the app, taken in the real front end (as the workflow previews are).

    COMFYUI_DIR=... python tools/readme_pictures.py

Two small graphs run in Chromium on a ``--cpu`` ComfyUI with the tiny stand-in models
(tests/host/in_app.py), each photographed around the nodes a reader should look at:
- docs/app_face_indices.jpg: FaceDetectMasks on the sample group photo, face numbers drawn
  over its preview by the pack's web extension;
- docs/app_ownership.jpg: MultiIDApply with three identities and its ownership preview.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.host.in_app import measure_in_app  # noqa: E402
from tests.support.workflow_builder import Graph  # noqa: E402
from tests.support.workflow_defs import PACK_DIR, all_definitions  # noqa: E402

DOCS = PACK_DIR / "docs"


def face_indices(g: Graph) -> tuple[dict, list[int]]:
    photo = g.add("LoadImage", image="group_photo.jpg")
    detect = g.add("FaceDetectMasks", image=photo["IMAGE"], skeletons=False, identity_backend="none")
    g.add("MaskToImage", mask=detect["union_mask"])  # a graph needs an output; not in the picture
    g.add("PreviewImage", images=g.nodes[-1][0])
    return {detect.id: (900.0, 640.0)}, [detect.id]


def ownership(g: Graph) -> tuple[dict, list[int]]:
    loader = g.add("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors")
    layout = g.add("LoadImage", title="Layout photo", image="group_photo.jpg")
    faces = g.add("FaceDetectMasks", image=layout["IMAGE"], max_faces=3, skeletons=False)
    chain = None
    for i, who in enumerate(["Ann", "Ben", "Cleo"]):
        photo = g.add("LoadImage", image=f"person_{'abc'[i]}.jpg")
        extra = {"identities": chain["identities"]} if chain else {}
        chain = g.add("IdentityFromImages", images=photo["IMAGE"], name=who, **extra)
    adapter = g.add("MagicIDAdapterLoader", adapter_file="ipadapter/ip-adapter-faceid_sd15.bin")
    patched = g.add("MultiIDApply", model=loader["MODEL"], adapter=adapter["adapter"],
                    identities=chain["identities"], faces=faces["faces"])
    preview = g.add("PreviewImage", title="Who owns which face", images=patched["ownership"])
    return {patched.id: (420.0, 360.0), preview.id: (700.0, 420.0)}, [patched.id, preview.id]


PICTURES = {"app_face_indices": face_indices, "app_ownership": ownership}


def main() -> None:
    defs = all_definitions()
    with tempfile.TemporaryDirectory() as tmp:
        paths, shots, focus = {}, {}, {}
        for name, build in PICTURES.items():
            g = Graph(defs)
            sizes, focus[name] = build(g)
            paths[name] = Path(tmp) / f"{name}.json"
            paths[name].write_text(json.dumps(g.to_ui(sizes)))
            shots[name] = Path(tmp) / f"{name}.png"
        measure_in_app(paths, shots, focus)
        for name, shot in shots.items():
            with Image.open(shot) as picture:
                picture.convert("RGB").save(DOCS / f"{name}.jpg", quality=88)
            print(f"wrote docs/{name}.jpg")


if __name__ == "__main__":
    main()
