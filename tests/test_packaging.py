"""The wheel installs one namespace: harmscan.classifiers, .training, .serving, .eval — no generic top level."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_namespace_imports_from_the_editable_install():
    code = "import harmscan.classifiers, harmscan.training, harmscan.serving, harmscan.eval; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    for generic in ("training", "eval", "serving", "classifiers"):
        probe = subprocess.run([sys.executable, "-c", f"import {generic}"], capture_output=True, cwd="/")
        assert probe.returncode != 0, f"a top-level '{generic}' package is importable"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: a stale build/ folder in the checkout must not leak into the wheel.
    src = tmp_path_factory.mktemp("src") / "harmscan"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "artifacts", "*.egg-info", "__pycache__", ".*_cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("harmscan-*.whl")
    return whl


def test_wheel_holds_only_the_harmscan_namespace(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("harmscan-") or "dist-info" not in n}
    top = {t for t in top if not t.endswith(".dist-info")}
    assert top == {"harmscan"}, top
    for sub in ("classifiers", "training", "serving", "eval"):
        assert f"harmscan/{sub}/__init__.py" in names
    assert "harmscan/labels.yaml" in names
    assert "harmscan/eval/suite/slots.yaml" in names
    assert any(n.startswith("harmscan/eval/metrics/") and n.endswith(".py") for n in names)
    assert any(n.startswith("harmscan/training/recipes/") and n.endswith("default.yaml") for n in names)


def test_wheel_imports_in_a_clean_target(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import harmscan.classifiers, harmscan.training, harmscan.serving, harmscan.eval, harmscan.labels;"
        "assert harmscan.__file__.startswith(sys.argv[1]), harmscan.__file__;"
        "print(harmscan.labels.default_taxonomy().names)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "illegal_advice" in out.stdout
