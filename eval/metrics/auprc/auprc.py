"""Area under the precision-recall curve per label (average precision); unknown labels (-1) excluded.

Same value as sklearn.metrics.average_precision_score on each label's known rows (step-wise, no
interpolation). On rare harms it says more than ROC-AUC: it moves with the positive rate.
-> {"auprc": [per label]}; NaN for a label without known positives.
"""

import evaluate

from harmscan.eval import binary_metrics
from harmscan.eval.metric_modules import INPUTS_DESCRIPTION, features_for, per_label


@evaluate.utils.file_utils.add_start_docstrings(__doc__, INPUTS_DESCRIPTION)
class Auprc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=INPUTS_DESCRIPTION,
            features=features_for(self.config_name),
        )

    def _compute(self, predictions, references):
        return {"auprc": per_label(binary_metrics.average_precision, predictions, references, self.config_name)}
