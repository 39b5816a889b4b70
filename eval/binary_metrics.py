"""The numpy binary metrics (ROC-AUC, AUPRC, ECE, Brier, log loss, threshold figures, bootstrap weights)
as eval uses them: defined once in `harmscan.classifiers.binary_metrics`, where the int8 gate can reach
them too (the runtime may not import eval), and re-exported here so eval's modules keep one import."""

from __future__ import annotations

from harmscan.classifiers.binary_metrics import (
    N_BINS,
    Weights,
    average_precision,
    bin_ids,
    bootstrap_weights,
    brier,
    confusion,
    ece,
    interval,
    log_loss,
    ranking,
    reliability,
    roc_auc,
    threshold_metrics,
)

__all__ = [
    "N_BINS",
    "Weights",
    "average_precision",
    "bin_ids",
    "bootstrap_weights",
    "brier",
    "confusion",
    "ece",
    "interval",
    "log_loss",
    "ranking",
    "reliability",
    "roc_auc",
    "threshold_metrics",
]
