"""The core test suite: ``python -m pytest -q`` from the pack's folder.

Imports are absolute from the pack root (pyproject sets ``pythonpath = ["."]``):
``magicid_core...`` for the code under test, ``tests.support...`` for shared helpers
(scenes, photos, analytic models, adapter layouts, workflow definitions),
``tests.host...`` for the ComfyUI stand-ins, ``tools...`` for the generators. Nothing
here edits ``sys.path``; tests/host/conftest.py adds only ComfyUI itself (COMFYUI_DIR).
"""

from __future__ import annotations

import numpy as np
import torch


def pytest_report_header(config):
    """The versions the results hold for (the pack supports numpy 1.x and 2.x)."""
    return f"magicid: numpy {np.__version__}, torch {torch.__version__}"
