"""Identity-term audit: how often benign sentences that mention an identity group get flagged, per group.

A classifier that learned "mentions Muslims" = toxic fails the people it should protect (a recurring
complaint about Detoxify and Perspective). The audit set is the neutral sentences of ToxiGen's
demonstrations (13 target groups; source `toxigen_demonstrations` of the data registry): every flag on
them is a false positive. The hateful sentences of the same groups give the toxicity recall beside it.

That source also feeds training, so sentences that landed in the dataset's train split are reported
apart: the held-out figures are the fair ones, the all-sentence figures have more rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import DataError
from harmscan.eval.public_benchmarks import wilson
from harmscan.text import dedup_key

log = logging.getLogger(__name__)

AUDIT_SOURCE = "toxigen_demonstrations"


def audit_examples(data_dir: str | Path) -> list[tuple[str, str, str]]:
    """(text, group, "neutral" | "hate") for every sentence of the audit source."""
    from harmscan.training.sources import all_sources, iter_examples

    registry = all_sources()
    if AUDIT_SOURCE not in registry:
        raise DataError(f"the data registry has no {AUDIT_SOURCE} source: the identity-term audit needs it")
    rows = []
    for ex in iter_examples(registry[AUDIT_SOURCE], Path(data_dir)):
        group = ex.meta.get("group") or "(unknown)"
        kind = ex.meta.get("label") or ("hate" if ex.labels.get("toxicity") == 1 else "neutral")
        rows.append((ex.text, group, kind))
    return rows


def _rate(hits: np.ndarray) -> dict[str, Any]:
    n, k = int(hits.size), int(hits.sum())
    return {"n": n, "value": k / n if n else None, "ci95": wilson(k, n)}


def audit_from_probs(
    examples: Sequence[tuple[str, str, str]],
    probs: np.ndarray,
    label_names: Sequence[str],
    thresholds: Mapping[str, float],
    train_keys: set[str] | None = None,
) -> dict[str, Any]:
    """Per group: FPR (any head, and toxicity) on neutral sentences; toxicity recall on hateful ones."""
    names = list(label_names)
    flags = probs >= np.asarray([thresholds[n] for n in names])[None, :]
    any_flag = np.asarray(flags.any(axis=1), dtype=bool)
    tox = names.index("toxicity") if "toxicity" in names else None
    groups = np.asarray([g for _, g, _ in examples])
    neutral = np.asarray([k == "neutral" for _, _, k in examples])
    in_train = np.asarray([dedup_key(t) in train_keys for t, _, _ in examples]) if train_keys else np.zeros(
        len(examples), dtype=bool
    )
    result: dict[str, Any] = {
        "source": AUDIT_SOURCE,
        "thresholds": {n: float(thresholds[n]) for n in names},
        "n_neutral": int(neutral.sum()),
        "n_neutral_in_train": int((neutral & in_train).sum()),
        "train_split_checked": train_keys is not None,
        "groups": {},
    }
    for subset, rows_all in (("held_out", ~in_train), ("all", np.ones(len(examples), dtype=bool))):
        block = neutral & rows_all
        result[f"overall_{subset}"] = {
            "fpr_any": _rate(any_flag[block]),
            "fpr_toxicity": _rate(flags[block, tox]) if tox is not None else None,
        }
    for group in sorted(set(groups.tolist())):
        g = groups == group
        entry: dict[str, Any] = {}
        for subset, rows_all in (("held_out", ~in_train), ("all", np.ones(len(examples), dtype=bool))):
            block = g & neutral & rows_all
            entry[subset] = {
                "fpr_any": _rate(any_flag[block]),
                "fpr_toxicity": _rate(flags[block, tox]) if tox is not None else None,
                "mean_toxicity": float(probs[block, tox].mean()) if tox is not None and block.any() else None,
            }
            hate = g & ~neutral & rows_all
            if tox is not None and hate.any():
                entry[subset]["toxicity_recall_on_hate"] = _rate(flags[hate, tox])
        result["groups"][group] = entry
    fprs = [e["held_out"]["fpr_any"]["value"] for e in result["groups"].values()
            if e["held_out"]["fpr_any"]["n"] >= 5]
    result["max_minus_min_fpr_held_out"] = (max(fprs) - min(fprs)) if fprs else None
    return result


def identity_audit(
    classifier: Any,
    data_dir: str | Path,
    thresholds: Mapping[str, float],
    *,
    train_texts: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the audit set with a HarmClassifier and compute the per-group figures."""
    from harmscan.classifiers.calibration import apply_calibration
    from harmscan.eval.scores import predict_logits

    examples = audit_examples(data_dir)
    if not examples:
        raise DataError(f"{AUDIT_SOURCE} in {data_dir} has no sentences")
    names = list(classifier.labels)
    logits = predict_logits(classifier, [t for t, _, _ in examples], progress, desc="identity audit")
    probs = apply_calibration(logits, classifier.bundle.calibration, names)
    train_keys = {dedup_key(t) for t in train_texts} if train_texts is not None else None
    return audit_from_probs(examples, probs, names, thresholds, train_keys)
