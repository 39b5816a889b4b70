"""Score a built dataset split with a bundle, once: eval, calibrate and thresholds all reuse the logits.

Scoring ~10k texts costs ~20 s on 2 cores, so raw logits are cached on disk beside the dataset
(`<dataset>/.harmscan_scores/`), keyed by everything that changes them: the model file's sha256, the
tokenizer's, max length, window stride, normaliser version and a hash of the split's texts. Logits are
calibration-independent; probabilities are recomputed from them with the bundle's current calibration,
so recalibrating never needs a rescore.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harmscan.classifiers.calibration import apply_calibration
from harmscan.errors import DataError, require

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".harmscan_scores"
SCORE_CHUNK = 256  # texts per predict_logits call: a progress bar that moves, batches of similar length
_MEMO: dict[str, np.ndarray] = {}


class ScoredSplit(NamedTuple):
    """One split, scored: arrays in dataset row order; `probs` are calibrated with the bundle's calibration."""

    probs: np.ndarray  # [n, L] float
    labels: np.ndarray  # [n, L] 0/1 (0 where unknown)
    mask: np.ndarray  # [n, L] bool, True where the label is known
    sources: list[str]
    logits: np.ndarray  # [n, L] raw, max over windows


def load_split(dataset_dir: str | Path, split: str, label_names: list[str] | None = None) -> Any:
    """A split of a dataset built by `harmscan data build`, checked against the bundle's labels."""
    datasets = require("datasets", "train")
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise DataError(
            f"{dataset_dir} is not a dataset built by `harmscan data build` (no dataset_dict.json): "
            "pass --data with the folder `harmscan data build -o` wrote"
        )
    dd = datasets.load_from_disk(str(dataset_dir))
    if split not in dd:
        raise DataError(f"dataset {dataset_dir} has no split {split!r} (it has: {', '.join(dd)})")
    ds = dd[split]
    missing = {"text", "labels", "label_mask", "source"} - set(ds.column_names)
    if missing:
        raise DataError(f"dataset {dataset_dir} split {split} lacks columns {sorted(missing)}: rebuild it")
    summary = dataset_dir / "harmscan_data.json"
    if label_names is not None and summary.is_file():
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("labels")
        names = [x["name"] if isinstance(x, dict) else str(x) for x in recorded or []]
        if names and names != list(label_names):
            raise DataError(
                f"dataset {dataset_dir} has labels {names} but the bundle has {list(label_names)}: "
                "evaluate a bundle trained on this taxonomy"
            )
    return ds


def _cache_key(classifier: Any, texts: list[str], split: str) -> str:
    parts = {
        **classifier.bundle.info.scoring_identity(classifier.variant),
        # the texts themselves, not the split's fingerprint: a rebuilt dataset may keep its folder
        "texts": hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest(),
        "split": split,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def predict_logits(classifier: Any, texts: list[str], progress: bool = True, desc: str = "scoring") -> np.ndarray:
    """Logits for many texts in length-sorted chunks (less padding), with a progress bar."""
    from tqdm.auto import tqdm

    n_labels = len(classifier.labels)
    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
        for start in range(0, len(order), SCORE_CHUNK):
            idx = order[start : start + SCORE_CHUNK]
            out[idx] = np.asarray(classifier.predict_logits([texts[i] for i in idx]), dtype=np.float32)
            bar.update(len(idx))
    return out


def score_split(
    classifier: Any,
    dataset_dir: str | Path,
    split: str = "test",
    *,
    cache: bool = True,
    progress: bool = True,
) -> ScoredSplit:
    labels_names = list(classifier.labels)
    ds = load_split(dataset_dir, split, labels_names)
    texts = list(ds["text"])
    key = _cache_key(classifier, texts, split)
    cache_file = Path(dataset_dir) / CACHE_DIRNAME / f"{split}-{key}.npy"
    logits = _MEMO.get(key) if cache else None
    if logits is None and cache and cache_file.is_file():
        try:
            logits = np.load(cache_file)
            log.info("reusing cached scores %s", cache_file)
        except (OSError, ValueError):
            logits = None  # a torn cache file: rescore
    if logits is None or logits.shape != (len(ds), len(labels_names)):
        logits = predict_logits(classifier, texts, progress, desc=f"scoring {split}")
        if cache:
            try:
                cache_file.parent.mkdir(exist_ok=True)
                tmp = cache_file.with_suffix(".tmp.npy")
                np.save(tmp, logits)
                tmp.replace(cache_file)
            except OSError as exc:  # a read-only dataset folder: keep the in-process copy only
                log.info("cannot cache scores in %s: %s", cache_file.parent, exc)
    if cache:
        _MEMO[key] = logits
    labels = np.asarray(ds["labels"], dtype=np.float32).reshape(len(ds), -1)
    mask = np.asarray(ds["label_mask"], dtype=np.float32).reshape(len(ds), -1) > 0.5
    if labels.shape[1] != len(labels_names):
        raise DataError(
            f"dataset {dataset_dir} has {labels.shape[1]} label columns, the bundle {len(labels_names)} labels"
        )
    probs = apply_calibration(logits, classifier.bundle.calibration, labels_names)
    return ScoredSplit(probs, (labels > 0.5).astype(np.int8), mask, list(ds["source"]), logits)


def score_labelled(
    classifier: Any,
    labelled: Any,
    *,
    progress: bool = True,
) -> ScoredSplit:
    """The second way to a scored split: a user's labelled file (`harmscan.eval.labelled.read_labelled`)
    instead of a built dataset. Its texts are scored with `classifier` (ONNX Runtime only: no torch,
    transformers or datasets); a scan output's scores are used as they are when the file has no texts
    to score (`classifier` may then be None), and its logits are then those of the given probabilities."""
    if labelled.texts is not None:
        if classifier is None:
            raise DataError(f"{labelled.path}: its texts need a bundle to score them: pass --bundle")
        logits = predict_logits(classifier, labelled.texts, progress, desc=f"scoring {labelled.path.name}")
        probs = apply_calibration(logits, classifier.bundle.calibration, labelled.names)
    else:
        probs = np.asarray(labelled.scores, dtype=np.float32)
        clipped = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
        logits = np.log(clipped / (1 - clipped)).astype(np.float32)
    sources = [labelled.path.name] * len(labelled)
    return ScoredSplit(probs, labelled.labels, labelled.mask, sources, logits)


def score_dataset(
    classifier: Any, dataset_dir: str | Path, split: str = "test", *, cache: bool = True, progress: bool = True
) -> ScoredSplit:
    """(probs [n,L], labels [n,L], mask [n,L], sources, logits [n,L]) for a built dataset split.

    `classifier` is a loaded `HarmClassifier`; probabilities use its bundle's calibration.
    The result is a NamedTuple: unpack it as a tuple or read its fields.
    """
    return score_split(classifier, dataset_dir, split, cache=cache, progress=progress)
