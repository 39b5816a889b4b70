"""Figures with bootstrap 95% intervals: per label overall and per label × source.

Each figure is {"value": v, "ci95": [lo, hi]}: the point estimate on the rows given and a percentile
bootstrap interval (rows resampled with replacement, `n_boot` times; weights, not copies, see
binary_metrics). NaN (null in JSON) where a figure is undefined, e.g. ROC-AUC for a source that has
no positives for a label: its false-positive rate is the figure to read there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harmscan.eval import binary_metrics as bm

RANKING = ("roc_auc", "auprc")
AT_THRESHOLD = ("precision", "recall", "f1", "fpr")
CALIBRATION = ("ece", "brier")
ALL_METRICS = RANKING + AT_THRESHOLD + CALIBRATION
BOOT_CHUNK = 200  # replicates per matrix: bounds memory at 200 x n floats
ALL_SOURCES = "(all)"


def _metric_values(
    y: np.ndarray, p: np.ndarray, threshold: float, w: np.ndarray | None, metrics: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if any(m in metrics for m in RANKING):
        ranked = bm.ranking(y, p, w)
        out.update({m: ranked[m] for m in RANKING if m in metrics})
    if any(m in metrics for m in AT_THRESHOLD):
        at = bm.threshold_metrics(y, p, threshold, w)
        out.update({m: at[m] for m in AT_THRESHOLD if m in metrics})
    if "ece" in metrics:
        out["ece"] = bm.ece(y, p, bm.N_BINS, w)
    if "brier" in metrics:
        out["brier"] = bm.brier(y, p, w)
    return out


def figures(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    *,
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
    row_weight: np.ndarray | None = None,
    metrics: Sequence[str] = ALL_METRICS,
) -> dict[str, Any]:
    """Point estimates and bootstrap intervals of `metrics` for one label on the rows given.

    `row_weight` re-weights rows (e.g. to a stated prevalence) in the point estimate and every replicate.
    """
    rng = rng or np.random.default_rng(0)
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n = int(y.size)
    point = _metric_values(y, p, threshold, row_weight, metrics)
    reps: dict[str, list[np.ndarray]] = {m: [] for m in point}
    if n and n_boot:
        for start in range(0, n_boot, BOOT_CHUNK):
            w = bm.bootstrap_weights(n, min(BOOT_CHUNK, n_boot - start), rng)
            if row_weight is not None:
                w = w * row_weight[None, :]
            for m, v in _metric_values(y, p, threshold, w, metrics).items():
                reps[m].append(np.asarray(v))
    out: dict[str, Any] = {"n": n, "n_pos": int(y.sum()), "positive_rate": float(y.mean()) if n else None}
    for m, v in point.items():
        lo, hi = bm.interval(np.concatenate(reps[m])) if reps[m] else (float("nan"), float("nan"))
        out[m] = {"value": float(v), "ci95": [lo, hi]}
    return out


def label_source_table(
    probs: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    sources: Sequence[str],
    label_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """{label: {"(all)": figures, source: figures, ...}} over the rows where the label is known."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    src = np.asarray(sources)
    groups = [ALL_SOURCES, *sorted(set(sources))]
    table: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(label_names) * len(groups), desc="bootstrap", disable=not progress) as bar:
        for j, name in enumerate(label_names):
            table[name] = {}
            for group in groups:
                rows = mask[:, j] if group == ALL_SOURCES else mask[:, j] & (src == group)
                bar.update(1)
                if not rows.any():
                    continue
                table[name][group] = figures(
                    labels[rows, j], probs[rows, j], float(thresholds[j]), n_boot=n_boot, rng=rng
                )
    return table
