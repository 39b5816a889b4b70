"""Precision, recall, F1 and false-positive rate per label at a threshold; unknown labels (-1) excluded.

A row is flagged when score >= threshold (the rule scan and serve apply). compute(..., threshold=0.5)
takes one threshold for every label or a list with one per label.
-> {"precision": [...], "recall": [...], "f1": [...], "fpr": [...]}; NaN where undefined
(precision with nothing flagged, recall without positives, FPR without negatives).
"""

import evaluate

from harmscan.eval import binary_metrics
from harmscan.eval.metric_modules import INPUTS_DESCRIPTION, features_for, per_label, thresholds_per_label

KEYS = ("precision", "recall", "f1", "fpr")


@evaluate.utils.file_utils.add_start_docstrings(__doc__, INPUTS_DESCRIPTION)
class ThresholdMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=INPUTS_DESCRIPTION + "    threshold: float or one float per label (default 0.5).\n",
            features=features_for(self.config_name),
        )

    def _compute(self, predictions, references, threshold=0.5):
        n_labels = 1 if self.config_name == "binary" else len(predictions[0]) if len(predictions) else 0
        kwargs = [{"threshold": t} for t in thresholds_per_label(threshold, n_labels)]
        results = per_label(binary_metrics.threshold_metrics, predictions, references, self.config_name, kwargs)
        if self.config_name == "binary":
            return {k: results[k] for k in KEYS}
        return {k: [r[k] for r in results] for k in KEYS}
