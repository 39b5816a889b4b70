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
    steps: int | None = None,
    control: bool = False,
    limit: int = 5000,
    in_domain_model: Path | None = None,
    in_domain_dataset: Path | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the recipe without each source (the same budget each) and score the held-out source.

    The budget is `steps` optimiser steps when given (the same model on every run of one machine), else
    `minutes` of training (the step count then follows the machine's speed). `control` also trains the
    whole recipe on the same budget, and scores it and each held-out model on that source's rows of the
    recipe's test split: the same rows and steps, with and without the source, a controlled comparison.
    """
    from harmscan.training.dataset import build_dataset, load_built
    from harmscan.training.trainer import masked_metrics, train

    heads = load_taxonomy().names
    names = [s.name for s in recipe.sources]
    unknown = [s for s in sources if s not in names]
    if unknown:
        raise DataError(f"LOSO sources {unknown} are not in recipe {recipe.name} ({', '.join(names)})")
    if steps is not None and steps < 1:
        raise DataError(f"LOSO --steps must be at least 1, got {steps}")
    # A step budget runs whole (no wall-clock stop), so the result does not depend on the machine's load.
    budget: dict[str, Any] = {"max_train_minutes": None} if steps else {"max_train_minutes": minutes}
    results: dict[str, Any] = {
        "recipe": recipe.name, "minutes_per_run": None if steps else minutes, "steps_per_run": steps,
        "steps": {}, "sources": {},
    }
    work = Path(work_dir or tempfile.mkdtemp(prefix="harmscan-loso-"))

    def run(sub: Recipe, tag: str) -> tuple[Path, Path]:
        ds = build_dataset(sub, data_dir, work / f"data-{tag}")
        model = work / f"model-{tag}"
        summary = train(ds, model, recipe=sub, max_steps=steps)
        results["steps"][tag] = summary.get("metrics", {}).get("steps")
        return ds, model

    def score(model: Path, rows: Any) -> dict[str, float]:
        logits = _score_texts(model, rows["text"], recipe.max_length)
        return masked_metrics(logits, np.asarray(rows["labels"]), np.asarray(rows["label_mask"]), heads)

    control_model, control_test = None, None
    if control:
        log.info("LOSO: training %s with every source (the control, same budget)", recipe.name)
        ds, control_model = run(replace(recipe, name=f"{recipe.name}-control", train={**recipe.train, **budget}),
                                "control")
        control_test = load_built(ds)[0]["test"]
    in_domain_test = load_built(in_domain_dataset)[0]["test"] if in_domain_model and in_domain_dataset else None
    for source in sources:
        log.info("LOSO: training %s without %s", recipe.name, source)
        sub = replace(
            recipe,
            name=f"{recipe.name}-without-{source}",
            sources=tuple(s for s in recipe.sources if s.name != source),
            train={**recipe.train, **budget},
        )
        _, model = run(sub, source)
        texts, labels, mask = held_out_rows(source, data_dir, heads, limit)
        logits = _score_texts(model, texts, recipe.max_length)
        entry: dict[str, Any] = {"rows": len(texts), "held_out": masked_metrics(logits, labels, mask, heads)}
        if control_model is not None and control_test is not None:
            rows = control_test.filter(lambda r, s=source: r["source"] == s)
            if len(rows):
                entry["test_rows"] = len(rows)
                entry["test_without"], entry["test_with"] = score(model, rows), score(control_model, rows)
        if in_domain_model is not None and in_domain_test is not None:
            rows = in_domain_test.filter(lambda r, s=source: r["source"] == s)
            if len(rows):
                entry["in_domain_test"] = score(in_domain_model, rows)
        results["sources"][source] = entry
    return results


def format_loso(results: dict[str, Any], heads: Sequence[str]) -> str:
    budget = (f"{results['steps_per_run']} optimiser steps" if results.get("steps_per_run")
              else f"{results['minutes_per_run']} min of training")
    lines = [
        f"Leave-one-source-out, recipe `{results['recipe']}`, {budget} per run.",
        "",
        "| held-out source | head | rows (positives) | AUPRC held out | ROC-AUC held out | test rows (positives) "
        "| test AUPRC, trained without | test AUPRC, trained with (same budget) | test AUPRC, full model |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]

    def cell(entry: dict[str, Any], key: str, h: str) -> str:
        value = entry.get(key, {}).get(f"auprc_{h}")
        return "" if value is None else f"{value:.3f}"

    for source, entry in results["sources"].items():
        ho = entry["held_out"]
        for h in heads:
            if f"auprc_{h}" not in ho:
                continue
            pos = ho.get(f"positives_{h}")
            test: dict[str, Any] = next(
                (entry[k] for k in ("test_with", "in_domain_test") if f"positives_{h}" in entry.get(k, {})), {}
            )
            test_rows = f"{int(test[f'positives_{h}'])}" if test else ""
            lines.append(
                f"| {source} | {h} | {entry['rows']}{'' if pos is None else f' ({int(pos)})'} | {ho[f'auprc_{h}']:.3f} | "
                f"{ho[f'roc_auc_{h}']:.3f} | {entry.get('test_rows', '')}{f' ({test_rows})' if test_rows else ''} | "
                f"{cell(entry, 'test_without', h)} | {cell(entry, 'test_with', h)} | {cell(entry, 'in_domain_test', h)} |"
            )
    return "\n".join(lines)


def save_loso(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
