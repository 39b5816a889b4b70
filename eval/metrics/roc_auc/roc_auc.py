"""ROC-AUC per label for multi-label harm scores; unknown labels (-1) excluded.

Same value as sklearn.metrics.roc_auc_score on each label's known rows (ties count half).
Usage (offline): evaluate.load("<harmscan>/eval/metrics/roc_auc").compute(predictions=P, references=Y)
-> {"roc_auc": [per label]}. NaN for a label whose known rows hold only one class.
"""

import evaluate

from harmscan.eval import binary_metrics
from harmscan.eval.metric_modules import INPUTS_DESCRIPTION, features_for, per_label


@evaluate.utils.file_utils.add_start_docstrings(__doc__, INPUTS_DESCRIPTION)
class RocAuc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=INPUTS_DESCRIPTION,
            features=features_for(self.config_name),
        )

    def _compute(self, predictions, references):
        return {"roc_auc": per_label(binary_metrics.roc_auc, predictions, references, self.config_name)}
