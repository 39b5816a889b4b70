"""harmscan.eval: metrics, calibration, threshold tuning, benchmark loaders and readable reports.

    from harmscan.eval import calibrate_bundle, tune_thresholds, evaluate_bundle
    calibrate_bundle("artifacts/bundle", "artifacts/data/default")                 # temperature scaling
    tune_thresholds("artifacts/bundle", "artifacts/data/default", "precision>=0.9")
    evaluate_bundle("artifacts/bundle", "artifacts/data/default", out_dir="artifacts/report")

Attributes are imported lazily: the CLI imports this package on every call, and the heavy dependencies
(evaluate, scikit-learn, matplotlib, datasets) load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.eval.calibrate import calibrate_bundle, fit_calibration
    from harmscan.eval.evaluate import evaluate_bundle
    from harmscan.eval.metric_modules import load_metric
    from harmscan.eval.public_benchmarks import load_benchmark, run_benchmark
    from harmscan.eval.scores import ScoredSplit, score_dataset
    from harmscan.eval.thresholds import tune_thresholds

_WHERE = {
    "score_dataset": "harmscan.eval.scores",
    "ScoredSplit": "harmscan.eval.scores",
    "calibrate_bundle": "harmscan.eval.calibrate",
    "fit_calibration": "harmscan.eval.calibrate",
    "tune_thresholds": "harmscan.eval.thresholds",
    "evaluate_bundle": "harmscan.eval.evaluate",
    "load_metric": "harmscan.eval.metric_modules",
    "load_benchmark": "harmscan.eval.public_benchmarks",
    "run_benchmark": "harmscan.eval.public_benchmarks",
}
__all__ = [
    "ScoredSplit", "calibrate_bundle", "evaluate_bundle", "fit_calibration", "load_benchmark", "load_metric",
    "run_benchmark", "score_dataset", "tune_thresholds",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'harmscan.eval' has no attribute {name!r}")
