"""Brier score per label: mean squared error of the probability; unknown labels (-1) excluded.

Same value as sklearn.metrics.brier_score_loss on each label's known rows. Lower is better.
-> {"brier": [per label]}.
"""

import evaluate

from harmscan.eval import binary_metrics
from harmscan.eval.metric_modules import INPUTS_DESCRIPTION, features_for, per_label


@evaluate.utils.file_utils.add_start_docstrings(__doc__, INPUTS_DESCRIPTION)
class Brier(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=INPUTS_DESCRIPTION,
            features=features_for(self.config_name),
        )

    def _compute(self, predictions, references):
        return {"brier": per_label(binary_metrics.brier, predictions, references, self.config_name)}
