"""A ComfyUI base directory in which the shipped workflows run in seconds on a CPU.

Used by tests/host/test_workflows_host.py and test_workflow_layout_host.py, and by the
workflow generator when it measures and photographs the workflows in the real app.

What is substituted, and why:
- Model loaders: CheckpointLoaderSimple and ControlNetLoader become the test-only nodes
  of tiny_loader_nodes.py (same outputs), which return tiny real ComfyUI models: ComfyUI
  recognises a checkpoint by its tensor shapes, so a tiny file with the real key layout
  would be refused, and the real files are gigabytes. SDXL workflows get the same tiny
  SD1.5-shaped model (the graph is what is exercised).
- Identity model: IdentityFromImages becomes TinyIdentityFromImages (the pack's code with
  a dlib-based stand-in for insightface's ArcFace files; see tiny_loader_nodes.py).
- Adapter files: MagicIDAdapterLoader runs unchanged on tiny files written under the real
  names into models/ipadapter, in the real FaceID key layout, sized for the tiny UNet.
- Work size: step counts and IDRestore's working size are turned down (FAST); every node
  still runs its full code path.
- Input pictures: the example files the workflows name, made from the pack's sample photo.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.host.comfy_server import PACK_DIR, PACK_NAME
from tests.host.example_inputs import write_input_pictures
from tests.host.tiny_loader_nodes import SUBSTITUTES  # noqa: F401  (re-exported for the callers)
from tests.support.mgmica_layouts import faceid_state_dict

HERE = Path(__file__).resolve().parent

# the tiny UNet's cross-attention widths in diffusers order: down, up, mid
TINY_UNET_WIDTHS = [32, 64] + [64, 64, 32, 32] + [64]
ADAPTER_FILES = ("ip-adapter-faceid_sd15.bin", "ip-adapter-faceid_sdxl.bin")
FAST = {"steps": 2, "zoom_size": 256}
FAST_PER_NODE = {"IDRestore": {"refinement": 0}}  # DDIMInvert keeps its refinement


def make_workflow_base_dir(base: Path) -> Path:
    """Fill ``base`` (an empty folder): the pack and the stand-in loaders in custom_nodes,
    the example pictures in input, tiny FaceID adapter files in models/ipadapter."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_DIR, target_is_directory=True)
    (base / "custom_nodes" / "magicid_tiny_loaders.py").symlink_to(HERE / "tiny_loader_nodes.py")
    write_input_pictures(base / "input")
    (base / "models" / "ipadapter").mkdir()
    for i, name in enumerate(ADAPTER_FILES):
        torch.save(faceid_state_dict(widths=TINY_UNET_WIDTHS, context_dim=768, seed=i),
                   base / "models" / "ipadapter" / name)
    return base
