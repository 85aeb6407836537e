"""The shipped workflows are sound without running them, and the checker catches faults.

Every ``workflows/*.json`` must pass ``check_workflow`` against the real node definitions
(ComfyUI's core from the committed /object_info snapshot, the pack's own from its
NODE_CLASS_MAPPINGS), carry a PNG preview that loads the same workflow when dropped on
ComfyUI, and a JPG thumbnail for ComfyUI's template browser.
"""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image

from tests.support.workflow_builder import Graph
from tests.support.workflow_api import to_api_prompt
from tests.support.workflow_check import check_workflow, readme_model_files
from tests.support.workflow_defs import PACK_DIR, WORKFLOWS_DIR, all_definitions, core_definitions

WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))


@pytest.fixture(scope="module")
def defs():
    return all_definitions()


@pytest.fixture(scope="module")
def readme_models():
    return readme_model_files((PACK_DIR / "README.md").read_text())


def test_pack_ships_workflows():
    assert WORKFLOWS, "workflows/ holds no workflow"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_sound(path, defs, readme_models):
    problems = check_workflow(json.loads(path.read_text()), defs, readme_models)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_preview_loads_the_workflow(path):
    """The PNG beside it carries the workflow, as ComfyUI's own saved images do."""
    with Image.open(path.with_suffix(".png")) as png:
        assert png.format == "PNG" and min(png.size) >= 256
        assert json.loads(png.text["workflow"]) == json.loads(path.read_text())
    with Image.open(path.with_suffix(".jpg")) as thumb:  # what the template browser shows
        assert thumb.format == "JPEG"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_converts_to_an_api_prompt(path, defs):
    wf = json.loads(path.read_text())
    prompt = to_api_prompt(wf, defs)
    real_nodes = [n for n in wf["nodes"] if n["type"] not in ("Note", "MarkdownNote")]
    assert sorted(prompt) == sorted(str(n["id"]) for n in real_nodes)
    for node_id, entry in prompt.items():  # every link points at a node that is sent too
        for value in entry["inputs"].values():
            if isinstance(value, list):
                assert value[0] in prompt, f"node {node_id} reads from missing node {value[0]}"


# --- the checker itself, on a plain SD1.5 text-to-image graph of core nodes -------------

CKPT = "v1-5-pruned-emaonly.safetensors"


def txt2img() -> dict:
    g = Graph(core_definitions())
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=CKPT)
    pos = g.add("CLIPTextEncode", text="a photo of two friends", clip=ckpt["CLIP"])
    neg = g.add("CLIPTextEncode", text="blurry", clip=ckpt["CLIP"])
    latent = g.add("EmptyLatentImage", width=512, height=512)
    sample = g.add("KSampler", model=ckpt["MODEL"], positive=pos[0], negative=neg[0],
                   latent_image=latent[0], seed=7, steps=20, cfg=6.5)
    image = g.add("VAEDecode", samples=sample[0], vae=ckpt["VAE"])
    g.add("SaveImage", images=image[0])
    g.note(f"Put {CKPT} into models/checkpoints.")
    return g.to_ui()


def nodes_of(wf, node_type):
    return [n for n in wf["nodes"] if n["type"] == node_type]


def test_checker_passes_a_sound_graph():
    assert check_workflow(txt2img(), core_definitions(), {CKPT}) == []


@pytest.mark.parametrize("fault, expected", [
    ("unknown_type", "unknown node type"),
    ("wrong_link_type", "output CLIP -> KSampler.model which takes MODEL"),
    ("out_of_range", "widget steps: 0 is outside [1, 10000]"),
    ("bad_combo", "widget sampler_name: 'euler_fast' is not one of"),
    ("missing_widget", "6 widget values for 7 widgets"),
    ("open_input", "required input latent_image (LATENT) is not connected"),
    ("no_note", "no Note node"),
    ("unlisted_model", "'sd15.safetensors' is not in the README's model list"),
])
def test_checker_finds_the_fault(fault, expected):
    wf = copy.deepcopy(txt2img())
    sampler = nodes_of(wf, "KSampler")[0]
    if fault == "unknown_type":
        nodes_of(wf, "SaveImage")[0]["type"] = "SaveImageToCloud"
    elif fault == "wrong_link_type":  # rewire the sampler's model input to the CLIP output
        link = next(l for l in wf["links"] if l[0] == sampler["inputs"][0]["link"])
        link[2] = 1
        nodes_of(wf, "CheckpointLoaderSimple")[0]["outputs"][1]["links"].append(link[0])
    elif fault == "out_of_range":
        sampler["widgets_values"][2] = 0
    elif fault == "bad_combo":
        sampler["widgets_values"][4] = "euler_fast"
    elif fault == "missing_widget":
        del sampler["widgets_values"][1]  # the seed's control mode
    elif fault == "open_input":
        sampler["inputs"][3]["link"] = None
    elif fault == "no_note":
        wf["nodes"] = [n for n in wf["nodes"] if n["type"] != "Note"]
    elif fault == "unlisted_model":
        nodes_of(wf, "CheckpointLoaderSimple")[0]["widgets_values"] = ["sd15.safetensors"]
    problems = check_workflow(wf, core_definitions(), {CKPT})
    assert any(expected in p for p in problems), problems


def test_api_prompt_of_the_sound_graph():
    prompt = to_api_prompt(txt2img(), core_definitions())
    sampler = next(v for v in prompt.values() if v["class_type"] == "KSampler")
    # widget values by name (the seed's control mode is not sent), links as [id, slot]
    assert sampler["inputs"]["seed"] == 7 and sampler["inputs"]["cfg"] == 6.5
    assert "control_after_generate" not in json.dumps(prompt)
    assert prompt[sampler["inputs"]["model"][0]]["class_type"] == "CheckpointLoaderSimple"
    assert sampler["inputs"]["positive"][1] == 0 and len(prompt) == 7


def test_readme_model_list_reads_only_model_sections():
    readme = "## Models\n- `a.safetensors` in models/x\n## Nodes\n`b.safetensors`\n## Workflows\n`c.pth`\n"
    assert readme_model_files(readme) == {"a.safetensors", "c.pth"}


def test_readme_names_every_workflow():
    workflows_section = (PACK_DIR / "README.md").read_text().split("## Workflows", 1)[1].split("\n## ", 1)[0]
    missing = [p.stem for p in WORKFLOWS if f"`{p.stem}`" not in workflows_section]
    assert not missing, f"README's Workflows section does not mention {missing}"


def test_widget_slots_follow_the_apps_seed_convention():
    from tests.support.workflow_defs import widget_slots

    seed = {"input": {"required": {"seed": ["INT", {"default": 0}], "n": ["INT", {}]}}}
    assert [(s.spec.name, s.extra) for s in widget_slots(seed)] == [
        ("seed", None), ("seed", "control_after_generate"), ("n", None)]
    told = {"input": {"required": {"seed": ["INT", {"control_after_generate": False}]}}}
    assert [s.extra for s in widget_slots(told)] == [None]


def test_readme_model_table_is_current(defs):
    from tools.build_workflows import build_all, readme_model_table
    from tools.workflow_models import readme_table

    table = readme_table((PACK_DIR / "README.md").read_text())
    assert table is not None, "README.md lost its model table markers"
    assert table == readme_model_table(build_all(defs)), \
        "README's model table is out of date: run python tools/build_workflows.py"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_lists_its_model_files_for_the_front_end(path, defs):
    """Every file a loader names is in the workflow's ``models`` metadata under the loader's
    own value (what comfyui-frontend-package 1.5x matches), with its folder and a public url."""
    from tools.workflow_models import MODELS, file_name

    wf = json.loads(path.read_text())
    listed = {m["name"]: m for m in wf.get("models", [])}
    for node in wf["nodes"]:
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and file_name(value) in MODELS:
                entry = listed.get(value)
                assert entry is not None, f"{path.stem}: {value} is not in the workflow's models metadata"
                model = MODELS[file_name(value)]
                assert (entry["directory"], entry["url"]) == (model.directory or model.folder, model.url)
                assert entry["url"].startswith("https://huggingface.co/")
                # a file saved under another name than the link's says which one to rename
                linked = entry["url"].rsplit("/", 1)[-1]
                assert linked == file_name(value) or linked in model.what
    assert all(set(m) == {"name", "url", "directory"} for m in listed.values())
