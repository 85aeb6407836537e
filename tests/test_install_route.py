"""install.py keeps the ONNX Runtime and dlib a user already has, and installs the CPU builds otherwise.

The plan is tested here on what is installed in this environment. The real proof needs PyPI: each
case makes a clean venv (no system site packages), installs what the user had first, then runs
install.py, and reads ``pip list``. It runs only when asked:

    MAGICID_INSTALL_TESTS=1 python -m pytest tests/test_install_route.py -s

``MAGICID_INSTALL_PYTHONS``: the interpreters to make the venvs with (os.pathsep-separated; default
this one). ``MAGICID_INSTALL_WHEELS``: a folder of local wheels pip may take first (``--find-links``),
e.g. a dlib wheel built once with ``pip wheel dlib -w <folder>``: dlib on PyPI is a source archive,
and building it takes many minutes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACK_DIR = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("magicid_install", PACK_DIR / "install.py")
install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install)


# --- the plan, for what this environment has -----------------------------------------------------

def test_finds_the_distributions_that_install_a_module_folder():
    import onnxruntime  # noqa: F401  (the core suite's environment has a build of it, and dlib)
    import dlib  # noqa: F401

    runtimes = install.distributions_of("onnxruntime")
    assert runtimes and all(name.startswith("onnxruntime") for name in runtimes)
    assert set(install.distributions_of("dlib")) & {"dlib", "dlib-bin"}
    assert install.distributions_of("no_such_module_here") == []


@pytest.mark.parametrize("runtime", ["onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                                     "onnxruntime-silicon", "onnxruntime"])
def test_an_installed_runtime_and_dlib_are_kept(runtime):
    to_install, notes = install.plan([runtime], True, ["dlib"], True)
    assert to_install == []
    assert f"ONNX Runtime: keeping {runtime}" in notes and "dlib: keeping dlib" in notes


def test_nothing_installed_gets_the_cpu_builds():
    to_install, notes = install.plan([], False, [], False)
    assert to_install == [install.ONNXRUNTIME_CPU, install.DLIB_PREBUILT]
    assert any("installing the CPU build" in n for n in notes)


def test_two_runtimes_over_one_folder_are_reported():
    to_install, notes = install.plan(["onnxruntime", "onnxruntime-gpu"], True, ["dlib-bin"], True)
    assert to_install == []
    assert any("onnxruntime and onnxruntime-gpu are all installed" in n and "uninstall" in n for n in notes)


def test_requirements_never_name_a_runtime_or_dlib():
    """The lines pip and ComfyUI-Manager install unconditionally must not overwrite a user's build."""
    for file in ("requirements.txt", "requirements-test.txt"):
        lines = [line.split("#")[0].strip().lower() for line in (PACK_DIR / file).read_text().splitlines()]
        named = [line for line in lines if line.startswith(("onnxruntime", "dlib"))]
        assert named == [], f"{file} lists {named}"


def test_dry_run_installs_nothing():
    out = subprocess.run([sys.executable, str(PACK_DIR / "install.py"), "--dry-run"], capture_output=True,
                         text=True, check=True).stdout
    assert "would run" in out and "ONNX Runtime: keeping" in out and "dlib: keeping" in out


def test_flux_installs_timm_and_facexlib_without_its_dependencies():
    """facexlib's declared opencv-python and numba would replace the user's opencv variant and numpy."""
    to_install, notes = install.flux_plan(False, False, True)
    assert to_install == [[install.TIMM], ["--no-deps", install.FACEXLIB]]
    assert install.flux_plan(True, True, True)[0] == []
    assert all("keeping" in n for n in install.flux_plan(True, True, True)[1])


def test_flux_installs_nothing_without_torchvision():
    """timm would bring a torchvision from PyPI pinned to a torch other than the user's."""
    to_install, notes = install.flux_plan(False, False, False)
    assert to_install == [] and "torchvision is not installed" in notes[0]


def test_dry_run_with_flux_says_what_it_would_do_for_pulid():
    out = subprocess.run([sys.executable, str(PACK_DIR / "install.py"), "--dry-run", "--flux"], capture_output=True,
                         text=True, check=True).stdout
    assert "PuLID-Flux:" in out


def test_a_comfyui_with_pulid_flux_files_gets_the_flux_packages_without_the_option(tmp_path):
    """ComfyUI-Manager runs install.py without options: a ComfyUI holding PuLID-Flux's files (where
    lldacing's install steps put them) is a Flux user's, and gets the --flux plan; another does not."""
    comfy = tmp_path / "ComfyUI"
    pack = comfy / "custom_nodes" / "ComfyUI-MagicID"
    pack.mkdir(parents=True)
    (comfy / "models" / "pulid").mkdir(parents=True)
    (comfy / "models" / "pulid" / "ip-adapter_pulid_sdxl_fp16.safetensors").write_bytes(b"x")   # SDXL PuLID: no
    assert install.pulid_flux_files(pack) == []
    (comfy / "models" / "pulid" / "pulid_flux_v0.9.1.safetensors").write_bytes(b"x")
    (comfy / "models" / "text_encoders").mkdir()
    (comfy / "models" / "text_encoders" / install.EVA_CLIP_FILE).write_bytes(b"x")
    assert [f.name for f in install.pulid_flux_files(pack)] == ["pulid_flux_v0.9.1.safetensors", install.EVA_CLIP_FILE]
    assert install.pulid_flux_files(tmp_path / "somewhere" / "ComfyUI-MagicID") == []   # not in a custom_nodes

    for name in ("install.py", "requirements.txt"):
        (pack / name).write_bytes((PACK_DIR / name).read_bytes())
    out = subprocess.run([sys.executable, str(pack / "install.py"), "--dry-run"], capture_output=True,
                         text=True, check=True).stdout
    assert "PuLID-Flux's files are here (pulid_flux_v0.9.1.safetensors" in out and "PuLID-Flux:" in out


# --- clean venvs, with the network -----------------------------------------------------------------

network = pytest.mark.skipif(os.environ.get("MAGICID_INSTALL_TESTS") != "1",
                             reason="makes clean venvs and installs from PyPI: set MAGICID_INSTALL_TESTS=1")
PYTHONS = [p for p in os.environ.get("MAGICID_INSTALL_PYTHONS", sys.executable).split(os.pathsep) if p]
WHEELS = os.environ.get("MAGICID_INSTALL_WHEELS", "")


def _venv(base: Path, python: str) -> Path:
    subprocess.run([python, "-m", "venv", str(base)], check=True)
    return base / "bin" / "python"


def _run(python: Path, *args: str) -> str:
    result = subprocess.run([str(python), *args], capture_output=True, text=True, cwd=PACK_DIR)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _pip_install(python: Path, *packages: str) -> None:
    links = ["--find-links", WHEELS] if WHEELS else []
    _run(python, "-m", "pip", "install", "-q", *links, *packages)


def _pip_list(python: Path) -> dict[str, str]:
    rows = json.loads(_run(python, "-m", "pip", "list", "--format=json"))
    print(f"\npip list ({python}):\n" + "\n".join(f"  {r['name']} {r['version']}" for r in rows))
    return {install._canonical(r["name"]): r["version"] for r in rows}


def _install_after(tmp_path: Path, python: str, *first: str) -> tuple[Path, dict[str, str]]:
    """A clean venv, the user's packages ``first``, then install.py: (the venv's python, its pip list)."""
    venv = _venv(tmp_path / "venv", python)
    if first:
        _pip_install(venv, *first)
    print(_run(venv, "install.py"))
    return venv, _pip_list(venv)


def _runtimes(listed: dict[str, str]) -> list[str]:
    return sorted(n for n in listed if n.startswith("onnxruntime") or n.startswith("ort-nightly"))


@network
@pytest.mark.parametrize("python", PYTHONS)
def test_clean_venv_gets_the_cpu_runtime_and_dlib_bin(tmp_path, python):
    venv, listed = _install_after(tmp_path, python)
    assert _runtimes(listed) == ["onnxruntime"] and "dlib-bin" in listed and "dlib" not in listed
    providers = _run(venv, "-c", "import dlib, onnxruntime; print(onnxruntime.get_available_providers())")
    assert "CPUExecutionProvider" in providers


@network
@pytest.mark.parametrize("python", PYTHONS)
def test_onnxruntime_gpu_is_kept(tmp_path, python):
    venv, listed = _install_after(tmp_path, python, "onnxruntime-gpu")
    assert _runtimes(listed) == ["onnxruntime-gpu"]
    providers = _run(venv, "-c", "import onnxruntime; print(onnxruntime.get_available_providers())")
    assert "CUDAExecutionProvider" in providers   # the GPU build's module, not the CPU build's


@network
@pytest.mark.parametrize("python", PYTHONS)
def test_compiled_dlib_is_kept(tmp_path, python):
    venv, listed = _install_after(tmp_path, python, "dlib")
    assert "dlib" in listed and "dlib-bin" not in listed
    _run(venv, "-c", "import dlib; dlib.get_frontal_face_detector()")
