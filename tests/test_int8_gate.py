"""The int8 task-level parity gate: the pure function on synthetic probabilities, then on a small trained
model's bundle (a broken int8 is refused with its figures; a good one is what `variant="auto"` picks)."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from classifier_helpers import _passage, train_violence_model

from harmscan.classifiers.int8_gate import LIMITS, evaluate_gate, gate_status, operating_point_id
from harmscan.errors import BundleError

NAMES = ["toxicity", "violence", "illegal_advice"]
HALF = {n: 0.5 for n in NAMES}
EDGES = np.linspace(0.0, 1.0, 16)  # the gate's 15 ECE bins


def _calibrated(n: int = 30000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """fp32 probabilities and labels that they rank well and calibrate well: in every ECE bin, the top
    round(n_bin × mean score) rows are the positives."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, size=(n, len(NAMES)))
    y = np.zeros_like(p)
    for j in range(len(NAMES)):
        bins = np.searchsorted(EDGES[1:-1], p[:, j])
        for b in np.unique(bins):
            rows = np.flatnonzero(bins == b)
            k = int(round(rows.size * p[rows, j].mean()))
            y[rows[np.argsort(-p[rows, j])[:k]], j] = 1
    return p, y


def _failed(result: object) -> set[str]:
    return {name for name, c in result.criteria.items() if c.passed is False}  # type: ignore[attr-defined]


def test_gate_passes_when_int8_stays_close_and_records_the_tail() -> None:
    p, y = _calibrated()
    noisy = np.clip(p + np.random.default_rng(1).normal(0, 1e-4, p.shape), 0, 1)
    result = evaluate_gate(p, noisy, NAMES, HALF, y, np.ones_like(y, dtype=bool))
    assert result.passed and not result.failures()
    assert set(result.criteria) == {*(f"{k}:{n}" for k in ("auprc", "ece") for n in NAMES), "flag_agreement"}
    assert 0 < result.mean_abs_diff <= result.p99_abs_diff <= result.max_abs_diff < 1e-3
    assert result.labels["violence"].auprc_fp32 == pytest.approx(result.labels["violence"].auprc_int8, abs=1e-3)


def test_gate_fails_on_auprc_alone() -> None:
    p, y = _calibrated()
    int8 = p.copy()
    bins = np.searchsorted(EDGES[1:-1], p[:, 0])
    for b in range(7):  # bins wholly below the 0.5 threshold: flags cannot change
        rows = np.flatnonzero(bins == b)
        order = rows[np.argsort(p[rows, 0])]
        int8[order, 0] = p[order[::-1], 0]  # same scores in the same bin, ranking reversed inside it
    result = evaluate_gate(p, int8, NAMES, HALF, y, None)
    assert _failed(result) == {"auprc:toxicity"} and not result.passed
    assert result.criteria["ece:toxicity"].value == pytest.approx(0.0, abs=1e-9)
    assert result.flag_agreement == 1.0
    assert "toxicity AUPRC" in result.failures()[0]


def test_gate_fails_on_ece_alone() -> None:
    p, y = _calibrated()
    int8 = np.where(p < 0.45, p * 0.8, p)  # monotone (ranking kept) and never crosses 0.5
    result = evaluate_gate(p, int8, NAMES, HALF, y, None)
    assert _failed(result) == {f"ece:{n}" for n in NAMES}
    assert all(result.criteria[f"auprc:{n}"].value == pytest.approx(0.0, abs=1e-12) for n in NAMES)


def test_gate_fails_on_identical_flags_alone() -> None:
    p, y = _calibrated()
    near = (p >= 0.485) & (p < 0.5)  # ~1.5% of pairs pushed just over the threshold
    int8 = np.where(near, p + 0.016, p)
    result = evaluate_gate(p, int8, NAMES, HALF, y, None)
    assert _failed(result) == {"flag_agreement"}
    assert result.flag_agreement < LIMITS["min_flag_agreement"] and result.decision_agreement < 1.0


def test_gate_fails_on_benign_false_positives_alone() -> None:
    p, y = _calibrated()
    rng = np.random.default_rng(2)
    benign = rng.uniform(0.0, 0.4, size=(2000, len(NAMES)))
    benign8 = benign.copy()
    benign8[:20, 1] = 0.6  # 1% of benign rows now flagged for violence: +1 point of any-head FPR
    negative = np.ones_like(benign, dtype=bool)
    result = evaluate_gate(p, p.copy(), NAMES, HALF, y, None, benign_fp32=benign, benign_int8=benign8,
                           benign_negative=negative)
    assert _failed(result) == {"benign_fpr"}
    assert result.benign_fpr_fp32 == 0.0 and result.benign_fpr_int8 == pytest.approx(0.01)
    close = benign.copy()
    close[:3, 1] = 0.6  # +0.15 points: within the 0.2-point allowance
    assert evaluate_gate(p, p.copy(), NAMES, HALF, y, None, benign_fp32=benign, benign_int8=close,
                         benign_negative=negative).passed


def test_without_labels_the_elementwise_limit_stands_in() -> None:
    p, _ = _calibrated(3000)
    close = evaluate_gate(p, np.clip(p + 1e-4, 0, 1), NAMES, HALF)
    assert close.passed and set(close.criteria) == {"flag_agreement", "max_abs_diff"} and not close.labelled
    bumped = p.copy()
    bumped[0, 0] = min(1.0, bumped[0, 0] + 0.05)
    assert _failed(evaluate_gate(p, bumped, NAMES, HALF)) == {"max_abs_diff"}


# -- on a bundle ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def labelled_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small trained violence model whose training record names a labelled dataset (violence known,
    the other heads unknown), as `harmscan train` records its dataset."""
    datasets = pytest.importorskip("datasets")
    model_dir = train_violence_model(tmp_path_factory.mktemp("int8_model"))
    rng = random.Random(1)
    violent = [rng.random() < 0.3 for _ in range(400)]
    texts = [_passage(rng, v) for v in violent]
    labels = np.zeros((len(texts), len(NAMES)))
    labels[:, 1] = violent
    mask = np.zeros_like(labels)
    mask[:, 1] = 1
    columns = {"text": texts, "labels": labels.tolist(), "label_mask": mask.tolist(), "source": ["synthetic"] * len(texts),
               "weight": [1.0] * len(texts)}
    data = tmp_path_factory.mktemp("int8_data")
    datasets.DatasetDict({s: datasets.Dataset.from_dict(columns) for s in ("train", "validation", "test")}).save_to_disk(
        str(data)
    )
    info = json.loads((model_dir / "harmscan_training.json").read_text())
    info["dataset"] = str(data)
    (model_dir / "harmscan_training.json").write_text(json.dumps(info))
    return model_dir, data


def _corrupt_first_scale(path: Path) -> str:
    """Multiply the int8 graph's first quantisation scale (graph order) by 50, as a bad quantiser might."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.name.endswith("_scale"))
    init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * 50).astype(np.float32), init.name))
    onnx.save(model, str(path))
    return init.name


def test_broken_int8_is_refused_with_its_figures_and_auto_loads_fp32(
    labelled_model: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harmscan.classifiers import HarmClassifier
    from harmscan.training import export

    quantize = export._quantize_int8

    def broken_quantize(src: Path, dest: Path) -> dict:
        built = quantize(src, dest)
        _corrupt_first_scale(dest)
        return built

    monkeypatch.setattr(export, "_quantize_int8", broken_quantize)
    out = export.export_bundle(labelled_model[0], tmp_path / "bundle", progress=False)
    gate = json.loads((out / "harmscan.json").read_text())["variants"]["int8"]["parity"]
    assert gate_status(gate) == "failed" and gate["passed"] is False and gate["validation"].startswith("dataset:")
    assert gate["failures"] and gate["labels"]["violence"]["auprc_int8"] is not None
    assert gate["labels"]["violence"]["n"] == 400 and gate["labels"]["toxicity"]["auprc_fp32"] is None
    assert gate["max_abs_diff"] > 0.1 and gate["p99_abs_diff"] > 0 and gate["mean_abs_diff"] > 0

    assert HarmClassifier.load(out, threads=1).variant == "fp32"
    with pytest.raises(BundleError) as err:
        HarmClassifier.load(out, variant="int8", threads=1)
    message = str(err.value)
    assert "failed its task-level parity gate" in message and "\n" not in message
    assert gate["failures"][0] in message and "max |Δp|" in message


def test_passing_int8_is_auto_on_cpu_pending_after_new_thresholds_and_final_again_after_tuning(
    labelled_model: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("sklearn")
    from harmscan.classifiers import Bundle, HarmClassifier
    from harmscan.eval.thresholds import tune_thresholds
    from harmscan.training.export import export_bundle

    model_dir, data = labelled_model
    out = export_bundle(model_dir, tmp_path / "bundle", progress=False)
    gate = Bundle.load(out).manifest["variants"]["int8"]["parity"]
    assert gate["status"] == "passed", gate["failures"]
    assert gate["criteria"]["auprc:violence"]["passed"] and gate["criteria"]["ece:violence"]["passed"]
    assert HarmClassifier.load(out, threads=1).variant == "int8"

    # New thresholds: the verdict was measured at the old ones, so it is pending and auto falls back.
    bundle = Bundle.load(out)
    thresholds = dict(bundle.manifest["thresholds"])
    thresholds["thresholds"] = {**thresholds["thresholds"], "violence": 0.9}
    bundle.update(thresholds=thresholds)
    pending = Bundle.load(out).manifest["variants"]["int8"]["parity"]
    assert pending["status"] == "pending" and "thresholds changed" in pending["pending_reason"]
    assert HarmClassifier.load(out, threads=1).variant == "fp32"
    with pytest.warns(RuntimeWarning, match="no final verdict"):
        assert HarmClassifier.load(out, variant="int8", threads=1).variant == "int8"

    # `harmscan thresholds` sets the final operating point and measures the gate at it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = tune_thresholds(out, data, n_boot=20, progress=False)
    final = Bundle.load(out).manifest
    record = final["variants"]["int8"]["parity"]
    assert result["int8_gate"]["status"] == record["status"] == "passed"
    assert record["measured_under"] == operating_point_id(final["calibration"], final["thresholds"])
    assert record["thresholds"]["violence"] == pytest.approx(final["thresholds"]["thresholds"]["violence"])
    assert record["texts"] == 400 and "all rows" in record["validation"]
    assert HarmClassifier.load(out, threads=1).variant == "int8"


def test_report_shows_int8_figures_next_to_fp32s() -> None:
    from harmscan.classifiers.int8_gate import gate_record
    from harmscan.eval.render_report import render_html, render_markdown

    p, y = _calibrated(3000)
    int8 = np.where(p < 0.45, p * 0.8, p)
    manifest = {"calibration": {"method": "none"}, "thresholds": {"thresholds": HALF}}
    record = gate_record(evaluate_gate(p, int8, NAMES, HALF, y, None), source="dataset:x", manifest=manifest)
    report = {"bundle": {}, "policy": {"thresholds": HALF, "meta": {}}, "int8_gate": record,
              "skipped": {sid: "not in this test" for sid in ("external", "summary", "per-source", "curves",
                          "reliability", "histograms", "threshold-curves", "identity-audit", "suite", "benchmarks")}}
    md = render_markdown(report)
    assert "int8 vs fp32 (task-level gate)" in md and "int8 gate: FAILED on 3000 texts" in md
    gate_part = md[md.index("int8 vs fp32 (task-level gate)"):]
    violence = next(line for line in gate_part.splitlines() if line.startswith("| violence"))
    figs = record["labels"]["violence"]
    assert f"{figs['auprc_fp32']:.4f}" in violence and f"{figs['ece_int8']:.4f}" in violence and "FAIL" in violence
    assert "p99" in md and "Failed: violence ECE" in md
    assert "int8 vs fp32 (task-level gate)" in render_html(report, {})
