"""User mistakes on the command line give one line naming the file and the fix, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harmscan.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harmscan: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("quickstart", "data", "train"):
        assert cmd in out.stdout


def test_missing_data_dir(tmp_path: Path):
    missing = tmp_path / "nowhere"
    assert_one_line_error(run_cli("data", "stats", "--data-dir", str(missing)), str(missing), "harmscan data fetch")


def test_unknown_source_in_recipe(tmp_path: Path, data_dir: Path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: mine\nsources:\n  catqa: {}\n  no_such_source: {}\n")
    proc = run_cli("data", "build", "--recipe", str(recipe), "--data-dir", str(data_dir), "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, "no_such_source", str(recipe))


def test_unknown_recipe_name():
    assert_one_line_error(run_cli("data", "build", "--recipe", "nope"), "nope", "default")


def test_non_commercial_source_in_commercial_recipe(tmp_path: Path, data_dir: Path):
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text("name: mixed\ncommercial: true\nsources:\n  alpaca_instructions: {}\n")
    proc = run_cli("data", "build", "--recipe", str(recipe), "--data-dir", str(data_dir), "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, "alpaca_instructions", "commercial")


@pytest.fixture()
def copied_source(data_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(data_dir / "jigsaw_toxic_sample_ibm", dst / "jigsaw_toxic_sample_ibm")
    return dst


def test_truncated_source_file(copied_source: Path):
    target = copied_source / "jigsaw_toxic_sample_ibm" / "test_examples.csv"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    proc = run_cli("data", "stats", "jigsaw_toxic_sample_ibm", "--data-dir", str(copied_source))
    assert_one_line_error(proc, "test_examples.csv", "fetch")


def test_sha256_mismatch_same_size(copied_source: Path):
    target = copied_source / "jigsaw_toxic_sample_ibm" / "test_examples.csv"
    data = bytearray(target.read_bytes())
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")
    target.write_bytes(bytes(data))
    proc = run_cli("data", "stats", "jigsaw_toxic_sample_ibm", "--data-dir", str(copied_source))
    assert_one_line_error(proc, "test_examples.csv", "sha256")
