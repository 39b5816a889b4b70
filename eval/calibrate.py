"""Fit per-label calibration on the validation split and store it in the bundle manifest.

Methods (parameters as `harmscan.classifiers.calibration` applies them):
- "temperature" (default): p = sigmoid(z / T + b), Platt scaling on the logit. The bias matters: a head
  trained on a balanced-ish mix but served on rare harms is shifted, not only over-confident, and a pure
  temperature cannot move the 0.5 point. Two parameters cannot overfit a validation split of hundreds.
- "isotonic": a monotone step function of the logit (sklearn IsotonicRegression), stored as knots x/y and
  interpolated. More flexible, needs more validation positives; it can tie scores and so lower ROC-AUC.
Labels with too few known validation rows of either class stay uncalibrated (plain sigmoid).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.classifiers.calibration import apply_calibration, sigmoid
from harmscan.errors import InputError, require
from harmscan.eval import binary_metrics as bm

log = logging.getLogger(__name__)

METHODS = ("temperature", "isotonic")
MIN_PER_CLASS = 5  # fewer known positives (or negatives) than this on validation: leave the label alone


@dataclass
class TemperatureScaler:
    """Platt scaling on logits, sklearn-style: fit() learns temperature_ and bias_."""

    max_iter: int = 200
    temperature_: float = 1.0
    bias_: float = 0.0

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        z = np.asarray(logits, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64)
        # Fit on standardised logits: the optimiser then sees the same scale whatever the model's logit
        # spread (a barely trained head has logits within 1e-3 of each other), then map back.
        mu, sd = float(z.mean()), float(z.std()) or 1.0
        zs = (z - mu) / sd

        def nll(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = params
            s = a * zs + b
            # log(1 + e^s) - t*s, stable for large |s|
            loss = np.logaddexp(0.0, s) - t * s
            g = sigmoid(s) - t
            return float(loss.mean()), np.array([np.mean(g * zs), np.mean(g)])

        # a > 0 keeps the map increasing: calibration must never reorder texts.
        x0 = np.clip(np.array([sd, mu]), _LOW, _HIGH)  # the identity map, p = sigmoid(z), in standardised terms
        try:
            import scipy.optimize as scipy_optimize
        except ImportError:  # the base install (`calibrate --labels`): the same convex fit, by Newton's method
            a, b = _newton(nll, zs, t, x0, self.max_iter)
        else:
            res = scipy_optimize.minimize(
                nll, x0=x0, jac=True, method="L-BFGS-B", bounds=list(zip(_LOW, _HIGH, strict=True)),
                options={"maxiter": self.max_iter},
            )
            a, b = res.x
        # sigmoid(a (z - mu) / sd + b) = sigmoid(z / T + bias)
        self.temperature_ = float(sd / a)
        self.bias_ = float(b - a * mu / sd)
        return self

    def params(self) -> dict[str, float]:
        return {"temperature": self.temperature_, "bias": self.bias_}


_LOW, _HIGH = np.array([1e-4, -50.0]), np.array([1e3, 50.0])  # bounds of (slope, bias), standardised


def _newton(nll: Any, zs: np.ndarray, t: np.ndarray, x0: np.ndarray, max_iter: int) -> tuple[float, float]:
    """Minimise the two-parameter logistic loss without scipy: damped Newton steps kept within the bounds.
    The loss is convex, so this reaches the optimum L-BFGS-B finds (tests check they agree)."""
    x = x0.copy()
    loss, grad = nll(x)
    for _ in range(max_iter):
        p = sigmoid(x[0] * zs + x[1])
        w = p * (1.0 - p)
        hess = np.array([[np.mean(w * zs * zs), np.mean(w * zs)], [np.mean(w * zs), np.mean(w)]])
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        except np.linalg.LinAlgError:
            step = grad
        scale = 1.0
        while scale > 1e-8:  # backtrack until the loss goes down
            cand = np.clip(x - scale * step, _LOW, _HIGH)
            cand_loss, cand_grad = nll(cand)
            if cand_loss <= loss:
                break
            scale /= 2.0
        else:
            break
        converged = abs(loss - cand_loss) < 1e-14 and np.max(np.abs(cand - x)) < 1e-10
        x, loss, grad = cand, cand_loss, cand_grad
        if converged:
            break
    return float(x[0]), float(x[1])


@dataclass
class IsotonicCalibrator:
    """Isotonic regression of the label on the logit, stored as interpolation knots."""

    x_: np.ndarray | None = None
    y_: np.ndarray | None = None

    def fit(self, logits: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        isotonic = require("sklearn.isotonic", "train")
        iso = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=np.float64))
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def params(self) -> dict[str, list[float]]:
        assert self.x_ is not None and self.y_ is not None, "fit() first"
        return {"x": [round(float(v), 6) for v in self.x_], "y": [round(float(v), 6) for v in self.y_]}


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    label_names: Sequence[str],
    method: str = "temperature",
) -> dict[str, Any]:
    """Calibration parameters for the manifest, fitted per label on the known rows."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}: use one of {', '.join(METHODS)}")
    per_label: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for j, name in enumerate(label_names):
        known = mask[:, j]
        z, y = logits[known, j], labels[known, j]
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        if min(n_pos, n_neg) < MIN_PER_CLASS:
            skipped[name] = f"{n_pos} positives / {n_neg} negatives on validation (< {MIN_PER_CLASS})"
            log.warning("calibration: leaving %s uncalibrated: %s", name, skipped[name])
            continue
        fitter = TemperatureScaler() if method == "temperature" else IsotonicCalibrator()
        per_label[name] = fitter.fit(z, y).params()
    params: dict[str, Any] = {"method": method, "per_label": per_label}
    if skipped:
        params["skipped"] = skipped
    return params


def calibration_figures(
    logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, label_names: Sequence[str], params: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Per label: ECE / Brier / log loss of the raw sigmoid vs the calibrated probabilities."""
    raw = sigmoid(logits)
    cal = apply_calibration(logits, params, label_names).astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(label_names):
        known = mask[:, j]
        y = labels[known, j]
        before, after = raw[known, j], cal[known, j]
        out[name] = {
            "n": int(known.sum()),
            "positive_rate": float(y.mean()) if y.size else float("nan"),
            "ece_before": bm.ece(y, before),
            "ece_after": bm.ece(y, after),
            "brier_before": bm.brier(y, before),
            "brier_after": bm.brier(y, after),
            "log_loss_before": bm.log_loss(y, before),
            "log_loss_after": bm.log_loss(y, after),
        }
    return out


def calibrate_bundle(
    bundle_dir: str | Path,
    dataset_dir: str | Path,
    method: str = "temperature",
    *,
    variant: str = "fp32",  # fitted on the reference graph; int8 is gated against it
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit calibration on validation, write manifest["calibration"], return test ECE before/after per label."""
    from harmscan.classifiers import HarmClassifier
    from harmscan.eval.scores import score_split

    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}: use one of {', '.join(METHODS)}")
    clf = HarmClassifier.load(bundle_dir, variant=variant, threads=threads)
    names = list(clf.labels)
    val = score_split(clf, dataset_dir, "validation", progress=progress)
    test = score_split(clf, dataset_dir, "test", progress=progress)
    params = fit_calibration(val.logits, val.labels, val.mask, names, method)
    figures = {
        "validation": calibration_figures(val.logits, val.labels, val.mask, names, params),
        "test": calibration_figures(test.logits, test.labels, test.mask, names, params),
    }
    params["fitted_on"] = "validation"
    params["variant"] = clf.variant
    params["dataset"] = str(Path(dataset_dir))
    params["test"] = figures["test"]
    _store(clf.bundle, params)
    return {
        "method": method,
        "bundle": str(bundle_dir),
        "per_label": {n: params["per_label"].get(n) for n in names},
        "skipped": params.get("skipped", {}),
        "test": figures["test"],
        "validation": figures["validation"],
    }


def calibrate_on_labels(
    bundle_dir: str | Path,
    labels_path: str | Path,
    method: str = "temperature",
    *,
    text_field: str = "text",
    variant: str = "fp32",  # fitted on the reference graph; int8 is gated against it
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit calibration on a user's own labelled file (see `harmscan.eval.labelled`) and write it into the
    bundle, torch-free: the texts are scored with the bundle's ONNX session (raw logits, which a scan
    output's calibrated scores are not, so the text column is required). A label without a column keeps
    its current calibration when the method is the same, else stays uncalibrated. Figures are the file's
    own (in-sample): there is no held-out split."""
    from harmscan.classifiers import HarmClassifier
    from harmscan.eval.labelled import read_labelled
    from harmscan.eval.scores import score_labelled

    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}: use one of {', '.join(METHODS)}")
    clf = HarmClassifier.load(bundle_dir, variant=variant, threads=threads)
    names = list(clf.labels)
    labelled = read_labelled(labels_path, names, text_field=text_field, need_text=True)
    scored = score_labelled(clf, labelled, progress=progress)
    cols = [names.index(n) for n in labelled.present]  # a label without a column: nothing to fit on
    params = fit_calibration(scored.logits[:, cols], scored.labels[:, cols], scored.mask[:, cols],
                             labelled.present, method)
    previous = clf.bundle.calibration
    kept = {}
    if previous.get("method") == method:
        for name in names:
            if name not in labelled.present and name in (previous.get("per_label") or {}):
                kept[name] = params["per_label"][name] = previous["per_label"][name]
    figures = calibration_figures(scored.logits, scored.labels, scored.mask, names, params)
    params["fitted_on"] = str(labelled.path)
    params["variant"] = clf.variant
    params["in_sample"] = {n: figures[n] for n in labelled.present}
    if kept:
        params["kept"] = sorted(kept)
    _store(clf.bundle, params)
    return {
        "method": method,
        "bundle": str(bundle_dir),
        "labels": str(labelled.path),
        "per_label": {n: params["per_label"].get(n) for n in names},
        "present": list(labelled.present),
        "kept": sorted(kept),
        "skipped": params.get("skipped", {}),
        "in_sample": params["in_sample"],
    }


def _store(bundle: Any, params: dict[str, Any]) -> None:
    thresholds = bundle.info.thresholds
    bundle.update(calibration=params)
    tuned_under = thresholds.get("calibration")
    if tuned_under is not None and tuned_under != calibration_id(params):
        log.warning(
            "the bundle's thresholds were chosen under the previous calibration: rerun `harmscan thresholds`"
        )


def calibration_id(params: dict[str, Any]) -> str:
    """A short id of the calibration map, recorded with thresholds so a stale pairing can be detected."""
    core = {"method": params.get("method", "none"), "per_label": params.get("per_label", {})}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]

