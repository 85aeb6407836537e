"""Tests against a real ComfyUI: set COMFYUI_DIR to a ComfyUI checkout to run them.

Two ways in, both through ComfyUI's own code:
- ``comfy_nodes``: ComfyUI imported in this process (CPU), this pack loaded by
  ComfyUI's custom-node loader; node classes come from its NODE_CLASS_MAPPINGS.
- ``comfy_server``: a real ``main.py --cpu`` server on loopback with only this pack
  in its custom_nodes folder, driven over its HTTP API.
Run them with the Python that has ComfyUI's requirements installed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.host.comfy_server import COMFYUI_DIR, PACK_NAME, ComfyServer, make_base_dir  # noqa: F401
from tests.host.workflow_server import make_workflow_base_dir

SKIP_REASON = "COMFYUI_DIR is not set: point it at a ComfyUI checkout to run the host tests"


def pytest_collection_modifyitems(config, items):
    if COMFYUI_DIR and Path(COMFYUI_DIR, "main.py").is_file():
        return
    reason = SKIP_REASON if not COMFYUI_DIR else f"COMFYUI_DIR={COMFYUI_DIR} holds no ComfyUI main.py"
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def comfy_base_dir(tmp_path_factory) -> Path:
    return make_base_dir(tmp_path_factory.mktemp("comfy_base"))


@pytest.fixture(scope="session")
def comfy_nodes(comfy_base_dir):
    """ComfyUI's ``nodes`` module, in process, on the CPU, with this pack loaded."""
    if COMFYUI_DIR not in sys.path:
        sys.path.insert(0, COMFYUI_DIR)
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_management  # noqa: F401  (reads args.cpu)
    import folder_paths
    # ComfyUI's `utils` package first, as main.py imports it: nodes puts comfy/ (with its
    # utils.py) at the front of sys.path, after which `server` could no longer be imported
    import utils.install_util  # noqa: F401
    import nodes

    folder_paths.set_output_directory(str(comfy_base_dir / "output"))
    folder_paths.set_input_directory(str(comfy_base_dir / "input"))
    folder_paths.set_temp_directory(str(comfy_base_dir / "temp"))
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    loaded = asyncio.run(nodes.load_custom_node(str(comfy_base_dir / "custom_nodes" / PACK_NAME)))
    assert loaded, "ComfyUI's custom-node loader failed to load the pack (see the log above)"
    return nodes


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """A running ComfyUI server (``--cpu``, loopback) with only this pack installed."""
    server = ComfyServer(make_base_dir(tmp_path_factory.mktemp("comfy_server")))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def workflow_server(tmp_path_factory):
    """A running ComfyUI in which the shipped workflows run in seconds (tests/host/workflow_server.py)."""
    server = ComfyServer(make_workflow_base_dir(tmp_path_factory.mktemp("workflow_server")))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
