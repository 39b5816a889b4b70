"""Leave-one-source-out generalisation: train without a source, score that source.

In-domain validation flatters a model: tweets are scored by a model trained on the same crawl. Holding a
whole source out asks the question users care about — how does the model do on text from somewhere it has
never seen? Each run trains the recipe minus one source (same budget for every run) and reports the
held-out source's AUPRC per head next to the in-domain figure from the full recipe's test split.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import DataError, require
from harmscan.labels import load_taxonomy
from harmscan.text import normalize_text
from harmscan.training.modeling import load_classifier
from harmscan.training.recipe import Recipe

log = logging.getLogger(__name__)

DEFAULT_HELD_OUT = ("gab_hate_corpus", "toxic_spans", "ailuminate_demo", "purplellama_cyberseceval")


def _score_texts(model_dir: Path, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = load_classifier(model_dir)
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tok([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            out[idx] = model(**enc).logits.numpy()
    return out


def held_out_rows(source: str, data_dir: Path, heads: Sequence[str], limit: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    from harmscan.training.sources import iter_examples

    texts, labels, mask = [], [], []
    seen: set[str] = set()
    for ex in iter_examples(source, data_dir):
        text = normalize_text(ex.text)
        if not text or text in seen or all(ex.labels.get(h) is None for h in heads):
            continue
        seen.add(text)
        texts.append(text)
        labels.append([float(ex.labels.get(h) or 0) for h in heads])
        mask.append([0.0 if ex.labels.get(h) is None else 1.0 for h in heads])
    rng = np.random.default_rng(0)
    idx = np.arange(len(texts))
    if len(idx) > limit:
        idx = np.sort(rng.choice(idx, size=limit, replace=False))
    return [texts[i] for i in idx], np.asarray(labels)[idx], np.asarray(mask)[idx]


def leave_one_source_out(
    recipe: Recipe,
    data_dir: Path,
    sources: Sequence[str] = DEFAULT_HELD_OUT,
    *,
    minutes: float = 5.0,
    limit: int = 5000,
    in_domain_model: Path | None = None,
    in_domain_dataset: Path | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the recipe without each source (a fixed time budget each) and score the held-out source."""
    from harmscan.training.dataset import build_dataset, load_built
    from harmscan.training.trainer import masked_metrics, train

    heads = load_taxonomy().names
    names = [s.name for s in recipe.sources]
    unknown = [s for s in sources if s not in names]
    if unknown:
        raise DataError(f"LOSO sources {unknown} are not in recipe {recipe.name} ({', '.join(names)})")
    results: dict[str, Any] = {"recipe": recipe.name, "minutes_per_run": minutes, "sources": {}}
    work = Path(work_dir or tempfile.mkdtemp(prefix="harmscan-loso-"))
    for source in sources:
        log.info("LOSO: training %s without %s", recipe.name, source)
        sub = replace(
            recipe,
            name=f"{recipe.name}-without-{source}",
            sources=tuple(s for s in recipe.sources if s.name != source),
            train={**recipe.train, "max_train_minutes": minutes},
        )
        ds = build_dataset(sub, data_dir, work / f"data-{source}")
        model = work / f"model-{source}"
        train(ds, model, recipe=sub)
        texts, labels, mask = held_out_rows(source, data_dir, heads, limit)
        logits = _score_texts(model, texts, recipe.max_length)
        entry: dict[str, Any] = {"rows": len(texts), "held_out": masked_metrics(logits, labels, mask, heads)}
        if in_domain_model and in_domain_dataset:
            dd, _ = load_built(in_domain_dataset)
            test = dd["test"].filter(lambda r, s=source: r["source"] == s)
            if len(test):
                lg = _score_texts(in_domain_model, test["text"], recipe.max_length)
                entry["in_domain_test"] = masked_metrics(
                    lg, np.asarray(test["labels"]), np.asarray(test["label_mask"]), heads
                )
        results["sources"][source] = entry
    return results


def format_loso(results: dict[str, Any], heads: Sequence[str]) -> str:
    lines = [
        f"Leave-one-source-out, recipe `{results['recipe']}`, {results['minutes_per_run']} min of training per run.",
        "",
        "| held-out source | rows | head | AUPRC held out | AUPRC in-domain test | ROC-AUC held out |",
        "|---|---|---|---|---|---|",
    ]
    for source, entry in results["sources"].items():
        for h in heads:
            ho = entry["held_out"]
            if f"auprc_{h}" not in ho:
                continue
            ind = entry.get("in_domain_test", {}).get(f"auprc_{h}")
            lines.append(
                f"| {source} | {entry['rows']} | {h} | {ho[f'auprc_{h}']:.3f} | "
                f"{'' if ind is None else f'{ind:.3f}'} | {ho[f'roc_auc_{h}']:.3f} |"
            )
    return "\n".join(lines)


def save_loso(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
