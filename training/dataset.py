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

A recipe's `external:` sources are read too but never stored: every row of any split, augmentation
included, whose dedup key equals one of theirs is dropped, so no external text is trained on even as
another source's duplicate. `harmscan eval` re-reads them from the data dir (`read_external`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harmscan.errors import DataError
from harmscan.labels import Taxonomy, load_taxonomy
from harmscan.text import dedup_key, normalize_text
from harmscan.training.recipe import ExternalSpec, Recipe

if TYPE_CHECKING:
    from harmscan.training.sources import Example, Source

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
DATA_SUMMARY = "harmscan_data.json"
CONFLICT_RULE = "positive_wins"
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


def example_row(
    ex: Example, heads: Sequence[str], source: str, weight: float = 1.0, drop_heads: Sequence[str] = ()
) -> Row | None:
    """The row a source example becomes (normalised, cut to MAX_CHARS), or None when it is empty or labels
    no head: a row that labels no head adds no loss and no metric."""
    text = normalize_text(ex.text)[:MAX_CHARS]
    if not text:
        return None
    labels = {h: (None if h in drop_heads else ex.labels.get(h)) for h in heads}
    if all(v is None for v in labels.values()):
        return None
    return Row(text, dedup_key(text), labels, source, weight)


@dataclass
class ExternalSet:
    """One external source as it is scored: its labelled rows (deduplicated, capped) in source order."""

    name: str
    source: Source
    rows: list[Row]
    index: list[int]  # each row's position in the source reader's output (to find it upstream)
    ids: list[str]  # the reader's id for the row where it gives one, else ""
    rows_read: int  # labelled, deduplicated rows before the cap
    cap: int | None
    keys: set[str]  # the dedup key of every text of the source, labelled or not, capped or not


def _cap_order(key: str) -> str:
    # A subsample fixed by the texts alone: the same rows on every machine, with any seed and any reader order.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def read_external(
    spec: ExternalSpec, data_dir: Path, heads: Sequence[str], registry: dict[str, Source] | None = None
) -> ExternalSet:
    """Read an external source with the training normalisation and dedup key; cap it deterministically."""
    from harmscan.training.sources import all_sources, iter_examples

    registry = registry if registry is not None else all_sources()
    if spec.name not in registry:
        raise DataError(f"unknown external source {spec.name!r}; known sources: {', '.join(sorted(registry))}")
    source = registry[spec.name]
    by_key: dict[str, int] = {}
    rows: list[Row] = []
    index: list[int] = []
    ids: list[str] = []
    keys: set[str] = set()
    for i, ex in enumerate(iter_examples(source, data_dir)):
        key = dedup_key(normalize_text(ex.text)[:MAX_CHARS])
        if key:
            keys.add(key)
        row = example_row(ex, heads, spec.name)
        if row is None or not row.key:
            continue
        if row.key in by_key:  # a text repeated within the source counts once, labels merged as in training
            first = rows[by_key[row.key]]
            first.labels = merge_labels(first.labels, row.labels, heads)
            continue
        by_key[row.key] = len(rows)
        rows.append(row)
        index.append(i)
        ids.append(str(ex.meta.get("id", "")) if ex.meta else "")
    n = len(rows)
    keep = list(range(n))
    if spec.cap is not None and n > spec.cap:
        keep = sorted(sorted(keep, key=lambda j: _cap_order(rows[j].key))[: spec.cap])
    return ExternalSet(
        spec.name, source, [rows[j] for j in keep], [index[j] for j in keep], [ids[j] for j in keep], n,
        spec.cap, keys,
    )


def read_recipe_sources(recipe: Recipe, data_dir: Path, taxonomy: Taxonomy) -> tuple[list[Row], dict[str, Any]]:
    from harmscan.training.sources import all_sources, iter_examples

    registry = all_sources()
    recipe.check_sources(registry)
    heads = taxonomy.names
    rows: list[Row] = []
    info: dict[str, Any] = {}
    for spec in recipe.sources:
        source = registry[spec.name]
        if recipe.commercial and not source.commercial_use:
            raise DataError(
                f"recipe {recipe.path} is marked commercial but source {spec.name!r} is licensed "
                f"{source.licence} (non-commercial): remove it or set `commercial: false`"
            )
        n = 0
        for ex in iter_examples(source, data_dir):
            row = example_row(ex, heads, spec.name, spec.weight, spec.drop_heads)
            if row is not None:
                rows.append(row)
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


def cap_rows(rows: list[Row], cap: int | None, rng: random.Random, scarce: Sequence[str]) -> list[Row]:
    """At most `cap` rows, positives of the taxonomy's scarce heads (`scarce: true`) first."""
    if cap is None or len(rows) <= cap:
        return rows
    thin = [r for r in rows if any(r.labels.get(h) == 1 for h in scarce)]
    rest = [r for r in rows if not any(r.labels.get(h) == 1 for h in scarce)]
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


def augmentation_rows(
    recipe: Recipe, train: list[Row], heads: Sequence[str], exclude: set[str], seed: int,
    external: Mapping[str, list[str]] | None = None, dropped: dict[str, Counter[str]] | None = None,
) -> list[Row]:
    """Suite templates and obfuscated copies for the train split. A candidate whose key is an external
    source's is left out (and counted in `dropped[external name][augmentation kind]`) before it can seed
    an obfuscated copy."""
    aug = recipe.augment or {}
    rows: list[Row] = []
    external = external or {}

    def is_external(key: str, kind: str) -> bool:
        names = external.get(key)
        if not names:
            return False
        if dropped is not None:
            for name in names:
                dropped[name][kind] += 1
        return True

    suite_cfg = aug.get("suite_train")
    if suite_cfg:
        from harmscan.eval.suite.cases import training_examples

        cfg = suite_cfg if isinstance(suite_cfg, dict) else {}
        weight = float(cfg.get("weight", 1.0))
        per_template = int(cfg["per_template"]) if cfg.get("per_template") else None
        for ex in training_examples(seed=seed, per_template=per_template):
            text = normalize_text(ex.text)
            key = dedup_key(text)
            if key and key not in exclude and not is_external(key, "suite_train"):
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
            if key and key not in exclude and not is_external(key, "augment_obfuscation"):
                weight = weights.get(ex.meta.get("plain_text", ""), 1.0)
                rows.append(Row(text, key, dict(ex.labels), "augment_obfuscation", weight))
    return rows


def _suite_held_out_keys() -> set[str]:
    # The suite ships with harmscan: if it cannot be imported the install is broken, and building without
    # the leak guard would silently train on test cases.
    try:
        from harmscan.eval.suite.cases import held_out_keys
    except ImportError as exc:
        raise DataError(
            f"the behavioural suite (harmscan.eval.suite) cannot be imported ({exc}): its test cases cannot be "
            "held out of training; reinstall harmscan"
        ) from None
    return set(held_out_keys())


def build_rows(recipe: Recipe, data_dir: Path, taxonomy: Taxonomy | None = None) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    taxonomy = taxonomy or load_taxonomy()
    heads = taxonomy.names
    seed = int(recipe.split.get("seed", 13))
    rows, source_info = read_recipe_sources(recipe, data_dir, taxonomy)
    external = read_recipe_external(recipe, data_dir, heads)
    rows, dedup_stats = dedup(rows, heads)
    # External sources are never trained on: no row with one of their keys may feed any split.
    external_keys: dict[str, list[str]] = defaultdict(list)
    for ext in external.values():
        for key in ext.keys:
            external_keys[key].append(ext.name)
    dropped: dict[str, Counter[str]] = {name: Counter() for name in external}
    if external:
        before = len(rows)
        for row in rows:
            for name in external_keys.get(row.key, ()):
                dropped[name][row.source] += 1
        rows = [r for r in rows if r.key not in external_keys]
        dedup_stats["dropped_external_duplicates"] = before - len(rows)
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
        kept.extend(cap_rows(by_source.get(spec.name, []), spec.cap, rng, taxonomy.scarce_names))
    splits = assign_splits(kept, heads, recipe.split, seed)
    held_out = {r.key for s in ("validation", "test") for r in splits[s]}
    extra = augmentation_rows(
        recipe, splits["train"], heads, held_out | {r.key for r in splits["train"]}, seed, external_keys, dropped
    )
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
    if external:  # absent without `external:`, so such a recipe builds the same summary as before
        summary["external"] = {name: external_info(ext, dropped[name]) for name, ext in external.items()}
    return splits, summary


def read_recipe_external(recipe: Recipe, data_dir: Path, heads: Sequence[str]) -> dict[str, ExternalSet]:
    from harmscan.training.sources import all_sources

    registry = all_sources()
    out: dict[str, ExternalSet] = {}
    for spec in recipe.external:
        ext = read_external(spec, data_dir, heads, registry)
        if not ext.rows:
            raise DataError(
                f"recipe {recipe.path}: external source {spec.name!r} has no row labelling any of the heads "
                f"{', '.join(heads)}: it cannot validate anything"
            )
        out[spec.name] = ext
        log.info("external %s: %d rows (%d read)", spec.name, len(ext.rows), ext.rows_read)
    return out


def external_info(ext: ExternalSet, dropped: Counter[str]) -> dict[str, Any]:
    """The summary's record of one external source: what it is, its terms, and what training lost to it."""
    src = ext.source
    return {
        "rows": len(ext.rows),
        "rows_read": ext.rows_read,
        "cap": ext.cap,
        "kind": src.kind,
        "licence": src.licence,
        "commercial_use": src.commercial_use,
        "eval_only": bool(getattr(src, "eval_only", False)),
        "origin": src.origin,
        "commit": src.commit,
        "dropped_duplicates": sum(dropped.values()),
        "dropped_from": dict(sorted(dropped.items())),
    }


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
