"""The wheel installs one namespace: harmscan.classifiers, .training, .serving, .eval — no generic top level.

It installs with an ONNX Runtime build chosen by extra: `harmscan[cpu]` (onnxruntime) or `harmscan[gpu]`
(onnxruntime-gpu), never both; the install tests need the package index and skip without it.
"""

import json
import os
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


# ------------------------------------------------------------------ extras: the CPU or the GPU ONNX Runtime
def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def test_base_install_has_no_onnxruntime_and_the_extras_pick_one_build(wheel: Path):
    reqs = _requires(wheel)
    base = [r for r in reqs if "extra ==" not in r]
    assert not [r for r in base if r.lower().startswith("onnxruntime")], base
    by_extra = {
        extra: [r.split(";")[0].strip() for r in reqs if f'extra == "{extra}"' in r] for extra in ("cpu", "gpu")
    }
    assert [r.split(">")[0].split("<")[0] for r in by_extra["cpu"]] == ["onnxruntime"], by_extra
    assert [r.split(">")[0].split("<")[0] for r in by_extra["gpu"]] == ["onnxruntime-gpu"], by_extra
    # compatible ranges, not exact pins, so harmscan installs into an existing environment
    pinned = [r for r in reqs if "==" in r.split(";")[0]]
    assert not pinned, pinned


def test_constraints_pin_what_the_makefile_installs():
    pins = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"onnxruntime", "transformers", "tokenizers", "pydantic", "datasets", "ray", "scipy"} <= set(pins)
    assert "onnxruntime-gpu" not in pins and "harmscan" not in pins
    assert "-c constraints.txt -e '.[cpu,train,serve,ray,dev]'" in (REPO / "Makefile").read_text()


def test_no_onnxruntime_is_one_line_naming_both_extras(tmp_path: Path):
    # Hide onnxruntime (as on a base install) and scan: one line, exit 2, no traceback.
    code = (
        "import sys; sys.modules['onnxruntime'] = None;"
        "import harmscan.cli as c; sys.exit(c.main(sys.argv[1:]))"
    )
    (tmp_path / "in.txt").write_text("hello\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "scan", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.jsonl"),
         "--bundle", str(tmp_path / "no_bundle")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "harmscan[cpu]" in proc.stderr and "harmscan[gpu]" in proc.stderr


def _index_reachable() -> bool:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "onnxruntime-gpu"],
            capture_output=True, text=True, timeout=60,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and "onnxruntime-gpu" in proc.stdout


@pytest.fixture(scope="module")
def package_index() -> None:
    if not _index_reachable():
        pytest.skip("the package index is unreachable: the install tests need it (pip index versions failed)")


@pytest.mark.parametrize(("extra", "wanted", "unwanted"), [
    ("gpu", "onnxruntime-gpu", "onnxruntime"), ("cpu", "onnxruntime", "onnxruntime-gpu"),
])
def test_resolver_picks_one_onnxruntime_build_per_extra(
    wheel: Path, tmp_path: Path, package_index: None, extra: str, wanted: str, unwanted: str
):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report",
         str(report), f"{wheel}[{extra}]"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"harmscan", wanted, "numpy", "tokenizers"} <= names, names
    assert unwanted not in names
    assert not {"torch", "transformers"} & names  # the inference path stays light


@pytest.mark.timeout(600)
def test_wheel_with_cpu_extra_installs_in_a_fresh_venv_and_scans(
    wheel: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
    package_index: None,
):
    from classifier_helpers import tiny_bundle

    bundle = tiny_bundle(tmp_path_factory, tiny_model_dir)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)  # no system site-packages
    bin_ = venv / "bin"
    proc = subprocess.run(
        [str(bin_ / "pip"), "install", "-q", f"{wheel}[cpu]"], capture_output=True, text=True, timeout=480,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    check = subprocess.run([str(bin_ / "pip"), "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = subprocess.run([str(bin_ / "python"), "-c", "import torch"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "the [cpu] install pulled in torch"

    texts = ["you are a waste of space", "how do I kill a python process"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    scan = subprocess.run(
        [str(bin_ / "harmscan"), "scan", str(tmp_path / "in.jsonl"), "-o", str(out), "--bundle", str(bundle)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert scan.returncode == 0, scan.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(texts)
    assert all(set(row["scores"]) == {"toxicity", "violence", "illegal_advice"} for row in rows), rows[0]
