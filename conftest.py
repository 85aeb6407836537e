"""Let pytest run from a clone whose folder name is no Python identifier (``ComfyUI-MagicID``).

The pack root is a package (ComfyUI imports its ``__init__.py``). Before running tests,
pytest imports every package's ``__init__.py`` to look for ``setup_module``; for a folder
named ``ComfyUI-MagicID`` it can only import it as a top-level module, and then its
relative imports fail. The root ``__init__.py`` holds no test set-up, so skip that step.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        for node in item.listchain():
            if isinstance(node, pytest.Package) and Path(node.path).resolve() == ROOT:
                node.setup = lambda: None
                return
