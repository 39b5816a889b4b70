"""benchmarks/gpu_check.py, the script run on a lent GPU machine, kept working where there is no GPU:
`--device cpu` runs every step, and `--device cuda` without a CUDA provider fails loudly (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from classifier_helpers import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def fp16_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    out = tmp_path_factory.mktemp("gpu") / "bundle"
    export_bundle(tiny_model_dir, out, variants=("fp32",), fp16=True, progress=False)
    return out


def _run(bundle: Path, tmp_path: Path, device: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("\n".join(f"tweet {i}: you are awful and I hate mondays" for i in range(20)) + "\n")
    long = tmp_path / "long.txt"
    long.write_text(" ".join(f"sentence {i} about the weather." for i in range(400)) + "\n")
    out = tmp_path / f"{device}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--bundle", str(bundle), "--texts", str(tweets), "--long", str(long),
         "--device", device, "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    return proc, json.loads(out.read_text()) if out.is_file() else {}


def test_every_step_runs_on_the_cpu(fp16_bundle: Path, tmp_path: Path) -> None:
    proc, report = _run(fp16_bundle, tmp_path, "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["failures"] == [] and report["texts"] == {"all": 230 + 20, "tweets": 20, "long": 1}
    for variant in ("fp16", "fp32"):
        entry = report[variant]
        assert entry["providers"][0] == "CPUExecutionProvider" and entry["cuda_in_use"] is False
        assert entry["parity_vs_cpu_fp32"]["passed"]
        assert entry["batch1_latency_ms"]["steady"]["median"] > 0
        assert entry["default_batch_size"] == 32  # the CPU default
        assert entry["where_the_time_goes_batch32"]["model_only_texts_per_s"] > 0
        assert entry["long_texts"]["windows"] > 5  # the long text is read in full, not truncated
    assert report["fp32"]["parity_vs_cpu_fp32"]["max_abs_diff"] == 0.0


def test_cuda_without_a_cuda_provider_fails_loudly(fp16_bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    proc, report = _run(fp16_bundle, tmp_path, "cuda")
    assert proc.returncode == 1
    assert "FAILED: fp16: device='cuda' but this onnxruntime has no CUDA provider" in proc.stderr
    assert report["fp16"]["error"] and report["fp32"]["error"]
