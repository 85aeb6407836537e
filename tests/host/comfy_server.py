"""A real ComfyUI server process for the host tests and the workflow generator.

``ComfyServer(base_dir)`` starts ``main.py --cpu`` from COMFYUI_DIR on a free loopback port
with ``base_dir`` as its base directory (make one with ``make_base_dir``: only this pack in
custom_nodes), and makes the few HTTP calls the callers need.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-MagicID"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
# Another front end than the one ComfyUI's requirements installed: the static folder of a
# comfyui-frontend-package (e.g. 1.58, `pip download` it and unzip), given to --front-end-root.
FRONT_END_ROOT = os.environ.get("MAGICID_FRONT_END_ROOT", "")


def make_base_dir(base: Path) -> Path:
    """Lay out a ComfyUI base directory whose custom_nodes holds only this pack (a symlink)."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_DIR, target_is_directory=True)
    return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI server process and the few HTTP calls the tests need."""

    def __init__(self, base_dir: Path, extra_args=(), env: dict | None = None):
        """``extra_args``: more main.py arguments (e.g. --extra-model-paths-config); ``env``: variables
        added to this process's environment for the server."""
        self.base_dir = base_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base_dir / "server.log"
        cmd = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(base_dir), "--disable-auto-launch",
            "--database-url", "sqlite:///:memory:", *extra_args,
        ] + (["--front-end-root", FRONT_END_ROOT] if FRONT_END_ROOT else [])
        self.proc = subprocess.Popen(cmd, cwd=COMFYUI_DIR, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

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
        entry = self.finished(prompt_id, timeout)
        if entry is None:
            raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()[-4000:]}")
        return entry

    def finished(self, prompt_id: str, timeout: float) -> dict | None:
        """The prompt's history entry once it has finished; None if it has not within ``timeout``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
