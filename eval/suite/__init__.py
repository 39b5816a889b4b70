"""The behavioural test suite: does the model get the cases users care about right, family by family?

CheckList/HateCheck style: each *functionality* (a direct threat, figurative violence, a polite request for
drug synthesis, counter-speech quoting hate, ...) is a set of templates x slot fillers with a gold label per
head (1, 0 or unknown). Templates come in two disjoint sets: `train` ones may feed training as augmentation
(`training_examples`), `test` ones never do and are what `evaluate_suite` scores.

One package, imported by training and eval alike:
- the definitions, YAML files in this folder (`slots.yaml` and one file per group of functionalities);
- `generator`: reading them and generating the cases (templates x slot fillers);
- `cases`: the two splits, the held-out keys training must never see, the cases training may use;
- `scoring`: scoring a classifier and the Markdown tables; `__main__` the module's command line.

    from harmscan.eval.suite import evaluate_suite, format_suite_table
    print(format_suite_table(evaluate_suite(HarmClassifier.load("artifacts/bundle"))))

or `python -m harmscan.eval.suite --bundle artifacts/bundle`. Importing this package needs only yaml.
"""

from __future__ import annotations

from harmscan.eval.suite.cases import (
    SOURCE,
    TrainingExample,
    expected_text,
    functionalities,
    held_out_keys,
    leaked_cases,
    load_suite,
    training_examples,
)
from harmscan.eval.suite.generator import SuiteCase
from harmscan.eval.suite.scoring import (
    MAX_FAILED_EXAMPLES,
    TARGET_MIN_FUNCTIONALITY,
    TARGET_OBFUSCATION_GAP,
    TARGET_OVERALL,
    evaluate_suite,
    format_functionality_table,
    format_suite_table,
    run_suite_cli,
)

__all__ = [
    "SuiteCase", "load_suite", "functionalities", "training_examples", "evaluate_suite", "format_suite_table",
    "run_suite_cli", "held_out_keys", "leaked_cases", "format_functionality_table", "expected_text",
    "TrainingExample", "SOURCE", "TARGET_OVERALL", "TARGET_MIN_FUNCTIONALITY", "TARGET_OBFUSCATION_GAP",
    "MAX_FAILED_EXAMPLES",
]
