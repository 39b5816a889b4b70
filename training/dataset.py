"""Build train / validation / test splits from a recipe.

Steps, each explicit because each changes what the model learns:
1. read every source of the recipe from the data dir (hashes verified), drop heads the recipe ignores;
2. normalise the text with `harmscan.text.normalize_text` (the same function inference uses);
3. dedup exactly and on a normalised key across sources; conflicting labels are resolved per head by the
   rule POSITIVE_WINS: a known 1 beats a known 0, a known label beats unknown. Most negatives in these
   sources are presumed by genre (a crisis tweet, a Wikipedia paragraph), while positives were labelled
   on purpose; so a row that one source marks harmful stays harmful;
4. cap each source (keeping thin-head positives first) and assign splits stratified by source and label
   signature, deterministically from the seed;
5. add augmentation to the train split only (behavioural-suite train templates, obfuscated copies of
   positives), so validation and test stay pure data.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmscan.errors import DataError
from harmscan.labels import Taxonomy, load_taxonomy
from harmscan.text import dedup_key, normalize_text
from harmscan.training.recipe import Recipe

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
DATA_SUMMARY = "harmscan_data.json"
CONFLICT_RULE = "positive_wins"
# Heads with few positives: capping keeps their positives first.
THIN_HEADS = ("violence", "illegal_advice")
MAX_CHARS = 4000  # longer rows are cut for training (inference windows long texts in full)


@dataclass
class Row:
    text: str
    key: str
    labels: dict[str, int | None]
    source: str
    weight: float
    also_in: set[str] = field(default_factory=set)

    def signature(self, heads: Sequence[str]) -> tuple[int | None, ...]:
        return tuple(self.labels.get(h) for h in heads)


def merge_labels(a: dict[str, int | None], b: dict[str, int | None], heads: Sequence[str]) -> dict[str, int | None]:
    """POSITIVE_WINS: per head, 1 beats 0 beats unknown."""
    out: dict[str, int | None] = {}
    for h in heads:
        known = [v for v in (a.get(h), b.get(h)) if v is not None]
        out[h] = max(known) if known else None
    return out


def read_recipe_sources(recipe: Recipe, data_dir: Path, taxonomy: Taxonomy) -> tuple[list[Row], dict[str, Any]]:
    from harmscan.training.sources import all_sources, iter_examples

    registry = all_sources()
    heads = taxonomy.names
    rows: list[Row] = []
    info: dict[str, Any] = {}
    for spec in recipe.sources:
        if spec.name not in registry:
            raise DataError(
                f"recipe {recipe.path}: unknown source {spec.name!r}; known sources: {', '.join(sorted(registry))}"
            )
        source = registry[spec.name]
        if recipe.commercial and not source.commercial_use:
            raise DataError(
                f"recipe {recipe.path} is marked commercial but source {spec.name!r} is licensed "
                f"{source.licence} (non-commercial): remove it or set `commercial: false`"
            )
        n = 0
        for ex in iter_examples(source, data_dir):
            text = normalize_text(ex.text)[:MAX_CHARS]
            if not text:
                continue
            labels = {h: (None if h in spec.drop_heads else ex.labels.get(h)) for h in heads}
            if all(v is None for v in labels.values()):
                continue  # a row that labels no head adds no loss and no metric
            rows.append(Row(text, dedup_key(text), labels, spec.name, spec.weight))
            n += 1
        info[spec.name] = {
            "licence": source.licence,
            "commercial_use": source.commercial_use,
            "origin": source.origin,
            "commit": source.commit,
            "rows_read": n,
        }
        log.info("read %s: %d rows", spec.name, n)
    return rows, info


def dedup(rows: Iterable[Row], heads: Sequence[str]) -> tuple[list[Row], dict[str, int]]:
    by_key: dict[str, Row] = {}
    stats: Counter[str] = Counter()
    for row in rows:
        if not row.key:
            stats["empty_key"] += 1
            continue
        first = by_key.get(row.key)
        if first is None:
            by_key[row.key] = row
            continue
        stats["duplicates"] += 1
        if row.source != first.source:
            stats["cross_source_duplicates"] += 1
            first.also_in.add(row.source)
        merged = merge_labels(first.labels, row.labels, heads)
        if any(
            first.labels.get(h) is not None and row.labels.get(h) is not None and first.labels[h] != row.labels[h]
            for h in heads
        ):
            stats["label_conflicts"] += 1
        first.labels = merged
        first.weight = max(first.weight, row.weight)
    return list(by_key.values()), dict(stats)


def cap_rows(rows: list[Row], cap: int | None, rng: random.Random) -> list[Row]:
    if cap is None or len(rows) <= cap:
        return rows
    thin = [r for r in rows if any(r.labels.get(h) == 1 for h in THIN_HEADS)]
    rest = [r for r in rows if not any(r.labels.get(h) == 1 for h in THIN_HEADS)]
    rng.shuffle(thin)
    rng.shuffle(rest)
    return (thin + rest)[:cap]


def assign_splits(rows: list[Row], heads: Sequence[str], fractions: dict[str, float], seed: int) -> dict[str, list[Row]]:
    """Stratified by (source, label signature): every stratum is split in the same proportions."""
    strata: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        strata[(row.source, row.signature(heads))].append(row)
    out: dict[str, list[Row]] = {s: [] for s in SPLITS}
    val_f, test_f = fractions.get("validation", 0.1), fractions.get("test", 0.1)
    for stratum_key in sorted(strata, key=repr):
        members = sorted(strata[stratum_key], key=lambda r: r.key)
        random.Random(f"{seed}:{stratum_key!r}").shuffle(members)
        n = len(members)
        # Largest-remainder rounding with a random offset so tiny strata still reach val/test sometimes.
        offset = random.Random(f"{seed}:{stratum_key!r}:o").random()
        n_test = int(n * test_f + offset)
        n_val = int(n * val_f + (1 - offset))
        n_test = min(n_test, n)
        n_val = min(n_val, n - n_test)
        out["test"].extend(members[:n_test])
        out["validation"].extend(members[n_test : n_test + n_val])
        out["train"].extend(members[n_test + n_val :])
    return out


def augmentation_rows(recipe: Recipe, train: list[Row], heads: Sequence[str], exclude: set[str], seed: int) -> list[Row]:
    aug = recipe.augment or {}
    rows: list[Row] = []
    suite_cfg = aug.get("suite_train")
    if suite_cfg:
        from harmscan.eval.suite import training_examples

        cfg = suite_cfg if isinstance(suite_cfg, dict) else {}
        weight = float(cfg.get("weight", 1.0))
        per_template = int(cfg["per_template"]) if cfg.get("per_template") else None
        for ex in training_examples(seed=seed, per_template=per_template):
            text = normalize_text(ex.text)
            key = dedup_key(text)
            if key and key not in exclude:
                rows.append(Row(text, key, {h: ex.labels.get(h) for h in heads}, "suite_train", weight))
    obf_cfg = aug.get("obfuscation")
    if obf_cfg:
        from harmscan.eval.obfuscate import augment_obfuscations
        from harmscan.training.sources import Example

        rate = float(obf_cfg.get("rate", 0.1))
        positives = [r for r in train + rows if any(v == 1 for v in r.labels.values())]
        base = [Example(text=r.text, labels=dict(r.labels), source=r.source) for r in positives]
        weights = {r.text: r.weight for r in positives}
        for ex in augment_obfuscations(base, rate=rate, seed=seed):
            text = normalize_text(ex.text)
            key = dedup_key(text)
            if key and key not in exclude:
                weight = weights.get(ex.meta.get("plain_text", ""), 1.0)
                rows.append(Row(text, key, dict(ex.labels), "augment_obfuscation", weight))
    return rows


def _suite_held_out_keys() -> set[str]:
    try:
        from harmscan.eval.suite import held_out_keys
    except ImportError:  # pragma: no cover - the suite ships with harmscan
        return set()
    return set(held_out_keys())


def build_rows(recipe: Recipe, data_dir: Path, taxonomy: Taxonomy | None = None) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    taxonomy = taxonomy or load_taxonomy()
    heads = taxonomy.names
    seed = int(recipe.split.get("seed", 13))
    rows, source_info = read_recipe_sources(recipe, data_dir, taxonomy)
    rows, dedup_stats = dedup(rows, heads)
    # The behavioural suite's test templates are held out: no row equal to one may feed training or tuning.
    held_out_suite = _suite_held_out_keys()
    before = len(rows)
    rows = [r for r in rows if r.key not in held_out_suite]
    dedup_stats["dropped_suite_test_cases"] = before - len(rows)
    by_source: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_source[row.source].append(row)
    rng = random.Random(seed)
    kept: list[Row] = []
    for spec in recipe.sources:
        kept.extend(cap_rows(by_source.get(spec.name, []), spec.cap, rng))
    splits = assign_splits(kept, heads, recipe.split, seed)
    held_out = {r.key for s in ("validation", "test") for r in splits[s]}
    extra = augmentation_rows(recipe, splits["train"], heads, held_out | {r.key for r in splits["train"]}, seed)
    splits["train"].extend(extra)
    summary = {
        "recipe": recipe.to_dict(),
        "labels": taxonomy.to_list(),
        "conflict_rule": CONFLICT_RULE,
        "dedup": dedup_stats,
        "sources": source_info,
        "commercial_use": all(i["commercial_use"] for i in source_info.values()),
        "counts": {s: count_labels(splits[s], heads) for s in SPLITS},
        "augmentation_rows": len(extra),
    }
    return splits, summary


def count_labels(rows: Sequence[Row], heads: Sequence[str]) -> dict[str, Any]:
    per_source: dict[str, dict[str, list[int]]] = defaultdict(lambda: {h: [0, 0, 0] for h in heads})
    for row in rows:
        counts = per_source[row.source]
        for h in heads:
            v = row.labels.get(h)
            counts[h][0 if v == 1 else 1 if v == 0 else 2] += 1
    return {
        "rows": len(rows),
        "per_source": {
            src: {h: {"pos": c[0], "neg": c[1], "unknown": c[2]} for h, c in heads_counts.items()}
            for src, heads_counts in sorted(per_source.items())
        },
    }


def rows_to_columns(rows: Sequence[Row], heads: Sequence[str]) -> dict[str, list[Any]]:
    return {
        "text": [r.text for r in rows],
        "labels": [[float(r.labels.get(h) or 0) for h in heads] for r in rows],
        "label_mask": [[0.0 if r.labels.get(h) is None else 1.0 for h in heads] for r in rows],
        "source": [r.source for r in rows],
        "weight": [float(r.weight) for r in rows],
    }


def build_dataset(recipe: Recipe, data_dir: Path, out_dir: Path, taxonomy: Taxonomy | None = None) -> Path:
    """Build the recipe's splits and save them as a `datasets.DatasetDict` in out_dir."""
    from harmscan.errors import require

    datasets = require("datasets", "train")
    taxonomy = taxonomy or load_taxonomy()
    splits, summary = build_rows(recipe, Path(data_dir), taxonomy)
    heads = taxonomy.names
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.Value("float32"), length=len(heads)),
            "label_mask": datasets.Sequence(datasets.Value("float32"), length=len(heads)),
            "source": datasets.Value("string"),
            "weight": datasets.Value("float32"),
        }
    )
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(rows_to_columns(splits[s], heads), features=features) for s in SPLITS}
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dd.save_to_disk(str(out_dir))
    (out_dir / DATA_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("dataset %s: %s", out_dir, {s: len(dd[s]) for s in SPLITS})
    return out_dir


def load_built(dataset_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Load a dataset written by build_dataset, with its summary; one-line error when it is not one."""
    from harmscan.errors import require

    datasets = require("datasets", "train")
    dataset_dir = Path(dataset_dir)
    summary_path = dataset_dir / DATA_SUMMARY
    if not summary_path.is_file():
        raise DataError(
            f"{dataset_dir} is not a dataset built by `harmscan data build` ({DATA_SUMMARY} is missing)"
        )
    return datasets.load_from_disk(str(dataset_dir)), json.loads(summary_path.read_text(encoding="utf-8"))
