"""Calibration fitted on validation fixes miscalibrated scores on held-out data, and never reorders texts."""

from __future__ import annotations

import numpy as np
import pytest

from harmscan.classifiers.bundle import Bundle
from harmscan.classifiers.calibration import apply_calibration, sigmoid, validate
from harmscan.errors import InputError
from harmscan.eval import binary_metrics as bm
from harmscan.eval.calibrate import MIN_PER_CLASS, calibration_figures, calibration_id, fit_calibration

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

NAMES = ["toxicity", "violence", "illegal_advice"]
# The truth behind the synthetic logits, per label: P(y=1 | z) = sigmoid(z / T + b).
# Over-confident and shifted (a rare head trained on a richer mix), under-confident, and already fine.
TRUE = {"toxicity": (2.5, -1.0), "violence": (0.6, -2.0), "illegal_advice": (1.0, 0.0)}


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 3.0, size=(n, len(NAMES)))
    p_true = np.stack([sigmoid(logits[:, j] / TRUE[n_][0] + TRUE[n_][1]) for j, n_ in enumerate(NAMES)], axis=1)
    labels = (rng.random((n, len(NAMES))) < p_true).astype(np.int8)
    mask = rng.random((n, len(NAMES))) > 0.2
    return logits, labels, mask


@pytest.fixture(scope="module")
def splits():
    return {"validation": synthetic(4000, 1), "test": synthetic(4000, 2)}


def test_temperature_scaling_recovers_the_true_map(splits):
    params = fit_calibration(*splits["validation"], NAMES, "temperature")
    validate(params, NAMES)  # the bundle accepts it
    for name, (t, b) in TRUE.items():
        fitted = params["per_label"][name]
        assert fitted["temperature"] == pytest.approx(t, rel=0.15), name
        assert fitted["bias"] == pytest.approx(b, abs=0.2), name


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_fit_on_validation_lowers_test_ece_for_miscalibrated_labels(splits, method):
    params = fit_calibration(*splits["validation"], NAMES, method)
    figures = calibration_figures(*splits["test"], NAMES, params)
    for name in ("toxicity", "violence"):  # the two miscalibrated heads
        f = figures[name]
        assert f["ece_before"] > 0.05, f  # the synthetic scores really are miscalibrated
        assert f["ece_after"] < f["ece_before"] / 3, (name, f)
        assert f["ece_after"] <= 0.03, (name, f)
        assert f["brier_after"] < f["brier_before"]
    assert figures["illegal_advice"]["ece_after"] <= 0.03  # a calibrated head stays calibrated


def test_temperature_scaling_never_reorders_texts(splits):
    logits, labels, mask = splits["test"]
    params = fit_calibration(*splits["validation"], NAMES, "temperature")
    probs = apply_calibration(logits, params, NAMES)
    for j in range(len(NAMES)):
        keep = mask[:, j]
        assert bm.roc_auc(labels[keep, j], probs[keep, j]) == pytest.approx(
            bm.roc_auc(labels[keep, j], logits[keep, j]), abs=1e-6
        )


def test_isotonic_knots_are_monotone_and_applied_by_interpolation(splits):
    params = fit_calibration(*splits["validation"], NAMES, "isotonic")
    for name in NAMES:
        x, y = np.asarray(params["per_label"][name]["x"]), np.asarray(params["per_label"][name]["y"])
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
        assert 0.0 <= y.min() and y.max() <= 1.0
    z = np.array([[-50.0, 0.0, 50.0]]).T.repeat(3, axis=1)
    out = apply_calibration(z, params, NAMES)
    assert np.all(np.diff(out, axis=0) >= 0)  # clipped at the ends, increasing in between


def test_tiny_logit_spread_is_still_fitted():
    """A barely trained head emits logits within 1e-4 of each other; the fit must still find the map."""
    rng = np.random.default_rng(5)
    z = rng.normal(0.01, 1e-4, size=(3000, 1))
    y = (rng.random((3000, 1)) < sigmoid((z - 0.01) / 1e-4 - 2.0)).astype(np.int8)
    params = fit_calibration(z, y, np.ones_like(y, dtype=bool), ["toxicity"], "temperature")
    fig = calibration_figures(z, y, np.ones_like(y, dtype=bool), ["toxicity"], params)["toxicity"]
    assert fig["ece_before"] > 0.1 and fig["ece_after"] < 0.03
    assert fig["log_loss_after"] < 0.8 * fig["log_loss_before"]


def test_labels_with_too_few_known_positives_stay_uncalibrated(splits):
    logits, labels, mask = (a.copy() for a in splits["validation"])
    labels[:, 1] = 0
    labels[: MIN_PER_CLASS - 1, 1] = 1
    mask[: MIN_PER_CLASS - 1, 1] = True
    params = fit_calibration(logits, labels, mask, NAMES, "temperature")
    assert "violence" not in params["per_label"] and "violence" in params["skipped"]
    probs = apply_calibration(logits, params, NAMES)
    np.testing.assert_allclose(probs[:, 1], sigmoid(logits[:, 1]), rtol=1e-6)  # plain sigmoid for it


def test_unknown_method_is_a_user_error(splits):
    with pytest.raises(InputError, match="unknown calibration method 'platt'"):
        fit_calibration(*splits["validation"], NAMES, "platt")


def test_calibration_id_ignores_report_figures_but_not_parameters(splits):
    params = fit_calibration(*splits["validation"], NAMES, "temperature")
    with_figures = {**params, "test": {"toxicity": {"ece_after": 0.01}}, "fitted_on": "validation"}
    assert calibration_id(params) == calibration_id(with_figures)
    changed = {**params, "per_label": {**params["per_label"], "toxicity": {"temperature": 9.0, "bias": 0.0}}}
    assert calibration_id(params) != calibration_id(changed)


def test_bundle_accepts_the_manifest_entry(tmp_path, splits):
    """What calibrate_bundle writes passes Bundle's own consistency check (extra report keys included)."""
    from harmscan.classifiers.bundle import new_manifest, write_manifest
    from harmscan.labels import default_taxonomy

    manifest = new_manifest(default_taxonomy(), max_length=32, base_model="x", training={}, window_stride=8)
    write_manifest(tmp_path, manifest)
    bundle = Bundle.load(tmp_path, verify=False)
    params = fit_calibration(*splits["validation"], NAMES, "temperature")
    params["test"] = calibration_figures(*splits["test"], NAMES, params)
    bundle.update(calibration=params)
    reloaded = Bundle.load(tmp_path, verify=False)
    probs = apply_calibration(splits["test"][0], reloaded.calibration, reloaded.label_names)
    np.testing.assert_allclose(probs, apply_calibration(splits["test"][0], params, NAMES))
