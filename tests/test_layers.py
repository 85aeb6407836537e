"""The core's layering, read from its source (ast, nothing imported).

1. ``magicid_core`` never imports ComfyUI (``comfy``, ``comfy_extras``, ``comfy_api``,
   ``folder_paths``, ``nodes``, ``server``), not even lazily inside a function, and never
   reaches out of its own folder with a relative import.
2. No import cycle among its modules. Every import counts, also the lazy ones inside
   functions (a cycle hidden behind a function call is still a cycle). An edge goes to the
   module an import names: ``from ..faces.geometry import nms`` is an edge to
   ``magicid_core.faces.geometry``, ``from ..faces import crops`` one to ``magicid_core.faces.crops``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "magicid_core"
HOST_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "nodes", "server"}


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(root: Path, path: Path) -> str:
    """The package a module's relative imports start from."""
    name = module_name(root, path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(root: Path, path: Path):
    """(line, absolute dotted target, imported names) for every import in the file.

    Relative imports are resolved against the module's package; ``names`` are those of a
    ``from X import a, b`` (empty for ``import X``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(root, path).split(".")
                if node.level - 1 >= len(base):
                    yield node.lineno, "." * node.level + (node.module or ""), ()   # leaves the package
                    continue
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield node.lineno, target, tuple(a.name for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and not node.args[0].value.startswith(".")):
            yield node.lineno, node.args[0].value, ()


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def host_imports(root: Path) -> list[str]:
    """Every import of ComfyUI (or out of the package by a relative import), as 'file:line target'."""
    bad = []
    for name, path in modules(root).items():
        for line, target, _ in imports(root, path):
            if target.startswith(".") or target.split(".")[0] in HOST_MODULES:
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {target}")
    return bad


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, target, names in imports(root, path):
            for imported in names or ("",):
                full = f"{target}.{imported}" if imported else target
                if full in known:                 # from package import submodule
                    graph[name].add(full)
                elif target in known:
                    graph[name].add(target)
    for name in graph:
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colours)."""
    state: dict[str, int] = {}               # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_core_imports_no_comfyui():
    bad = host_imports(CORE)
    assert not bad, "magicid_core must not import ComfyUI (only nodes/ may):\n" + "\n".join(bad)


def test_core_has_no_import_cycle():
    graph = import_graph(CORE)
    assert len(graph) > 30 and graph["magicid_core.insightface.scrfd"], "the module graph was not read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in magicid_core: " + " -> ".join(cycle)


def test_insightface_backend_imports_only_faces_and_image_io():
    """The sibling backend sits below identity/ and diffusion/: it may use faces/ and image_io only."""
    graph = import_graph(CORE)
    allowed = ("magicid_core.insightface", "magicid_core.faces.", "magicid_core.image_io")
    used = {t for m, targets in graph.items() if m.startswith("magicid_core.insightface") for t in targets}
    assert used and all(t.startswith(allowed) for t in used), sorted(used)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


@pytest.mark.parametrize("planted", [
    "import comfy.model_management\n",
    "def load():\n    import folder_paths\n",
    "from comfy_extras.nodes_mask import MaskComposite\n",
    "from ..nodes import common\n",
    "import importlib\nserver = importlib.import_module('server')\n",
])
def test_the_host_check_catches_a_planted_comfy_import(tmp_path, planted):
    root = _write(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": planted, "pkg/sub/__init__.py": "from .. import mod\n"})
    assert len(host_imports(root)) == 1


def test_the_cycle_check_catches_a_planted_cycle(tmp_path):
    root = _write(tmp_path, {
        "pkg/__init__.py": "from .a.one import x\n",
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": "from ..b import two\nx = 1\n",
        "pkg/b/__init__.py": "",
        "pkg/b/two.py": "def f():\n    from ..a.one import x   # lazy, still a cycle\n",
    })
    assert find_cycle(import_graph(root)) == ["pkg.a.one", "pkg.b.two", "pkg.a.one"]
    (root / "b" / "two.py").write_text("y = 2\n")
    assert find_cycle(import_graph(root)) is None
