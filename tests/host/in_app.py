"""Run workflows in the real ComfyUI front end and read back what it shows.

``app_server()`` starts a ``--cpu`` ComfyUI (COMFYUI_DIR) with
the pack, the tiny stand-in models and the example pictures (tests/host/workflow_server.py),
and ``run_in_app(server, workflows, screenshots)`` opens each workflow in Chromium
(tests/host/web/run_workflows.mjs, playwright-core), runs it so every preview shows, and returns each node's pos and size and each group's box as
the app has them; with ``screenshots``, a picture of each workflow cropped to its graph.

Run with the Python that has ComfyUI's requirements (it starts the server with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[2]
WEB_DIR = PACK_DIR / "tests" / "host" / "web"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing_browser() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    if not shutil.which("node"):
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    if not (WEB_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed: run `npm install` in tests/host/web"
    return None


def missing_tools() -> str | None:
    """Why the real app cannot be run and driven here, or None when it can."""
    comfy = os.environ.get("COMFYUI_DIR", "")
    if not comfy or not Path(comfy, "main.py").is_file():
        return "COMFYUI_DIR does not point at a ComfyUI checkout"
    return missing_browser()


def run_in_app(server, workflows: dict[str, Path], screenshots: dict[str, Path] | None = None,
               focus: dict[str, list[int]] | None = None) -> dict:
    """Open and run each workflow (name -> path) on a running server; the page's report.
    ``screenshots``: name -> PNG path to write; ``focus``: name -> node ids to crop the picture to."""
    from tests.host.workflow_server import FAST, FAST_PER_NODE, SUBSTITUTES

    with tempfile.TemporaryDirectory() as tmp:
        job = {"workflows": [{"name": name, "path": str(Path(path).resolve()),
                              "screenshot": str(Path(screenshots[name]).resolve()) if screenshots else None,
                              "focus": (focus or {}).get(name)}
                             for name, path in workflows.items()],
               "substitutes": SUBSTITUTES, "fast": FAST, "fastPerNode": FAST_PER_NODE}
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        out = subprocess.run(["node", "run_workflows.mjs", server.url, str(job_path)], cwd=WEB_DIR,
                             capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"run_workflows.mjs failed:\n{out.stderr[-4000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report.get("failure"):
        raise RuntimeError(f"{report['failure']}\nserver log:\n{server.log()[-3000:]}")
    failed = {name: r["failure"] for name, r in report["workflows"].items() if r.get("failure")}
    if failed:
        raise RuntimeError(f"workflows failed in the app: {json.dumps(failed, indent=1)[:4000]}")
    return report


@contextlib.contextmanager
def app_server():
    """A running ComfyUI with the pack, the stand-ins and the example pictures; stopped on exit."""
    why = missing_tools()
    if why:
        raise RuntimeError(f"cannot run the workflows in the app: {why}")
    from tests.host.comfy_server import ComfyServer
    from tests.host.workflow_server import make_workflow_base_dir

    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(make_workflow_base_dir(Path(base)))
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


def measure_in_app(workflows: dict[str, Path], screenshots: dict[str, Path] | None = None,
                   focus: dict[str, list[int]] | None = None) -> dict:
    """Start a server, run the workflows in Chromium, stop it; the page's report."""
    with app_server() as server:
        return run_in_app(server, workflows, screenshots, focus)


def node_sizes(measured: dict) -> dict[str, dict]:
    """node id -> {"type", "size"} from one workflow's report (what the sizes file stores)."""
    return {str(n["id"]): {"type": n["type"], "size": [round(v, 1) for v in n["size"]]} for n in measured["nodes"]}


def live_boxes(measured: dict) -> dict[int, tuple]:
    """node id -> (x, y, width, height), title bar included, as the app has them (1.5x front ends
    may give the ids as strings: they are the file's numbers)."""
    title = measured["titleHeight"]
    return {int(n["id"]): (n["pos"][0], n["pos"][1] - title, n["size"][0], n["size"][1] + title)
            for n in measured["nodes"]}
