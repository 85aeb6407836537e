"""Run Python code in a subprocess where mediapipe cannot be imported, as on Python 3.13 or numpy 2.

A meta path finder placed first refuses ``mediapipe`` and its submodules, so the import
fails exactly as it does when the package is not installed (``ModuleNotFoundError``) and
``importlib.util.find_spec`` finds nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]   # the pack folder

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class _NoMediapipe(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "mediapipe" or name.startswith("mediapipe."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoMediapipe())
""")


def run_without_mediapipe(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` (after the blocker) from the pack folder, as pytest imports it; output captured."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _needs_mediapipe():
    import pytest

    from magicid_core.optional import mediapipe_available

    return pytest.mark.skipif(not mediapipe_available(), reason="mediapipe 0.10.21 (mediapipe.solutions) is not "
                              "installed: it installs on Python <= 3.12 with numpy < 2")


needs_mediapipe = _needs_mediapipe()   # @needs_mediapipe on tests of the mediapipe backends themselves
