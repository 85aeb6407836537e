"""Every node says what it does and sits in a subcategory of the MagicID menu; node files
hold node classes, and what knows ComfyUI's internals lives in nodes/host/."""

import ast

import pytest

from tests.support.workflow_defs import PACK_DIR, _load_pack

SUBCATEGORIES = {"faces", "identity", "diffusion", "control", "restore", "loaders"}
NODE_FILES = sorted(p for p in (PACK_DIR / "nodes").glob("*.py") if p.name not in ("__init__.py", "common.py"))


@pytest.mark.parametrize("name", sorted(_load_pack().NODE_CLASS_MAPPINGS))
def test_node_has_a_description_and_a_subcategory(name):
    node = _load_pack().NODE_CLASS_MAPPINGS[name]
    assert isinstance(getattr(node, "DESCRIPTION", None), str) and len(node.DESCRIPTION) > 40, name
    root, _, sub = node.CATEGORY.partition("/")
    assert root == "MagicID" and sub in SUBCATEGORIES, f"{name}: CATEGORY {node.CATEGORY!r}"


@pytest.mark.parametrize("path", NODE_FILES, ids=lambda p: p.name)
def test_node_files_hold_node_classes_and_no_comfy_internals(path):
    tree = ast.parse(path.read_text())
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    nodes = {cls.__name__ for cls in _load_pack().NODE_CLASS_MAPPINGS.values()}
    assert classes and set(classes) <= nodes, f"{path.name}: classes that are not nodes: {set(classes) - nodes}"
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    # a node may use ComfyUI's public node API (progress bars, sampler lists); the rest is host/'s
    assert imported <= {"__future__", "logging", "numpy", "torch", "comfy.utils", "comfy.samplers"}, \
        f"{path.name} imports {sorted(imported)}"
