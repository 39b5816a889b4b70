"""Re-measure the int8 gate at a bundle's final operating point, on a built dataset's validation split.

The gate itself (`harmscan.classifiers.int8_gate`) is pure runtime logic on two arrays of probabilities;
scoring a dataset split needs eval's `score_split` (and `datasets`), so the refresh lives on the eval side.
`harmscan thresholds --data D` runs it once the thresholds are written into the bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harmscan.classifiers.int8_gate import evaluate_gate, gate_record

log = logging.getLogger(__name__)


def refresh_int8_gate(
    bundle_dir: str | Path | Any,
    dataset_dir: str | Path,
    *,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any] | None:
    """Measure the int8 gate on the dataset's validation split at the bundle's current calibration and
    thresholds and write the verdict into its manifest; -> the record (None: the bundle has no int8)."""
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.eval.scores import score_split

    bundle = bundle_dir if isinstance(bundle_dir, Bundle) else Bundle.load(bundle_dir)
    if "int8" not in bundle.info.variants:
        return None
    scored = {}
    provider = ""
    for variant in ("fp32", "int8"):
        clf = HarmClassifier.unchecked(bundle, variant, threads=threads)
        scored[variant] = score_split(clf, dataset_dir, "validation", progress=progress)
        provider = clf.providers[0]
    val32, val8 = scored["fp32"], scored["int8"]
    result = evaluate_gate(val32.probs, val8.probs, bundle.label_names, bundle.policy.thresholds,
                           val32.labels, val32.mask)
    record = gate_record(result, source=f"dataset:{Path(dataset_dir)} (validation, all rows)",
                         manifest=bundle.manifest, provider=provider)
    variants = {name: dict(info) for name, info in bundle.info.variants.items()}
    variants["int8"]["parity"] = record
    bundle.update(variants=variants)
    log.info("int8 gate on %d validation texts: %s", result.texts, record["status"])
    return record
