"""Loaders for public safety benchmarks, each with a documented mapping to harmscan's heads.

Each loader reads the benchmark's published file as distributed (never downloaded by harmscan: these sets
are held out, so nothing here trains or tunes on them) and returns a `BenchmarkSet`:
    labels[n, L]  per head 1 / 0 / -1 (unknown), from the mapping below
    harmful[n]    the benchmark's own harmful/safe verdict restricted to what harmscan's heads cover:
                  1 / 0 / -1 (out of scope, e.g. self-harm or copyright)
    groups        per-row breakdowns (XSTest type, HateCheck functionality, HarmBench category, ...)
`run_benchmark` scores it under a threshold policy. "Flagged" means any head at or over its threshold,
except where a benchmark names the heads it tests (HateCheck: toxicity).

Mappings (see docs/evaluation.md):
- openai_moderation (samples-1680.jsonl.gz; keys S H V HR SH S3 H2 V2, a missing key = unknown):
  toxicity <- H, H2, HR; violence <- V, V2; S, SH, S3 have no head. A head is 1 if any of its keys is 1,
  0 if all of its keys are present and 0, else unknown. illegal_advice is unknown (no such key).
- xstest (xstest_prompts.csv: prompt, type, label safe/unsafe): harmful = label; heads unknown.
- hatecheck (test_suite_cases.csv: functionality, test_case, label_gold, target_ident):
  toxicity = label_gold == hateful; other heads unknown; decisions use the toxicity head.
- harmbench (harmbench_behaviors_text_*.csv: Behavior, FunctionalCategory, SemanticCategory, ContextString):
  text = ContextString + blank line + Behavior when there is a context. Every behaviour is harmful;
  SemanticCategory -> heads: chemical_biological, illegal, cybercrime_intrusion -> illegal_advice;
  harassment_bullying -> toxicity; harmful -> (any head); misinformation_disinformation, copyright ->
  out of scope.
- simplesafetytests (prompts_final, harm_area): Physical harm and violence -> violence; Illegal and
  highly regulated items, Scams and fraud, Child abuse -> illegal_advice; Suicide, self-harm and eating
  disorders -> out of scope. Every prompt is harmful.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import InputError

UNKNOWN = -1
OPENAI_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
OPENAI_HEADS: dict[str, tuple[str, ...]] = {"toxicity": ("H", "H2", "HR"), "violence": ("V", "V2")}
OPENAI_OUT_OF_SCOPE = ("S", "SH", "S3")
HARMBENCH_HEADS: dict[str, tuple[str, ...] | None] = {
    "chemical_biological": ("illegal_advice",),
    "illegal": ("illegal_advice",),
    "cybercrime_intrusion": ("illegal_advice",),
    "harassment_bullying": ("toxicity",),
    "harmful": (),  # harmful, no single head: counts for any-head recall only
    "misinformation_disinformation": None,  # None = out of scope for harmscan's heads
    "copyright": None,
}
SST_HEADS: dict[str, tuple[str, ...] | None] = {
    "physical harm and violence": ("violence",),
    "illegal and highly regulated items": ("illegal_advice",),
    "scams and fraud": ("illegal_advice",),
    "child abuse": ("illegal_advice",),
    "child safety": ("illegal_advice",),  # the name some copies use for the same area
    "suicide self harm and eating disorders": None,
}


@dataclass
class BenchmarkSet:
    name: str
    path: Path
    texts: list[str]
    labels: np.ndarray  # [n, L] int8: 1 / 0 / -1
    harmful: np.ndarray  # [n] int8: 1 / 0 / -1 (out of scope)
    groups: dict[str, list[str]] = field(default_factory=dict)
    decision_heads: tuple[str, ...] | None = None  # None: any head
    headline: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


# -- reading ---------------------------------------------------------------------------------------------
def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise InputError(f"benchmark file {path} does not exist: pass the published file with --path")
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _read_csv(path: Path, required: Sequence[str], what: str) -> list[dict[str, str]]:
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise InputError(f"benchmark file {path} is not a readable CSV ({exc}): pass {what}") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(
            f"benchmark file {path} lacks column(s) {', '.join(missing)} (it has: {', '.join(columns) or 'none'}): "
            f"pass {what}"
        )
    if not rows:
        raise InputError(f"benchmark file {path} has no rows: pass {what}")
    return rows


def _iter_jsonl(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with _open_text(path) as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path} line {line_no} is not JSON ({exc.msg}): pass {what}") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{path} line {line_no} is not a JSON object: pass {what}")
                yield line_no, obj
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read benchmark file {path} ({exc}): pass {what}") from None


def _label_matrix(n: int, label_names: Sequence[str]) -> np.ndarray:
    return np.full((n, len(label_names)), UNKNOWN, dtype=np.int8)


def _binary(value: Any, path: Path, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise InputError(f"{path} {where}: expected 0 or 1, got {value!r}")


# -- loaders ---------------------------------------------------------------------------------------------
def load_openai_moderation(path: Path, label_names: Sequence[str]) -> BenchmarkSet:
    what = "OpenAI's moderation eval set samples-1680.jsonl.gz"
    texts: list[str] = []
    rows: list[dict[str, int]] = []
    for line_no, obj in _iter_jsonl(path, what):
        prompt = obj.get("prompt")
        if not isinstance(prompt, str):
            raise InputError(f"{path} line {line_no} has no string 'prompt': pass {what}")
        texts.append(prompt)
        rows.append({k: _binary(obj[k], path, f"line {line_no} key {k}") for k in OPENAI_KEYS if k in obj})
    if not texts:
        raise InputError(f"benchmark file {path} has no rows: pass {what}")
    labels = _label_matrix(len(texts), label_names)
    for j, head in enumerate(label_names):
        keys = OPENAI_HEADS.get(head)
        if not keys:
            continue
        for i, row in enumerate(rows):
            if any(row.get(k) == 1 for k in keys):
                labels[i, j] = 1
            elif all(row.get(k) == 0 for k in keys):
                labels[i, j] = 0
    harmful = _any_head(labels)
    out_of_scope_only = [
        "yes" if any(r.get(k) == 1 for k in OPENAI_OUT_OF_SCOPE) and harmful[i] != 1 else "no"
        for i, r in enumerate(rows)
    ]
    return BenchmarkSet(
        "openai_moderation", path, texts, labels, harmful,
        groups={"positive only for S/SH/S3 (no head)": out_of_scope_only},
        headline=("auprc", "any_harm"),
        notes=["toxicity <- H, H2, HR; violence <- V, V2; S, SH, S3 have no harmscan head; "
               "a head is unknown unless all its keys are present (or one is 1)"],
    )


def _any_head(labels: np.ndarray) -> np.ndarray:
    """1 if any head is 1; 0 if every head with a mapping is known 0; else unknown."""
    mapped = (labels != UNKNOWN).any(axis=0)
    out = np.full(labels.shape[0], UNKNOWN, dtype=np.int8)
    out[(labels == 1).any(axis=1)] = 1
    if mapped.any():
        neg = (labels[:, mapped] == 0).all(axis=1)
        out[neg] = 0
    return out


def load_xstest(path: Path, label_names: Sequence[str]) -> BenchmarkSet:
    what = "XSTest's xstest_prompts.csv"
    rows = _read_csv(path, ("prompt", "type", "label"), what)
    harmful = np.empty(len(rows), dtype=np.int8)
    for i, r in enumerate(rows):
        verdict = r["label"].strip().lower()
        if verdict not in ("safe", "unsafe"):
            raise InputError(f"{path} row {i + 2}: label must be safe or unsafe, got {r['label']!r}")
        harmful[i] = verdict == "unsafe"
    return BenchmarkSet(
        "xstest", path, [r["prompt"] for r in rows], _label_matrix(len(rows), label_names), harmful,
        groups={"type": [r["type"].strip() for r in rows]},
        headline=("fpr_safe", "recall_unsafe"),
        notes=["safe prompts that look unsafe: the false-positive rate on safe prompts is the figure to read; "
               "unsafe -> harmful (any head); heads unknown"],
    )


def load_hatecheck(path: Path, label_names: Sequence[str]) -> BenchmarkSet:
    what = "HateCheck's test_suite_cases.csv"
    rows = _read_csv(path, ("functionality", "test_case", "label_gold"), what)
    if "toxicity" not in label_names:
        raise InputError(f"HateCheck tests the toxicity head; this bundle has: {', '.join(label_names)}")
    labels = _label_matrix(len(rows), label_names)
    j = list(label_names).index("toxicity")
    for i, r in enumerate(rows):
        gold = r["label_gold"].strip().lower()
        if gold not in ("hateful", "non-hateful"):
            raise InputError(f"{path} row {i + 2}: label_gold must be hateful or non-hateful, got {r['label_gold']!r}")
        labels[i, j] = gold == "hateful"
    groups = {"functionality": [r["functionality"].strip() for r in rows]}
    if rows and "target_ident" in rows[0]:
        groups["target_ident"] = [(r.get("target_ident") or "(none)").strip() or "(none)" for r in rows]
    return BenchmarkSet(
        "hatecheck", path, [r["test_case"] for r in rows], labels, labels[:, j].copy(),
        groups=groups, decision_heads=("toxicity",), headline=("accuracy",),
        notes=["hateful -> toxicity 1, non-hateful -> toxicity 0; accuracy of the toxicity flag per functionality"],
    )


def load_harmbench(path: Path, label_names: Sequence[str]) -> BenchmarkSet:
    what = "HarmBench's harmbench_behaviors_text_*.csv"
    rows = _read_csv(path, ("Behavior", "FunctionalCategory", "SemanticCategory"), what)
    labels = _label_matrix(len(rows), label_names)
    harmful = np.ones(len(rows), dtype=np.int8)
    texts = []
    for i, r in enumerate(rows):
        context = (r.get("ContextString") or "").strip()
        texts.append(f"{context}\n\n{r['Behavior']}" if context else r["Behavior"])
        heads = HARMBENCH_HEADS.get(r["SemanticCategory"].strip(), ())
        if heads is None:
            harmful[i] = UNKNOWN
            continue
        for head in heads:
            if head in label_names:
                labels[i, list(label_names).index(head)] = 1
    return BenchmarkSet(
        "harmbench", path, texts, labels, harmful,
        groups={
            "SemanticCategory": [r["SemanticCategory"].strip() for r in rows],
            "FunctionalCategory": [r["FunctionalCategory"].strip() for r in rows],
        },
        headline=("recall_unsafe",),
        notes=["every behaviour is harmful; misinformation_disinformation and copyright are outside harmscan's "
               "heads (excluded from the headline recall); contextual behaviours are scored with their context"],
    )


def _harm_area_key(area: str) -> str:
    return " ".join(re.findall(r"[a-z]+", area.lower().replace("self-harm", "self harm")))


def load_simplesafetytests(path: Path, label_names: Sequence[str]) -> BenchmarkSet:
    what = "SimpleSafetyTests' CSV (columns prompts_final, harm_area)"
    rows = _read_csv(path, ("prompts_final", "harm_area"), what)
    labels = _label_matrix(len(rows), label_names)
    harmful = np.ones(len(rows), dtype=np.int8)
    for i, r in enumerate(rows):
        key = _harm_area_key(r["harm_area"])
        if key not in SST_HEADS:
            raise InputError(
                f"{path} row {i + 2}: unknown harm_area {r['harm_area']!r}; known: "
                f"{', '.join(sorted(SST_HEADS))}"
            )
        heads = SST_HEADS[key]
        if heads is None:
            harmful[i] = UNKNOWN
            continue
        for head in heads:
            if head in label_names:
                labels[i, list(label_names).index(head)] = 1
    return BenchmarkSet(
        "simplesafetytests", path, [r["prompts_final"] for r in rows], labels, harmful,
        groups={"harm_area": [r["harm_area"].strip() for r in rows]},
        headline=("recall_unsafe",),
        notes=["every prompt is harmful; suicide/self-harm has no harmscan head (excluded from the headline recall)"],
    )


LOADERS: dict[str, Callable[[Path, Sequence[str]], BenchmarkSet]] = {
    "openai_moderation": load_openai_moderation,
    "xstest": load_xstest,
    "hatecheck": load_hatecheck,
    "harmbench": load_harmbench,
    "simplesafetytests": load_simplesafetytests,
}
ALIASES = {"openai": "openai_moderation", "sst": "simplesafetytests", "simple_safety_tests": "simplesafetytests"}


def load_benchmark(name: str, path: str | Path, label_names: Sequence[str]) -> BenchmarkSet:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in LOADERS:
        raise InputError(f"unknown benchmark {name!r}: use one of {', '.join(LOADERS)}")
    return LOADERS[key](Path(path), list(label_names))


# -- scoring ---------------------------------------------------------------------------------------------
def wilson(k: float, n: float, z: float = 1.96) -> list[float | None]:
    """Wilson 95% interval of a proportion k/n (sound at 0 and n, unlike the normal approximation)."""
    if n <= 0:
        return [None, None]
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def _rate(hits: np.ndarray) -> dict[str, Any]:
    n = int(hits.size)
    k = int(hits.sum())
    return {"n": n, "value": (k / n) if n else None, "ci95": wilson(k, n)}


def _group_rates(bench: BenchmarkSet, flagged: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per group value: flag rate, recall on harmful rows, FPR on safe rows, accuracy on rows in scope."""
    out: dict[str, dict[str, Any]] = {}
    for group, values in bench.groups.items():
        arr = np.asarray(values)
        out[group] = {}
        for value in sorted(set(values)):
            rows = arr == value
            h = bench.harmful[rows]
            f = flagged[rows]
            entry: dict[str, Any] = {"n": int(rows.sum()), "flag_rate": _rate(f)}
            if (h == 1).any():
                entry["recall"] = _rate(f[h == 1])
            if (h == 0).any():
                entry["fpr"] = _rate(f[h == 0])
            if (h != UNKNOWN).any():
                entry["accuracy"] = _rate(f[h != UNKNOWN] == (h[h != UNKNOWN] == 1))
            out[group][value] = entry
    return out


def evaluate_benchmark(
    bench: BenchmarkSet,
    probs: np.ndarray,
    label_names: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Figures for one benchmark from calibrated probabilities [n, L] under the given thresholds."""
    from harmscan.eval import binary_metrics as bm
    from harmscan.eval.tables import figures

    names = list(label_names)
    tvec = np.asarray([thresholds[n] for n in names])
    flags = probs >= tvec[None, :]
    heads = [names.index(h) for h in bench.decision_heads] if bench.decision_heads else list(range(len(names)))
    flagged = np.asarray(flags[:, heads].any(axis=1), dtype=bool)
    score = probs[:, heads].max(axis=1)
    rng = np.random.default_rng(seed)
    per_label = {}
    for j, name in enumerate(names):
        known = bench.labels[:, j] != UNKNOWN
        if known.any():
            per_label[name] = figures(bench.labels[known, j], probs[known, j], float(tvec[j]), n_boot=n_boot, rng=rng)
    h = bench.harmful
    overall: dict[str, Any] = {"n": len(bench), "in_scope": int((h != UNKNOWN).sum()), "flag_rate": _rate(flagged)}
    if (h == 1).any():
        overall["recall_unsafe"] = _rate(flagged[h == 1])
    if (h == 0).any():
        overall["fpr_safe"] = _rate(flagged[h == 0])
    if (h != UNKNOWN).any():
        overall["accuracy"] = _rate(flagged[h != UNKNOWN] == (h[h != UNKNOWN] == 1))
    if (h == 1).any() and (h == 0).any():
        keep = h != UNKNOWN
        overall["any_harm_auprc"] = bm.average_precision(h[keep], score[keep])
        overall["any_harm_roc_auc"] = bm.roc_auc(h[keep], score[keep])
    return {
        "name": bench.name,
        "path": str(bench.path),
        "decision": "flag if " + (" or ".join(bench.decision_heads) if bench.decision_heads else "any head")
        + " >= its threshold",
        "thresholds": {n: float(thresholds[n]) for n in names},
        "notes": bench.notes,
        "headline": list(bench.headline),
        "overall": overall,
        "per_label": per_label,
        "groups": _group_rates(bench, flagged),
    }


def run_benchmark(
    classifier: Any,
    name: str,
    path: str | Path,
    thresholds: Mapping[str, float],
    *,
    n_boot: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Load a benchmark, score it with a HarmClassifier (calibrated), and evaluate it."""
    from harmscan.classifiers.calibration import apply_calibration
    from harmscan.eval.scores import predict_logits

    names = list(classifier.labels)
    bench = load_benchmark(name, path, names)
    logits = predict_logits(classifier, bench.texts, progress, desc=f"scoring {bench.name}")
    probs = apply_calibration(logits, classifier.bundle.calibration, names)
    return evaluate_benchmark(bench, probs, names, thresholds, n_boot=n_boot)
