"""External validation: whole sources that are never trained on, scored after every training run.

In-domain test splits share their sources with training, so they flatter a model: the shipped model scored
0.92 AUPRC in-domain and still flagged one ordinary chatbot prompt in six on real traffic. An external
source is kept out whole (a recipe's `external:` list; `harmscan data build` drops every training-side row
whose dedup key equals one of its rows'), re-read here from the data dir with the training normalisation,
and scored with the bundle at the policy's thresholds. The report shows these figures first.

Figures per source (a row's head is 1, 0 or unknown; unknown never counts as a negative):
- benign rows (no head 1, at least one head 0): any-head FPR = share of them on which some head that is
  known-0 for the row is flagged, with a Wilson 95% interval;
- per head: FPR on the head's negatives, recall on its positives (Wilson), and AUPRC / ROC-AUC (bootstrap
  95% interval) where the source has both classes for the head;
- the rows most confidently flagged against a known 0 (these are public data: text is shown, cut to 200).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import DataError, InputError
from harmscan.eval.public_benchmarks import wilson

log = logging.getLogger(__name__)

TOP_FALSE_POSITIVES = 5
TEXT_CHARS = 200


def _rate(hits: np.ndarray) -> dict[str, Any]:
    n, k = int(hits.size), int(hits.sum())
    return {"n": n, "k": k, "value": k / n if n else None, "ci95": wilson(k, n)}


def parse_external_sources(text: str) -> list[Any]:
    """'a,b:2000' -> [ExternalSpec(a), ExternalSpec(b, cap=2000)] (the cap a recipe's {cap: N} sets)."""
    from harmscan.training.recipe import ExternalSpec

    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, cap = part.partition(":")
        if sep:
            try:
                n = int(cap)
                if n <= 0:
                    raise ValueError
            except ValueError:
                raise InputError(f"--external-sources {part!r}: use NAME or NAME:CAP with CAP a whole number > 0") \
                    from None
            out.append(ExternalSpec(name.strip(), n))
        else:
            out.append(ExternalSpec(name))
    if not out:
        raise InputError("--external-sources is empty: name one or more sources, e.g. gsm8k,banking77")
    return out


def specs_from_summary(summary: Mapping[str, Any]) -> list[Any]:
    """The external sources a dataset's recipe named (harmscan_data.json), caps included."""
    from harmscan.training.recipe import ExternalSpec

    recipe = summary.get("recipe") or {}
    return [ExternalSpec(str(e["name"]), e.get("cap")) for e in recipe.get("external") or []]


def evaluate_external(
    name: str,
    labels: np.ndarray,
    probs: np.ndarray,
    label_names: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    texts: Sequence[str] = (),
    index: Sequence[int] | None = None,
    ids: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    top: int = TOP_FALSE_POSITIVES,
) -> dict[str, Any]:
    """Figures of one external source from its labels [n, L] (1 / 0 / -1 unknown) and probabilities [n, L]."""
    from harmscan.eval.tables import figures

    names = list(label_names)
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    tvec = np.asarray([float(thresholds[n]) for n in names])
    flags = probs >= tvec[None, :]
    negative, positive = labels == 0, labels == 1
    false_flag = flags & negative  # a head flagged where the row says it is not that harm
    benign = ~positive.any(axis=1) & negative.any(axis=1)
    rng = np.random.default_rng(seed)
    heads: dict[str, Any] = {}
    for j, head in enumerate(names):
        entry: dict[str, Any] = {
            "pos": int(positive[:, j].sum()), "neg": int(negative[:, j].sum()),
            "unknown": int((~positive[:, j] & ~negative[:, j]).sum()), "threshold": float(tvec[j]),
        }
        if entry["neg"]:
            entry["fpr"] = _rate(flags[negative[:, j], j])
        if entry["pos"]:
            entry["recall"] = _rate(flags[positive[:, j], j])
        if entry["pos"] and entry["neg"]:
            known = positive[:, j] | negative[:, j]
            ranked = figures(labels[known, j], probs[known, j], float(tvec[j]), n_boot=n_boot, rng=rng,
                             metrics=("roc_auc", "auprc"))
            entry["auprc"], entry["roc_auc"] = ranked["auprc"], ranked["roc_auc"]
        heads[head] = entry
    worst = np.where(false_flag, probs, -np.inf).max(axis=1) if len(names) else np.zeros(len(labels))
    fp_rows = [int(i) for i in np.flatnonzero(false_flag.any(axis=1))]
    fp_rows.sort(key=lambda i: (-worst[i], i))
    top_fp = []
    for i in fp_rows[:top]:
        top_fp.append({
            "row": i,
            "index": int(index[i]) if index is not None else i,
            "id": (ids[i] if ids is not None else "") or None,
            "text": texts[i][:TEXT_CHARS] if i < len(texts) else None,
            "scores": {h: float(probs[i, j]) for j, h in enumerate(names)},
            "flagged_against_label": [h for j, h in enumerate(names) if false_flag[i, j]],
        })
    return {
        "name": name,
        "rows": int(labels.shape[0]),
        "benign_rows": int(benign.sum()),
        "any_head_fpr": _rate(false_flag[benign].any(axis=1)) if benign.any() else None,
        "heads": heads,
        "false_positive_rows": len(fp_rows),
        "top_false_positives": top_fp,
    }


def label_matrix(rows: Sequence[Any], label_names: Sequence[str]) -> np.ndarray:
    """[n, L] int8 of 1 / 0 / -1 (unknown) from dataset Rows."""
    out = np.full((len(rows), len(label_names)), -1, dtype=np.int8)
    for i, row in enumerate(rows):
        for j, head in enumerate(label_names):
            v = row.labels.get(head)
            if v is not None:
                out[i, j] = int(v)
    return out


def score_external(
    classifier: Any,
    spec: Any,
    data_dir: str | Path,
    thresholds: Mapping[str, float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    registry: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read one external source, score it with a HarmClassifier (calibrated, batched) and evaluate it."""
    from harmscan.classifiers.calibration import apply_calibration
    from harmscan.eval.scores import predict_logits
    from harmscan.training.dataset import read_external

    names = list(classifier.labels)
    ext = read_external(spec, Path(data_dir), names, dict(registry) if registry is not None else None)
    if not ext.rows:
        raise DataError(f"external source {spec.name}: no row labels any of the bundle's heads ({', '.join(names)})")
    texts = [r.text for r in ext.rows]
    logits = predict_logits(classifier, texts, progress and sys.stderr.isatty(), desc=f"external {spec.name}")
    probs = apply_calibration(logits, classifier.bundle.calibration, names)
    result = evaluate_external(
        spec.name, label_matrix(ext.rows, names), probs, names, thresholds, texts=texts, index=ext.index,
        ids=ext.ids, n_boot=n_boot, seed=seed,
    )
    src = ext.source
    result.update({
        "kind": src.kind, "licence": src.licence, "commercial_use": src.commercial_use,
        "eval_only": bool(getattr(src, "eval_only", False)), "origin": src.origin, "commit": src.commit,
        "cap": ext.cap, "rows_read": ext.rows_read,
    })
    return result


def trained_sources(classifier: Any) -> set[str]:
    """The sources a bundle's training data came from (its manifest's training record), if it says; none
    for a classifier without a bundle (a test double)."""
    info = getattr(getattr(classifier, "bundle", None), "info", None)
    return set((info.training.get("sources") if info is not None else None) or {})


def run_external(
    classifier: Any,
    specs: Sequence[Any],
    data_dir: str | Path | None,
    thresholds: Mapping[str, float],
    *,
    origin: str,
    dataset_summary: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """(section, skip reason, warnings): every source scored, or why none could be.

    A source that cannot be read (folder missing, file corrupt) is listed under `unavailable` with the
    one-line reason; the section is skipped only when no source could be scored.
    """
    from harmscan.training.sources import all_sources

    if not specs:
        return None, (
            "no external sources: the dataset's recipe names none (`external:`) and none were given "
            "(--external-sources NAME,...)"
        ), []
    root = _data_root(data_dir)
    if root is None or not root.is_dir():
        return None, (
            f"data directory {root} does not exist, so the external sources "
            f"({', '.join(s.name for s in specs)}) cannot be read: pass --data-dir or set $HARMSCAN_DATA_DIR"
        ), []
    registry = all_sources()
    trained = trained_sources(classifier)
    dropped = (dataset_summary or {}).get("external") or {}
    warnings: list[str] = []
    scored: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    for spec in specs:
        try:
            result = score_external(classifier, spec, root, thresholds, n_boot=n_boot, seed=seed,
                                    progress=progress, registry=registry)
        except DataError as exc:
            unavailable[spec.name] = str(exc)
            log.warning("external source %s not scored: %s", spec.name, exc)
            continue
        result["trained_on"] = spec.name in trained
        if result["trained_on"]:
            warnings.append(f"external source {spec.name} is among this bundle's training sources: its figures "
                            "are in-domain, not external")
        if spec.name in dropped:
            result["dropped_duplicates"] = dropped[spec.name].get("dropped_duplicates")
        scored.append(result)
    if not scored:
        first = next(iter(unavailable.values()))
        return None, f"no external source could be read ({len(unavailable)} tried): {first}", warnings
    section = {
        "origin": origin,
        "data_dir": str(root),
        "thresholds": {k: float(v) for k, v in thresholds.items()},
        "sources": scored,
        "unavailable": unavailable,
    }
    return section, None, warnings


def check_names(specs: Sequence[Any]) -> None:
    """Fail before any scoring when a source name given on the command line is not in the registry."""
    from harmscan.training.sources import all_sources

    registry = all_sources()
    unknown = [s.name for s in specs if s.name not in registry]
    if unknown:
        raise InputError(
            f"unknown external source(s) {', '.join(unknown)}; known sources: {', '.join(sorted(registry))}"
        )


def _data_root(data_dir: str | Path | None) -> Path | None:
    try:
        from harmscan.training.datadir import resolve_data_dir

        return resolve_data_dir(data_dir, must_exist=False)
    except ImportError:  # pragma: no cover - the training package ships with harmscan
        return Path(data_dir) if data_dir else None


def headline_figures(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The external figures the headline leads with: the worst any-head FPR on benign rows over the
    sources, then per source its AUPRC per head (and its own any-head FPR)."""
    out: dict[str, Any] = {}
    sources = (section or {}).get("sources") or []
    benign = [s for s in sources if s.get("any_head_fpr") and s["any_head_fpr"].get("value") is not None]
    if benign:
        worst = max(benign, key=lambda s: s["any_head_fpr"]["value"])
        out["external_worst_benign_fpr"] = {worst["name"]: worst["any_head_fpr"]["value"]}
    for s in sources:
        cells: dict[str, Any] = {}
        if s.get("any_head_fpr") and s["any_head_fpr"].get("value") is not None:
            cells["any_head_fpr"] = s["any_head_fpr"]["value"]
        for head, h in (s.get("heads") or {}).items():
            if h.get("auprc"):
                cells[f"auprc_{head}"] = h["auprc"]["value"]
        out[f"external:{s['name']}"] = cells
    return out
