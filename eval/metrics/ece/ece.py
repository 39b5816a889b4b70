"""Expected calibration error per label, 15 equal-width bins by default; unknown labels (-1) excluded.

ECE = sum over bins of (rows in bin / rows) * |observed positive rate - mean predicted probability|,
the binary ("is this label present") form, with bins assigned as sklearn.calibration.calibration_curve
assigns them. Predictions must be probabilities. On rare labels most rows sit in the lowest bin, so ECE
is dominated by the negatives: read it with the positive rate. compute(..., n_bins=15).
-> {"ece": [per label]}.
"""

import evaluate

from harmscan.eval import binary_metrics
from harmscan.eval.metric_modules import INPUTS_DESCRIPTION, features_for, per_label


@evaluate.utils.file_utils.add_start_docstrings(__doc__, INPUTS_DESCRIPTION)
class Ece(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=INPUTS_DESCRIPTION + "    n_bins: number of equal-width bins (default 15).\n",
            features=features_for(self.config_name),
        )

    def _compute(self, predictions, references, n_bins=binary_metrics.N_BINS):
        n_labels = 1 if self.config_name == "binary" else len(predictions[0]) if len(predictions) else 0
        kwargs = [{"n_bins": int(n_bins)}] * max(n_labels, 1)
        return {"ece": per_label(binary_metrics.ece, predictions, references, self.config_name, kwargs)}
