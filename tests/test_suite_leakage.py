"""Done-when of issue 7: no test-template case of the behavioural suite appears in the training data.

Uses the `default` recipe's dataset, built from the real sources once per session exactly as `harmscan data
build` does (conftest `default_dataset`), then looks for every test-split suite case (and the plain form of
every obfuscated one) among the train and validation texts, by `harmscan.text.dedup_key`: case, spacing and
punctuation do not hide a copy. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import pytest

from harmscan.eval.suite import held_out_keys, leaked_cases
from harmscan.text import dedup_key


@pytest.mark.parametrize("split", ["train", "validation"])
def test_no_test_template_case_is_in_the_training_data(default_dataset, split: str) -> None:
    texts = default_dataset[split]["text"]
    assert len(texts) > 1000, "the dataset is suspiciously small: the check would prove nothing"
    leaked = leaked_cases(texts)
    assert leaked == [], (
        f"{len(leaked)} test-template suite cases are in the {split} split, e.g. "
        + "; ".join(f"{c.functionality}: {c.text!r}" for c in leaked[:5])
    )


def test_the_suite_train_templates_do_feed_training(default_dataset) -> None:
    # The default recipe adds the train templates (and obfuscated copies of positives) as augmentation:
    # the leakage check above is only meaningful because suite text really is in the train split.
    train = default_dataset["train"]
    suite_rows = [t for t, s in zip(train["text"], train["source"], strict=True) if s == "suite_train"]
    assert len(suite_rows) >= 1000
    held_out = held_out_keys()
    assert not any(dedup_key(t) in held_out for t in suite_rows)


def test_a_missing_suite_is_an_error_not_a_silent_build_without_the_leak_guard(monkeypatch) -> None:
    import sys

    from harmscan.errors import DataError
    from harmscan.training import dataset

    monkeypatch.setitem(sys.modules, "harmscan.eval.suite.cases", None)  # import fails as in a broken install
    with pytest.raises(DataError, match="behavioural suite .* cannot be imported") as err:
        dataset._suite_held_out_keys()
    assert "\n" not in str(err.value)
