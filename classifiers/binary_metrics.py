"""Binary metrics for one label, in numpy, with sample weights that may be a whole bootstrap at once.

Every function takes `y` (0/1, shape [n]), `p` (scores, shape [n]) and `w`: None (every row counts once),
a weight vector [n], or a matrix [B, n] of B weight vectors. With a matrix the result is an array [B]: a
bootstrap is B multinomial count vectors, so one sort and a few matrix products give all B replicates
(a loop over resamples would be ~100x slower). The same weights re-weight validation rows to a stated
base rate when choosing thresholds (`harmscan thresholds --prevalence`).

Definitions follow scikit-learn (tests check agreement): ROC-AUC with ties counted half, AUPRC as
average precision (step-wise, no interpolation), ECE with equal-width bins assigned like
`sklearn.calibration.calibration_curve`. A value that is undefined (no positives, nothing flagged) is NaN.
The decision rule everywhere is `score >= threshold`, as in `harmscan.classifiers.policy.Policy.flags`.

They live in the runtime, numpy only, because the int8 gate (`harmscan.classifiers.int8_gate`) measures
AUPRC and ECE and the runtime may not import eval; eval imports them through `harmscan.eval.binary_metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_BINS = 15

Weights = np.ndarray | None


def _prepare(y: Any, p: Any, w: Weights) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {p.shape[0]}")
    if w is None:
        return y, p, np.ones((1, y.shape[0])), True
    w = np.asarray(w, dtype=np.float64)
    single = w.ndim == 1
    w2 = w.reshape(1, -1) if single else w
    if w2.shape[1] != y.shape[0]:
        raise ValueError(f"weights have {w2.shape[1]} columns for {y.shape[0]} rows")
    return y, p, w2, single


def _out(values: np.ndarray, single: bool) -> Any:
    return float(values[0]) if single else values


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _grouped(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score, scores descending: ([G], [B, G], [B, G])."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys, ws = p[order], y[order], w[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * (1.0 - ys), starts, axis=1)
    return ps[starts], pos, neg


def ranking(y: Any, p: Any, w: Weights = None) -> dict[str, Any]:
    """ROC-AUC and AUPRC from one sort (a bootstrap needs both for every replicate)."""
    y, p, w, single = _prepare(y, p, w)
    if y.size == 0:
        nan = _out(np.full(w.shape[0], np.nan), single)
        return {"roc_auc": nan, "auprc": nan}
    _, pos, neg = _grouped(y, p, w)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    tps, fps = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    neg_below = n_neg[:, None] - fps  # negatives scored strictly lower
    auc = _ratio((pos * (neg_below + 0.5 * neg)).sum(axis=1), n_pos * n_neg)
    # average precision: sum over distinct thresholds of ΔRecall × Precision (sklearn's definition)
    precision = np.nan_to_num(_ratio(tps, tps + fps))
    ap = _ratio((pos * precision).sum(axis=1), n_pos)
    return {"roc_auc": _out(auc, single), "auprc": _out(ap, single)}


def roc_auc(y: Any, p: Any, w: Weights = None) -> Any:
    return ranking(y, p, w)["roc_auc"]


def average_precision(y: Any, p: Any, w: Weights = None) -> Any:
    """AUPRC as scikit-learn's average_precision_score: sum over thresholds of ΔRecall × Precision."""
    return ranking(y, p, w)["auprc"]


def confusion(y: Any, p: Any, threshold: float, w: Weights = None) -> dict[str, Any]:
    """Weighted tp, fp, fn, tn at `score >= threshold`."""
    y, p, w, single = _prepare(y, p, w)
    flag = (p >= threshold).astype(np.float64)
    counts = {
        "tp": w @ (y * flag),
        "fp": w @ ((1 - y) * flag),
        "fn": w @ (y * (1 - flag)),
        "tn": w @ ((1 - y) * (1 - flag)),
    }
    return {k: _out(v, single) for k, v in counts.items()}


def threshold_metrics(y: Any, p: Any, threshold: float, w: Weights = None) -> dict[str, Any]:
    """precision, recall, f1, fpr (and flag_rate) at `score >= threshold`."""
    y, p, w, single = _prepare(y, p, w)
    flag = (p >= threshold).astype(np.float64)
    tp, fp = w @ (y * flag), w @ ((1 - y) * flag)
    fn, tn = w @ (y * (1 - flag)), w @ ((1 - y) * (1 - flag))
    values = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "fpr": _ratio(fp, fp + tn),
        "flag_rate": _ratio(tp + fp, tp + fp + fn + tn),
    }
    return {k: _out(v, single) for k, v in values.items()}


def bin_ids(p: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bins on [0, 1], edges assigned as sklearn.calibration.calibration_curve does."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], np.clip(p, 0.0, 1.0))


def reliability(y: Any, p: Any, n_bins: int = N_BINS, w: Weights = None) -> dict[str, Any]:
    """Per bin: weight, mean score, observed positive rate (NaN for empty bins)."""
    y, p, w, single = _prepare(y, p, w)
    onehot = np.eye(n_bins)[bin_ids(p, n_bins)]  # [n, bins]
    count = w @ onehot
    values = {
        "count": count,
        "mean_score": _ratio(w @ (onehot * p[:, None]), count),
        "positive_rate": _ratio(w @ (onehot * y[:, None]), count),
    }
    return {k: (v[0] if single else v) for k, v in values.items()}


def ece(y: Any, p: Any, n_bins: int = N_BINS, w: Weights = None) -> Any:
    """Expected calibration error: Σ_bins (n_b / n) |observed positive rate_b − mean score_b|."""
    y, p, w, single = _prepare(y, p, w)
    onehot = np.eye(n_bins)[bin_ids(p, n_bins)]
    gap = np.abs(w @ (onehot * (y - p)[:, None])).sum(axis=1)
    return _out(_ratio(gap, w.sum(axis=1)), single)


def brier(y: Any, p: Any, w: Weights = None) -> Any:
    y, p, w, single = _prepare(y, p, w)
    return _out(_ratio(w @ (p - y) ** 2, w.sum(axis=1)), single)


def log_loss(y: Any, p: Any, w: Weights = None, eps: float = 1e-7) -> Any:
    y, p, w, single = _prepare(y, p, w)
    pc = np.clip(p, eps, 1 - eps)
    nll = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    return _out(_ratio(w @ nll, w.sum(axis=1)), single)


def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] multinomial counts: resampling n rows with replacement, n_boot times."""
    if n == 0:
        return np.zeros((n_boot, 0))
    # draw row indices and count them per replicate: same law as a multinomial, ~10x faster for large n
    picks = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, ignoring replicates where the metric is undefined."""
    finite = samples[np.isfinite(samples)]
    if finite.size < max(10, samples.size // 2):
        return (float("nan"), float("nan"))  # mostly undefined: an interval would mislead
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)
