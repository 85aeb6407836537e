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
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

PACK_DIR = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-MagicID"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
SKIP_REASON = "COMFYUI_DIR is not set: point it at a ComfyUI checkout to run the host tests"


def pytest_collection_modifyitems(config, items):
    if COMFYUI_DIR and Path(COMFYUI_DIR, "main.py").is_file():
        return
    reason = SKIP_REASON if not COMFYUI_DIR else f"COMFYUI_DIR={COMFYUI_DIR} holds no ComfyUI main.py"
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def make_base_dir(base: Path) -> Path:
    """Lay out a ComfyUI base directory whose custom_nodes holds only this pack (a symlink)."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_DIR, target_is_directory=True)
    return base


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
    import nodes

    folder_paths.set_output_directory(str(comfy_base_dir / "output"))
    folder_paths.set_input_directory(str(comfy_base_dir / "input"))
    folder_paths.set_temp_directory(str(comfy_base_dir / "temp"))
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    loaded = asyncio.run(nodes.load_custom_node(str(comfy_base_dir / "custom_nodes" / PACK_NAME)))
    assert loaded, "ComfyUI's custom-node loader failed to load the pack (see the log above)"
    return nodes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI server process and the few HTTP calls the tests need."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base_dir / "server.log"
        cmd = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(base_dir), "--disable-auto-launch",
            "--database-url", "sqlite:///:memory:",
        ]
        self.proc = subprocess.Popen(cmd, cwd=COMFYUI_DIR, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = float(os.environ.get("MAGICID_HOST_START_TIMEOUT", 900))) -> None:
        # A cold start takes ~10 s on an idle machine but minutes on a loaded 2-core one;
        # the process exiting is caught at once, so a long wait costs nothing when it fails.
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer in {timeout}s:\n{self.log()[-4000:]}")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:  # ComfyUI explains a rejected prompt in the body
            raise AssertionError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')}") from None

    def run_prompt(self, prompt: dict, timeout: float = 300.0) -> dict:
        """Queue an API-format prompt, wait for it, return its history entry."""
        prompt_id = self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            time.sleep(0.3)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """A running ComfyUI server (``--cpu``, loopback) with only this pack installed."""
    server = ComfyServer(make_base_dir(tmp_path_factory.mktemp("comfy_server")))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
