"""The packaged `evaluate` metric modules (eval/metrics/<name>/<name>.py) and what they share.

They load offline: `evaluate.load(hub_name)` needs the network, a folder path does not. Each module
takes scores as `predictions` and 0/1 labels as `references`, with -1 marking an unknown label: rows
whose label is unknown are dropped per label (a row may be known for toxicity and unknown for
violence). Config "multilabel" (default): rows of L scores, one result per label, in column order.
Config "binary": one score per row, one float. Use `masked_references(labels, mask)` to build the -1s
from a dataset's `labels` / `label_mask` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import require

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
METRIC_NAMES = ("roc_auc", "auprc", "threshold_metrics", "ece", "brier")
UNKNOWN = -1


def metric_path(name: str) -> Path:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown harmscan metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    return METRICS_DIR / name


def load_metric(name: str, config: str = "multilabel") -> Any:
    """`evaluate.load` of a packaged metric by folder path (offline).

    keep_in_memory: the inputs are a few arrays; no Arrow cache files or lock files on disk.
    """
    evaluate = require("evaluate", "train")
    return evaluate.load(str(metric_path(name)), config, keep_in_memory=True)


def masked_references(labels: Any, mask: Any) -> np.ndarray:
    """0/1 labels with -1 where the mask says unknown (int8, same shape)."""
    labels = np.asarray(labels)
    mask = np.asarray(mask)
    return np.where(mask > 0.5, (labels > 0.5).astype(np.int8), np.int8(UNKNOWN)).astype(np.int8)


def features_for(config_name: str | None) -> Any:
    datasets = require("datasets", "train")
    if config_name == "binary":
        return datasets.Features(
            {"predictions": datasets.Value("float64"), "references": datasets.Value("int8")}
        )
    return datasets.Features(
        {
            "predictions": datasets.Sequence(datasets.Value("float64")),
            "references": datasets.Sequence(datasets.Value("int8")),
        }
    )


def per_label(
    fn: Callable[..., Any],
    predictions: Any,
    references: Any,
    config_name: str | None,
    per_label_kwargs: Sequence[dict[str, Any]] | None = None,
) -> Any:
    """Apply a binary metric `fn(y, p, **kwargs)` to each label's known rows.

    Returns fn's result for "binary", else a list with one result per label.
    """
    preds = np.asarray(predictions, dtype=np.float64)
    refs = np.asarray(references, dtype=np.int64)
    if config_name == "binary":
        keep = refs >= 0
        return fn(refs[keep], preds[keep], **(per_label_kwargs[0] if per_label_kwargs else {}))
    if preds.ndim != 2 or preds.shape != refs.shape:
        raise ValueError(f"multilabel predictions and references must both be [n, labels]: {preds.shape}, {refs.shape}")
    results = []
    for j in range(preds.shape[1]):
        keep = refs[:, j] >= 0
        kwargs = per_label_kwargs[j] if per_label_kwargs else {}
        results.append(fn(refs[keep, j], preds[keep, j], **kwargs))
    return results


def thresholds_per_label(threshold: float | Sequence[float], n_labels: int) -> list[float]:
    if isinstance(threshold, int | float):
        return [float(threshold)] * n_labels
    values = [float(t) for t in threshold]
    if len(values) != n_labels:
        raise ValueError(f"{len(values)} thresholds for {n_labels} labels")
    return values


INPUTS_DESCRIPTION = """
Args:
    predictions: scores, [n, labels] (config "multilabel", the default) or [n] (config "binary").
    references: 0/1 labels of the same shape; -1 marks an unknown label, excluded from that label's figure.
Returns: one value per label (a list, in column order) or, for "binary", one float. NaN where undefined.
"""
