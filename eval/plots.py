"""Report figures as base64 PNGs (matplotlib's object API with the Agg canvas: no pyplot, no display).

One figure per label and kind: PR + ROC curves, reliability diagram (before/after calibration), score
histograms by class, precision/recall/FPR against the threshold. The chosen threshold is marked on each.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from harmscan.errors import require
from harmscan.eval import binary_metrics as bm

DPI = 80
POS_COLOUR, NEG_COLOUR, MARK_COLOUR = "#c0392b", "#2c7fb8", "#555555"


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    require("matplotlib", "train")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> str:  # noqa: ANN001 - matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def pr_roc(y: np.ndarray, p: np.ndarray, threshold: float, label: str) -> str:
    metrics = require("sklearn.metrics", "train")
    fig = _figure(8, 3.4)
    ax_pr, ax_roc = fig.subplots(1, 2)
    if 0 < y.sum() < y.size:
        prec, rec, _ = metrics.precision_recall_curve(y, p)
        fpr, tpr, _ = metrics.roc_curve(y, p)
        ax_pr.step(rec, prec, where="post", color=POS_COLOUR, label=f"AUPRC {bm.average_precision(y, p):.3f}")
        ax_roc.plot(fpr, tpr, color=POS_COLOUR, label=f"ROC-AUC {bm.roc_auc(y, p):.3f}")
        at = bm.threshold_metrics(y, p, threshold)
        if np.isfinite(at["precision"]):
            ax_pr.plot([at["recall"]], [at["precision"]], "o", color=MARK_COLOUR, label=f"threshold {threshold:.3f}")
        ax_roc.plot([at["fpr"]], [at["recall"]], "o", color=MARK_COLOUR, label=f"threshold {threshold:.3f}")
        ax_pr.axhline(y.mean(), ls=":", color="grey", lw=1, label=f"base rate {y.mean():.3f}")
        ax_roc.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    else:
        for ax in (ax_pr, ax_roc):
            ax.text(0.5, 0.5, "one class only", ha="center", va="center")
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{label}: precision-recall")
    ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.02),
               title=f"{label}: ROC")
    for ax in (ax_pr, ax_roc):
        ax.legend(loc="lower left" if ax is ax_pr else "lower right", fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def reliability(y: np.ndarray, p_after: np.ndarray, label: str, p_before: np.ndarray | None = None) -> str:
    fig = _figure(4.6, 4.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect calibration")
    curves = [("after calibration", p_after, POS_COLOUR)] if p_before is not None else [("scores", p_after, POS_COLOUR)]
    if p_before is not None:
        curves.insert(0, ("before (raw sigmoid)", p_before, NEG_COLOUR))
    for name, p, colour in curves:
        r = bm.reliability(y, p)
        ok = r["count"] > 0
        ece = bm.ece(y, p)
        ax.plot(r["mean_score"][ok], r["positive_rate"][ok], "o-", color=colour, ms=4, label=f"{name}, ECE {ece:.3f}")
    ax.set(xlabel="mean predicted probability (15 bins)", ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1),
           title=f"{label}: reliability")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def histogram(y: np.ndarray, p: np.ndarray, threshold: float, label: str) -> str:
    fig = _figure(5.2, 3.4)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    ax.hist(p[y == 0], bins=bins, color=NEG_COLOUR, alpha=0.6, label=f"negatives (n={int((y == 0).sum())})")
    ax.hist(p[y == 1], bins=bins, color=POS_COLOUR, alpha=0.6, label=f"positives (n={int((y == 1).sum())})")
    ax.axvline(threshold, color=MARK_COLOUR, ls="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set(xlabel="probability", ylabel="texts (log scale)", title=f"{label}: score distribution")
    ax.legend(fontsize=8)
    return _png(fig)


def threshold_curves(y: np.ndarray, p: np.ndarray, threshold: float, label: str) -> str:
    fig = _figure(5.2, 3.4)
    ax = fig.subplots()
    grid = np.linspace(0.0, 1.0, 201)
    at = [bm.threshold_metrics(y, p, t) for t in grid]
    for key, colour in (("precision", POS_COLOUR), ("recall", NEG_COLOUR), ("fpr", "#7f7f7f")):
        ax.plot(grid, [a[key] for a in at], color=colour, label=key if key != "fpr" else "false-positive rate")
    ax.axvline(threshold, color=MARK_COLOUR, ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="threshold", ylabel="value", xlim=(0, 1), ylim=(0, 1.02), title=f"{label}: metrics vs threshold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def bar_rates(names: list[str], values: list[float], title: str, xlabel: str) -> str:
    """Horizontal bars of rates (e.g. false-positive rate per identity group)."""
    fig = _figure(5.6, 0.3 * len(names) + 1.2)
    ax = fig.subplots()
    ax.barh(names, values, color=NEG_COLOUR)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, xlim=(0, max(0.05, max(values, default=0) * 1.15)), title=title)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
