"""`harmscan redteam` end to end: read held-out harmful texts (a built dataset's test split or a labelled
file), attack a bundle with `harmscan.eval.redteam`, and write

    report.json / report.md        ASR per label x recipe, queries per success, examples
    adversarial.jsonl              the successful texts: text, one 0/1 (null = unknown) column per label,
                                   recipe, attacked_label, scores, source_sha256 (of the original text)
    redteam_adversarial.yaml       a user-source entry reading that JSONL (docs/data.md "Adding a source"),
                                   so a recipe can train on it: point $HARMSCAN_SOURCES at the folder
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import DataError, InputError
from harmscan.eval import attacks
from harmscan.eval.neighbours import DEFAULT_MIN_SIMILARITY
from harmscan.eval.redteam import (
    DEFAULT_MAX_TEXTS,
    DEFAULT_QUERIES,
    adversarial_rows,
    run_redteam,
    select_targets,
    summarise,
)

SOURCE_NAME = "redteam_adversarial"


def source_stanza(jsonl: Path, labels: Sequence[str], commercial_use: bool, origin: str) -> dict[str, Any]:
    """A user-source entry (docs/data.md "Adding a source") that reads adversarial.jsonl."""
    return {
        "name": SOURCE_NAME,
        "title": "Adversarial texts found by harmscan redteam",
        "kind": "comments",
        "origin": origin,
        "licence": "inherits the licences of the attacked data",
        "commercial_use": commercial_use,
        "mapping": "labels kept from the attacked text (the recipes keep its meaning); null = unknown.",
        "files": [{"path": str(jsonl.resolve())}],
        "format": "jsonl",
        "text_field": "text",
        "labels": {n: {"field": n, "positive": [1], "negative": [0]} for n in labels},
    }


# -- the command -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: np.ndarray  # [n, L] 0/1
    mask: np.ndarray  # [n, L] bool
    sources: list[str]
    description: str
    commercial_use: bool


def load_texts(data: str | Path, label_names: Sequence[str], split: str = "test") -> LabelledTexts:
    """A built dataset's split (never train) or a labelled CSV / TSV / JSONL / Parquet file."""
    path = Path(data)
    names = list(label_names)
    if path.is_dir():
        if split == "train":
            raise InputError("redteam attacks held-out texts only: pick --split test or validation, not train")
        from harmscan.eval.scores import load_split

        ds = load_split(path, split, names)
        summary = path / "harmscan_data.json"
        commercial = False
        if summary.is_file():
            recipe = json.loads(summary.read_text(encoding="utf-8")).get("recipe") or {}
            commercial = bool(recipe.get("commercial", False))
        labels = np.asarray(ds["labels"], dtype=np.float32).reshape(len(ds), len(names))
        mask = np.asarray(ds["label_mask"], dtype=np.float32).reshape(len(ds), len(names)) > 0.5
        return LabelledTexts(list(ds["text"]), (labels > 0.5).astype(np.int8), mask, list(ds["source"]),
                             f"{path} ({split} split)", commercial)
    if not path.exists():
        raise InputError(f"--data {path} does not exist: pass a dataset folder or a labelled CSV / JSONL file")
    from harmscan.eval.labelled import read_labelled

    lf = read_labelled(path, names, need_text=True, require_both_classes=False)
    assert lf.texts is not None
    return LabelledTexts(lf.texts, lf.labels, lf.mask, [path.name] * len(lf), str(path), False)


def redteam_bundle(
    bundle: str | Path,
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    recipes: Sequence[str] = attacks.RECIPES,
    max_texts: int = DEFAULT_MAX_TEXTS,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    templates: str | Path | None = None,
    variant: str = "auto",
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load the bundle and the data, attack, and write the report, the JSONL and its source stanza."""
    from harmscan.classifiers.classifier import HarmClassifier

    start = time.perf_counter()
    if max_texts < 1:
        raise InputError(f"--max-texts must be at least 1, got {max_texts}")
    clf = HarmClassifier.load(bundle, variant=variant, threads=threads)
    loaded = load_texts(data, clf.labels, split)
    if not loaded.texts:
        raise DataError(f"{loaded.description} holds no text to attack")
    template_list = read_templates(templates) if templates else None
    neighbours = None
    if "word_substitution" in recipes and "fp32" in clf.bundle.variants:
        from harmscan.eval.neighbours import EmbeddingNeighbours

        neighbours = EmbeddingNeighbours.from_bundle(clf.bundle)
    targets, counts = select_targets(clf, loaded.texts, loaded.labels, loaded.mask, sources=loaded.sources,
                                     max_texts=max_texts, seed=seed, progress=progress)
    if not targets:
        positives = ", ".join(f"{k} {v['positives']}" for k, v in counts.items())
        raise DataError(
            f"{loaded.description}: no known-harmful text that the bundle flags, so nothing to attack "
            f"(known positives per label: {positives})"
        )
    result = run_redteam(clf, targets, recipes=recipes, queries=queries, seed=seed, neighbours=neighbours,
                         min_similarity=min_similarity, templates=template_list, progress=progress)
    report = {
        "bundle": str(bundle), "variant": clf.variant, "data": loaded.description,
        "thresholds": {n: float(clf.policy.thresholds[n]) for n in clf.labels},
        "budget": {"max_texts_per_label": max_texts, "queries_per_attack": queries, "seed": seed,
                   "min_similarity": min_similarity},
        "recipes": list(recipes), **summarise(result, counts),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "adversarial.jsonl"
    rows = adversarial_rows(result)
    with open(jsonl, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    import yaml

    stanza = source_stanza(jsonl, clf.labels, loaded.commercial_use, f"harmscan redteam on {loaded.description}")
    (out / f"{SOURCE_NAME}.yaml").write_text(yaml.safe_dump(stanza, sort_keys=False), encoding="utf-8")
    report["adversarial_rows"] = len(rows)
    report["queries_total"] = int(sum(a.queries for a in result.attacks))
    report["wall_s"] = round(time.perf_counter() - start, 1)
    from harmscan.eval.jsonutil import dump

    dump(report, out / "report.json")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return {"report": report, "paths": {"json": out / "report.json", "markdown": out / "report.md",
                                        "adversarial": jsonl, "source": out / f"{SOURCE_NAME}.yaml"}}


def read_templates(path: str | Path) -> list[str]:
    """Jailbreak templates: a text file (one template a line) or a CSV / TSV / JSONL with a `template` or
    `prompt` column (the jailbreak_llms CSV has `prompt`). `{payload}` marks where the text goes; a template
    without it gets the text appended."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--templates {path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".jsonl"):
        import csv

        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                if suffix == ".jsonl":
                    rows = [json.loads(line) for line in fh if line.strip()]
                else:
                    rows = list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
        except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
            raise InputError(f"--templates {path} cannot be read: {' '.join(str(exc).split())}") from None
        col = next((c for c in ("template", "prompt") if rows and isinstance(rows[0], dict) and c in rows[0]), None)
        if col is None:
            raise InputError(f"--templates {path}: needs a 'template' or 'prompt' column")
        out = [str(r[col]).strip() for r in rows if r.get(col) and str(r[col]).strip()]
    else:
        out = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not out:
        raise InputError(f"--templates {path} holds no template")
    return out


def render_markdown(report: Mapping[str, Any]) -> str:
    recipes = [r for r in report["recipes"] if r in report["overall"]]
    lines = [
        "# harmscan redteam", "",
        f"- bundle: `{report['bundle']}` ({report['variant']})", f"- data: {report['data']}",
        f"- budget: {report['budget']['queries_per_attack']} queries per text and recipe, at most "
        f"{report['budget']['max_texts_per_label']} texts per label, seed {report['budget']['seed']}",
        f"- thresholds: {', '.join(f'{k} {v:.3f}' for k, v in report['thresholds'].items())}",
        "", "ASR = texts evaded / texts attacked (known harmful, flagged before the attack); "
        "q/success = mean queries of the successful attacks.", "",
        "## Attack success rate", "",
        "| label | attacked | " + " | ".join(recipes) + " |",
        "|---|---|" + "---|" * len(recipes),
    ]
    for name, row in report["asr"].items():
        n = max((c["attacked"] for c in row.values()), default=0)
        cells = [_asr_cell(row[r]) for r in recipes]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    lines.append("| **all** | | " + " | ".join(_asr_cell(report["overall"][r]) for r in recipes) + " |")
    for recipe, why in report.get("skipped_recipes", {}).items():
        lines.append(f"\n{recipe}: not run ({why})")
    lines += ["", "## Examples (original score → adversarial score)", ""]
    for recipe, exs in report["examples"].items():
        for ex in exs:
            lines.append(f"- **{recipe}**, {ex['label']}: {ex['original_score']:.3f} → "
                         f"{ex['adversarial_score']:.3f} ({ex['queries']} queries)  ")
            lines.append(f"  original: {_md_quote(ex['original'])}  ")
            lines.append(f"  adversarial: {_md_quote(ex['adversarial'])}")
    lines += ["", f"{report.get('adversarial_rows', 0)} adversarial texts written to adversarial.jsonl; train "
              f"on them by pointing $HARMSCAN_SOURCES at this folder ({SOURCE_NAME}.yaml, docs/redteam.md).", ""]
    return "\n".join(lines)


def _asr_cell(c: Mapping[str, Any]) -> str:
    if not c["attacked"]:
        return "–"
    q = c["queries_per_success"]
    return f"{c['asr']:.0%} ({c['evaded']}/{c['attacked']}" + (f", {q:.0f} q/success)" if q is not None else ")")


def _md_quote(text: str) -> str:
    return "`" + " ".join(text.split()).replace("`", "'") + "`"
