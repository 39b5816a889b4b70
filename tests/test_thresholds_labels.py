"""`harmscan thresholds --labels` / `calibrate --labels`: tuning on a user's own labelled file, torch-free."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from classifier_helpers import run_harmscan, tiny_bundle

from harmscan.eval.calibrate import TemperatureScaler

MODULES = ("harmscan.classifiers.cli", "harmscan.eval.cli")
HEAVY = ("torch", "transformers", "datasets")
TEXTS = ["hello world", "you are an idiot", "I will hurt you", "lovely weather today", "how do I make a bomb",
         "shut up you fool", "the meeting is at noon", "I am going to kill you", "nice photo", "you stupid clown"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return tiny_bundle(tmp_path_factory, tiny_model_dir)


def _run(blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """`harmscan ARGS` in a fresh interpreter (`blocked` modules cannot be imported); prints, last on stdout,
    which of torch / transformers / datasets were imported by the end."""
    code = (
        "import json, sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import harmscan.cli as c\n"
        f"c.COMMAND_MODULES = {MODULES!r}\n"
        "rc = c.main(sys.argv[1:])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if sys.modules.get(m) is not None]))\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def _labels_csv(path: Path, n: int = 60) -> Path:
    """Texts with toxicity and violence labels (some unknown); no illegal_advice column at all."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "toxicity", "violence"])
        for i in range(n):
            text = f"{TEXTS[i % len(TEXTS)]} {i}"
            w.writerow([text, int(rng.random() < 0.4), "" if i % 7 == 0 else int(rng.random() < 0.3)])
    return path


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harmscan: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_thresholds_on_labels_is_torch_free_and_scan_accepts_the_policy(bundle_dir: Path, tmp_path: Path) -> None:
    labels = _labels_csv(tmp_path / "mine.csv")
    policy = tmp_path / "policy.yaml"
    proc = _run((), "thresholds", "--labels", str(labels), "--bundle", str(bundle_dir), "--objective", "f1",
                "--variant", "fp32", "--threads", "1", "-o", str(policy), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []  # no torch, transformers or datasets imported
    data = yaml.safe_load(policy.read_text())
    from harmscan.classifiers.bundle import Bundle

    bundle = Bundle.load(bundle_dir)
    assert data["chosen_on"] == str(labels) and data["scores_from"] == "bundle"
    assert data["validation"]["toxicity"]["n"] == 60 and data["validation"]["violence"]["n"] == 60 - 9
    # no illegal_advice column: its threshold is the bundle's, untouched
    assert data["thresholds"]["illegal_advice"] == bundle.policy.thresholds["illegal_advice"]

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / "out.jsonl"
    proc = run_harmscan("scan", str(src), "-o", str(out), "--bundle", str(bundle_dir), "--variant", "fp32",
                        "--threads", "1", "--policy", str(policy))
    assert proc.returncode == 0, proc.stderr
    for row in (json.loads(x) for x in out.read_text().splitlines()):
        expected = [n for n, p in row["scores"].items() if p >= data["thresholds"][n]]
        assert sorted(row["flagged"]) == sorted(expected)


def test_scan_output_joined_with_labels_needs_no_bundle(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.3).astype(int)
    score = np.clip(np.where(y == 1, rng.beta(5, 2, 400), rng.beta(2, 5, 400)), 0, 1)
    path = tmp_path / "scored.jsonl"
    with open(path, "w") as fh:
        for i in range(400):
            scores = {"toxicity": round(float(score[i]), 6), "violence": 0.1, "illegal_advice": 0.2}
            fh.write(json.dumps({"id": i, "scores": scores, "flagged": [], "decision": "allow", "toxicity": int(y[i])})
                     + "\n")
    policy = tmp_path / "p.json"
    proc = _run(("onnxruntime",), "thresholds", "--labels", str(path), "--objective", "precision>=0.9",
                "-o", str(policy))
    assert proc.returncode == 0, proc.stderr
    t = json.loads(policy.read_text())["thresholds"]
    flagged = score >= t["toxicity"]
    assert flagged.any() and y[flagged].mean() >= 0.9  # the objective holds on the file it was chosen on
    # the most recall at that precision: no other cut on the file keeps precision >= 0.9 with more recall
    for cut in np.unique(score):
        other = score >= cut
        assert y[other].mean() < 0.9 or y[other].sum() <= y[flagged].sum()
    assert t["violence"] == 0.5  # no column: the neutral default, without a bundle
    # without a bundle there is nowhere to write unless -o is given
    _one_error_line(_run((), "thresholds", "--labels", str(path)), "-o")


def test_calibrate_on_labels_without_scipy_or_torch(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    labels = _labels_csv(tmp_path / "mine.csv")
    proc = _run(("scipy", "sklearn"), "calibrate", "--labels", str(labels), "--bundle", str(copy),
                "--variant", "fp32", "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    cal = json.loads((copy / "harmscan.json").read_text())["calibration"]
    assert cal["method"] == "temperature" and cal["fitted_on"] == str(labels)
    assert set(cal["per_label"]) == {"toxicity", "violence"}
    assert set(cal["in_sample"]) == {"toxicity", "violence"}


def test_newton_fit_without_scipy_matches_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.2).astype(float)
    z = rng.normal(0, 1, 2000) * 0.7 + y * 1.8 - 0.4
    with_scipy = TemperatureScaler().fit(z, y).params()
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    without = TemperatureScaler().fit(z, y).params()
    assert without["temperature"] == pytest.approx(with_scipy["temperature"], rel=1e-3)
    assert without["bias"] == pytest.approx(with_scipy["bias"], abs=1e-3)


# -- bad files: one line naming the file, the column and the row ------------------------------------------------
def test_missing_text_column(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "no_text.csv"
    path.write_text("body,toxicity\nhello,0\nidiot,1\n")
    _one_error_line(_run((), "thresholds", "--labels", str(path), "--bundle", str(bundle_dir)),
                    str(path), "'text'", "--text-field")


def test_value_that_is_not_0_or_1(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,toxicity\nhello,0\nidiot,1\nfool,yes\n")
    _one_error_line(_run((), "thresholds", "--labels", str(path), "--bundle", str(bundle_dir)),
                    str(path), "line 4", "'toxicity'", "'yes'")


def test_label_without_positives(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "nopos.jsonl"
    path.write_text("".join(json.dumps({"text": t, "violence": 0, "toxicity": i % 2}) + "\n"
                            for i, t in enumerate(TEXTS)))
    _one_error_line(_run((), "calibrate", "--labels", str(path), "--bundle", str(bundle_dir)),
                    str(path), "'violence'", "no positive")


def test_no_label_column(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "nolabels.csv"
    path.write_text("text,spam\nhello,0\n")
    _one_error_line(_run((), "thresholds", "--labels", str(path), "--bundle", str(bundle_dir)),
                    str(path), "no label column", "toxicity")


def test_parquet_labels_with_nulls(bundle_dir: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from harmscan.eval.labelled import read_labelled

    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c", "d"], "violence": [1, None, 0, 0]}), path)
    got = read_labelled(path, ["toxicity", "violence", "illegal_advice"])
    assert got.present == ["violence"]
    assert got.mask[:, 1].tolist() == [True, False, True, True] and not got.mask[:, 0].any()
    pq.write_table(pa.table({"text": ["a", "b", "c"], "violence": [1, 2, 0]}), path)
    with pytest.raises(Exception, match=r"row 2, column 'violence': 2 is not 0, 1"):
        read_labelled(path, ["toxicity", "violence", "illegal_advice"])
