"""How hard is the behavioural suite's test split? A bag-of-words floor, with and without the train templates.

Trains one TF-IDF (word 1-2 grams) + logistic-regression model per head on a dataset built by
`harmscan data build`, twice: on the recipe's real sources only, and with the suite's train templates and
obfuscated copies added (sources "suite_train" and "augment_obfuscation"), then scores both on the suite's
test templates at threshold 0.5. A model that memorised the train templates would gain little on the test
templates: the gap between the two runs, and the distance to the targets, say how much generalisation the
test split asks for. Texts are normalised with harmscan.text.normalize_text, as HarmClassifier does.

    harmscan data build --recipe default -o artifacts/data/default
    OMP_NUM_THREADS=1 python benchmarks/suite_baseline.py artifacts/data/default [-o suite_baseline.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.classifiers.policy import Policy
from harmscan.eval.suite import evaluate_suite, format_suite_table
from harmscan.text import normalize_text
from harmscan.training.dataset import load_built

AUGMENTATION_SOURCES = ("suite_train", "augment_obfuscation")


class BagOfWords:
    """predict_proba / labels / policy like a HarmClassifier, from TF-IDF + one logistic regression per head."""

    def __init__(self, train: Any, heads: list[str], exclude: tuple[str, ...]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        keep = [i for i, s in enumerate(train["source"]) if s not in exclude]
        texts = [train["text"][i] for i in keep]
        labels = np.asarray(train["labels"])[keep]
        mask = np.asarray(train["label_mask"])[keep] > 0
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        features = self.vectorizer.fit_transform(texts)
        self.models = [
            LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced").fit(
                features[mask[:, j]], labels[mask[:, j], j]
            )
            for j in range(len(heads))
        ]
        self.labels = heads
        self.policy = Policy({h: 0.5 for h in heads})
        self.n_train = len(texts)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        features = self.vectorizer.transform([normalize_text(t) for t in texts])
        return np.stack([m.predict_proba(features)[:, 1] for m in self.models], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a dataset folder written by `harmscan data build`")
    parser.add_argument("-o", "--output", type=Path, help="write both results as JSON")
    args = parser.parse_args()
    dd, summary = load_built(args.dataset)
    heads = [label["name"] for label in summary["labels"]]
    results = {}
    for name, exclude in (("sources only", AUGMENTATION_SOURCES), ("sources + suite train templates", ())):
        start = time.perf_counter()
        model = BagOfWords(dd["train"], heads, exclude)
        result = evaluate_suite(model, progress=False)
        results[name] = result
        print(f"## {name} ({model.n_train:,} training rows, {time.perf_counter() - start:.0f} s)\n")
        print(format_suite_table(result))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
