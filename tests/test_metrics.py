"""The packaged `evaluate` metric modules load offline and agree with scikit-learn; unknown labels are excluded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harmscan.eval import binary_metrics as bm
from harmscan.eval.metric_modules import METRIC_NAMES, load_metric, masked_references

sk_metrics = pytest.importorskip("sklearn.metrics")
sk_calibration = pytest.importorskip("sklearn.calibration")
# `evaluate` is imported inside the tests, after conftest points HF_HOME at a temporary folder: its cache
# paths are fixed at import time.

N, L = 400, 3


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=(N, L))
    # informative, tied scores (rounded) so tie handling is exercised
    probs = np.clip(np.round(0.35 * labels + 0.65 * rng.random((N, L)), 2), 0, 1)
    mask = rng.random((N, L)) > 0.25  # ~25% unknown per label
    return {"probs": probs, "labels": labels, "mask": mask, "refs": masked_references(labels, mask)}


def sk_ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """ECE from sklearn's calibration_curve plus the bin counts (sklearn has no ECE function)."""
    prob_true, prob_pred = sk_calibration.calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(y) * np.abs(prob_true - prob_pred)))


def sklearn_per_label(d: dict[str, np.ndarray], threshold: float = 0.5) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("roc_auc", "auprc", "precision", "recall", "f1", "fpr", "ece",
                                                     "brier")}
    for j in range(L):
        keep = d["mask"][:, j]
        y, p = d["labels"][keep, j], d["probs"][keep, j]
        pred = p >= threshold
        tn, fp, fn, tp = sk_metrics.confusion_matrix(y, pred).ravel()
        out["roc_auc"].append(sk_metrics.roc_auc_score(y, p))
        out["auprc"].append(sk_metrics.average_precision_score(y, p))
        out["precision"].append(sk_metrics.precision_score(y, pred))
        out["recall"].append(sk_metrics.recall_score(y, pred))
        out["f1"].append(sk_metrics.f1_score(y, pred))
        out["fpr"].append(fp / (fp + tn))
        out["ece"].append(sk_ece(y, p))
        out["brier"].append(sk_metrics.brier_score_loss(y, p))
    return out


def test_modules_load_offline_by_path_and_agree_with_sklearn(data, tmp_path, monkeypatch):
    pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # a bare-name lookup in the working directory must not be what finds them
    expected = sklearn_per_label(data, threshold=0.5)
    got: dict[str, list[float]] = {}
    for name in METRIC_NAMES:
        metric = load_metric(name)
        kwargs = {"threshold": 0.5} if name == "threshold_metrics" else {}
        got.update(metric.compute(predictions=data["probs"], references=data["refs"], **kwargs))
    for key, values in expected.items():
        np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-12, err_msg=key)
    # evaluate copies the modules under $HF_HOME (the tests' temporary one), not into the home folder
    copies = list(Path(os.environ["HF_HOME"]).rglob("threshold_metrics.py"))
    assert copies, "evaluate did not copy the module under HF_HOME"


def test_unknown_labels_change_the_result_when_not_masked(data):
    """Guard against a module that ignores the -1s: treating unknown as negative gives other numbers."""
    metric = load_metric("roc_auc")
    masked = metric.compute(predictions=data["probs"], references=data["refs"])["roc_auc"]
    as_negative = metric.compute(predictions=data["probs"], references=data["labels"] * data["mask"])["roc_auc"]
    assert all(abs(a - b) > 1e-6 for a, b in zip(masked, as_negative, strict=True))


def test_batches_combine_binary_config_and_per_label_thresholds(data):
    import evaluate

    combined = evaluate.combine([load_metric("auprc"), load_metric("brier")])
    for start in range(0, N, 150):
        combined.add_batch(predictions=data["probs"][start:start + 150], references=data["refs"][start:start + 150])
    result = combined.compute()
    expected = sklearn_per_label(data)
    np.testing.assert_allclose(result["auprc"], expected["auprc"], atol=1e-12)
    np.testing.assert_allclose(result["brier"], expected["brier"], atol=1e-12)

    binary = load_metric("threshold_metrics", "binary")
    keep = data["mask"][:, 1]
    y, p = data["labels"][keep, 1], data["probs"][keep, 1]
    out = binary.compute(predictions=data["probs"][:, 1], references=data["refs"][:, 1], threshold=0.7)
    assert out["recall"] == pytest.approx(sk_metrics.recall_score(y, p >= 0.7), abs=1e-12)

    per_label = load_metric("threshold_metrics").compute(
        predictions=data["probs"], references=data["refs"], threshold=[0.3, 0.5, 0.9]
    )
    for j, t in enumerate([0.3, 0.5, 0.9]):
        keep = data["mask"][:, j]
        pred = data["probs"][keep, j] >= t
        assert per_label["precision"][j] == pytest.approx(sk_metrics.precision_score(data["labels"][keep, j], pred))


def test_undefined_figures_are_nan_not_a_number_that_looks_real():
    y = np.zeros(20)
    p = np.linspace(0, 1, 20)
    assert np.isnan(bm.roc_auc(y, p)) and np.isnan(bm.average_precision(y, p))
    at = bm.threshold_metrics(np.array([1, 0]), np.array([0.1, 0.2]), 0.9)
    assert np.isnan(at["precision"]) and at["recall"] == 0.0 and at["fpr"] == 0.0


def test_weighted_and_bootstrap_figures_match_sklearn_sample_weight():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(0.3 * y + 0.7 * rng.random(300), 2)
    w = bm.bootstrap_weights(300, 40, rng)
    auc, ap, brier = bm.roc_auc(y, p, w), bm.average_precision(y, p, w), bm.brier(y, p, w)
    assert auc.shape == (40,)
    for b in range(0, 40, 7):
        assert auc[b] == pytest.approx(sk_metrics.roc_auc_score(y, p, sample_weight=w[b]), abs=1e-12)
        assert ap[b] == pytest.approx(sk_metrics.average_precision_score(y, p, sample_weight=w[b]), abs=1e-12)
        assert brier[b] == pytest.approx(sk_metrics.brier_score_loss(y, p, sample_weight=w[b]), abs=1e-12)
    assert np.allclose(w.sum(axis=1), 300)  # each replicate resamples n rows


def test_ece_of_calibrated_scores_is_small_and_of_shifted_scores_is_the_shift():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(float)
    assert bm.ece(y, p) < 0.01
    # scores 0.1 too high everywhere (away from the clipped ends): ECE is about 0.1
    mid = (p > 0.1) & (p < 0.85)
    assert bm.ece(y[mid], p[mid] + 0.1) == pytest.approx(0.1, abs=0.01)


def test_bootstrap_interval_covers_the_population_auc():
    """Population ROC-AUC of N(1,1) vs N(0,1) scores is Phi(1/sqrt 2) = 0.7602; the 95% interval covers it."""
    from harmscan.eval.tables import figures

    hits = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, 400)
        s = rng.normal(y.astype(float), 1.0)
        lo, hi = figures(y, s, 0.5, n_boot=300, rng=rng, metrics=("roc_auc",))["roc_auc"]["ci95"]
        hits += lo <= 0.7602 <= hi
    assert hits >= 17
