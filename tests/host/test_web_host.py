"""The web extension in the real ComfyUI front end, in Debian's chromium.

A ``--cpu`` server with this pack serves the front end; tests/host/web/check_extension.mjs
(playwright-core, driving /usr/bin/chromium) loads it, runs LoadImage -> FaceDetectMasks
on the sample group photo, and reports what the page did. Run twice: once with our
extension disabled (the front end's own console noise in this offline sandbox: missing
user files, no network) and once enabled; the enabled run may add no console error.

Needs: node, chromium (``apt-get install chromium``) and ``npm install`` in tests/host/web.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.workflow_builder import Graph
from tests.support.workflow_defs import WORKFLOWS_DIR

from tests.host.example_inputs import write_input_pictures

WEB_TEST_DIR = Path(__file__).parent / "web"
PACK_DIR = Path(__file__).resolve().parents[2]
SAMPLE = PACK_DIR / "assets" / "group6.jpg"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
EXTENSION = "MagicID.faces"


def _missing_tools() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    if not (WEB_TEST_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed: run `npm install` in tests/host/web"
    return None


pytestmark = pytest.mark.skipif(_missing_tools() is not None, reason=str(_missing_tools()))


def detect_workflow(defs: dict, dilation: int) -> dict:
    g = Graph(defs)
    image = g.add("LoadImage", image=SAMPLE.name)
    faces = g.add("FaceDetectMasks", image=image["IMAGE"], dilation_px=dilation)
    g.add("PreviewImage", images=faces["preview"])
    return g.to_ui()


def run_page(server, tmp_path: Path, workflow: dict, name: str, baseline: bool) -> dict:
    wf_path = tmp_path / f"{name}.json"
    wf_path.write_text(json.dumps(workflow))
    cmd = ["node", "check_extension.mjs", server.url, str(wf_path), str(tmp_path / f"{name}.png")]
    out = subprocess.run(cmd + (["baseline"] if baseline else []), cwd=WEB_TEST_DIR,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.get("failure") is None, f"{report['failure']}\nserver log:\n{server.log()[-3000:]}"
    return report


def set_disabled_extensions(server, names: list[str]) -> None:
    req = urllib.request.Request(f"{server.url}/settings/Comfy.Extension.Disabled", method="POST",
                                 data=json.dumps(names).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).close()


def errors(report: dict, url: str) -> set[str]:
    """Console and page errors, with the server's address taken out so runs compare."""
    return {re.sub(r":\d+:\d+", "", e.replace(url, "SERVER")) for e in report["consoleErrors"] + report["pageErrors"]}


@pytest.fixture(scope="module")
def reports(comfy_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    shutil.copy(SAMPLE, comfy_server.base_dir / "input" / SAMPLE.name)
    defs = comfy_server.get("/object_info")
    set_disabled_extensions(comfy_server, [EXTENSION])
    baseline = run_page(comfy_server, tmp, detect_workflow(defs, 4), "baseline", baseline=True)
    set_disabled_extensions(comfy_server, [])
    # another dilation, so the server runs FaceDetectMasks again instead of using its cache
    magicid = run_page(comfy_server, tmp, detect_workflow(defs, 5), "magicid", baseline=False)
    return {"baseline": baseline, "magicid": magicid, "defs": defs, "url": comfy_server.url}


def test_extension_loads_without_console_errors(reports):
    magicid, baseline, url = reports["magicid"], reports["baseline"], reports["url"]
    assert EXTENSION in magicid["extensions"]
    ours = errors(magicid, url)
    assert not [e for e in ours if "magicid" in e.lower()], ours
    assert ours <= errors(baseline, url), f"new errors with MagicID: {ours - errors(baseline, url)}"


def test_face_indices_are_drawn_over_the_preview(reports):
    node = next(n for n in reports["magicid"]["nodes"] if n["type"] == "FaceDetectMasks")
    faces = node["faces"][0]
    assert len(faces) >= 2, "the sample group photo should show several faces"
    labels = node["labels"]
    assert sorted(label["text"] for label in labels) == sorted(str(f["index"]) for f in faces)
    if reports["magicid"]["vueNodes"]:  # Nodes 2.0: labels on a layer over the preview <img>
        left, top, width, height = node["previewBox"]
        right, bottom = left + width, top + height
    else:  # the canvas: inside the node's preview area, below its widgets
        top = next(w["y"] for w in node["widgets"] if w["name"] == "$$canvas-image-preview")
        left, (right, bottom) = 0, node["size"]
    for label in labels:
        assert left <= label["x"] <= right and top <= label["y"] <= bottom, (label, node["size"], node["previewBox"])
    # labels follow the faces left to right, as the boxes do
    by_index = {f["index"]: f["box"][0] for f in faces}
    xs = [label["x"] for label in sorted(labels, key=lambda lb: by_index[int(lb["text"])])]
    assert xs == sorted(xs)


def test_the_fallback_note_is_drawn_under_face_detect_masks(reports):
    """This server has no insightface pack: FaceDetectMasks on auto says so under the node, wrapped to its width."""
    node = next(n for n in reports["magicid"]["nodes"] if n["type"] == "FaceDetectMasks")
    (note,) = [n for n in node["notes"] if n.startswith("no insightface pack found, so auto used")]
    assert "glintr100.onnx" in note and "models/insightface" in note
    assert " ".join(note.split()) in " ".join(node["noteLines"])   # every word drawn, in order
    if reports["magicid"]["vueNodes"]:  # Nodes 2.0: a box under the node's element, as wide as it
        left, top, width, height, node_width, node_height = node["noteBox"]
        assert (left, width) == (0, node_width) and top > node_height and height > 0, node["noteBox"]


def test_face_map_sets_face_indices(reports):
    maps = reports["magicid"]["faceMaps"]
    pack_types = {t for t in ("MultiIDApply", "IDRestore") if t in reports["defs"]}
    assert {m["type"] for m in maps} == pack_types
    if not maps:
        pytest.skip("neither MultiIDApply nor IDRestore is in this pack yet")
    n_faces = len(next(n for n in reports["magicid"]["nodes"] if n["type"] == "FaceDetectMasks")["faces"][0])
    for m in maps:
        assert m["map"] and m["text"], m
        # the face map is not saved: widgets_values keeps exactly the node's own widgets
        assert m["serializedCount"] == m["realWidgets"] and not m["hasNull"], m
        if m["type"] == "IDRestore":  # clicking chip "face 0" turns face 0 off, and the map shows it
            assert (m["before"], m["clicked"]) == ("all", True)
            assert m["after"] == ", ".join(str(i) for i in range(1, n_faces))
            assert m["drawn"] == [{"label": f"face {i}", "active": i > 0} for i in range(n_faces)], m["drawn"]
        if m["type"] == "MultiIDApply":
            assert m["identities"] == (2 if "IdentityFromImages" in reports["defs"] else 0)
        if m["type"] == "MultiIDApply" and m["identities"]:
            # "" (auto) becomes the identity order, then identity 0 moves on to face 1
            assert (m["before"], m["clicked"]) == ("", True)
            assert m["after"] == ", ".join(["1"] + [str(i) for i in range(1, m["identities"])])
            assert [chip["label"] for chip in m["drawn"]] == [
                f"ID {i} → face {face}" for i, face in enumerate(m["after"].split(", "))], m["drawn"]


def test_shipped_workflows_load_in_the_app(comfy_server, reports):
    """Opening each shipped workflow in the real front end keeps its nodes, links and
    widget values (what the app saves back is what the file holds), with no new errors."""
    paths = sorted(WORKFLOWS_DIR.glob("*.json"))
    write_input_pictures(comfy_server.base_dir / "input")  # the pictures the workflows name
    cmd = ["node", "load_workflows.mjs", comfy_server.url, *map(str, paths)]
    out = subprocess.run(cmd, cwd=WEB_TEST_DIR, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.get("failure") is None, report["failure"]
    for path in paths:
        wf, loaded = json.loads(path.read_text()), report["workflows"][str(path)]
        assert not loaded["missing"], (path.name, loaded["missing"])
        saved = {n["id"]: n for n in loaded["nodes"]}
        # a link joins an output to a named input (the app may renumber input slots)
        named = lambda links, inputs: sorted((l[1], l[2], l[3], inputs(l[3])[l[4]], l[5]) for l in links)  # noqa: E731
        file_inputs = {n["id"]: [i["name"] for i in n.get("inputs", [])] for n in wf["nodes"]}
        assert named(loaded["links"], lambda nid: saved[nid]["inputs"]) == named(wf["links"], file_inputs.get), path.name
        for node in wf["nodes"]:
            assert saved[node["id"]]["type"] == node["type"]
            # a node without widgets saves [] (1.2x) or nothing (1.5x)
            assert (saved[node["id"]]["widgets_values"] or []) == node["widgets_values"], (path.name, node["type"])
    # The missing-models dialog asks each listed file's host for its size; this machine has no network,
    # so those lookups fail here (and only those: any other error still counts).
    model_urls = {m["url"] for path in paths for m in json.loads(path.read_text()).get("models", [])}
    offline = lambda e: (("ERR_NAME_NOT_RESOLVED" in e and any(url in e for url in model_urls))  # noqa: E731
                         or e.startswith("Error fetching file size: TypeError: Failed to fetch"))
    found = {re.sub(r":\d+:\d+", "", e.replace(comfy_server.url, "SERVER")) for e in report["errors"] if not offline(e)}
    assert found <= errors(reports["baseline"], comfy_server.url), found - errors(reports["baseline"], comfy_server.url)


def test_missing_models_are_offered_with_their_links(comfy_server, tmp_path):
    """On a server without the model files, the front end lists every file of a workflow's
    ``models`` metadata with its folder and a link to copy (1.2x: its Missing Models dialog;
    1.5x: the issues panel); without that metadata it offers no link."""
    shipped = WORKFLOWS_DIR / "magicid_group_2_ids_sd15.json"
    bare = json.loads(shipped.read_text())
    files = {m["url"]: m for m in bare.pop("models")}
    stripped = tmp_path / "no_models_metadata.json"
    stripped.write_text(json.dumps(bare))
    cmd = ["node", "missing_models.mjs", comfy_server.url, str(shipped), str(stripped)]
    out = subprocess.run(cmd, cwd=WEB_TEST_DIR, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.get("failure") is None, report["failure"]
    offered, without = report["workflows"][str(shipped)], report["workflows"][str(stripped)]
    links = lambda page: [b for b in page["buttons"] if b["label"] == "Copy URL"]  # noqa: E731
    assert len(links(offered)) == len(files), (offered["text"][-2000:], files)
    for model in files.values():
        name = model["name"].rsplit("/", 1)[-1]  # 1.2x shows "ipadapter / <file>", 1.5x the combo's value
        assert name in offered["text"] and model["directory"] in offered["text"], model
    assert links(without) == []
