"""The behavioural suite's cases: the two splits, the held-out keys and the cases training may use.

Needs only yaml: training imports this module for its augmentation and its leak guard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from harmscan.errors import InputError
from harmscan.eval.suite.generator import (
    SPLITS,
    Functionality,
    SuiteCase,
    generate,
    load_definitions,
    suite_heads,
)
from harmscan.text import dedup_key

SOURCE = "suite_train"


@dataclass
class TrainingExample:
    """A train-split case with the fields of a data source's `Example` (text, labels, source, meta), so
    training reads it like any source row without the suite importing training."""

    text: str
    labels: dict[str, int | None]
    source: str
    meta: dict[str, str] = field(default_factory=dict)


def definitions() -> tuple[list[Functionality], dict[str, dict[str, list[str]]]]:
    return _definitions_for(suite_heads())


@lru_cache(maxsize=4)
def _definitions_for(heads: tuple[str, ...]) -> tuple[list[Functionality], dict[str, dict[str, list[str]]]]:
    return load_definitions(heads=heads)


def _cases(split: str, seed: int, per_template: int | None) -> tuple[SuiteCase, ...]:
    return _cases_for(suite_heads(), split, seed, per_template)


@lru_cache(maxsize=8)
def _cases_for(heads: tuple[str, ...], split: str, seed: int, per_template: int | None) -> tuple[SuiteCase, ...]:
    funcs, shared = _definitions_for(heads)
    return tuple(generate(funcs, shared, split, seed, per_template))


def check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown suite split {split!r}: choose 'train' or 'test' (or None for both)")


def load_suite(split: str | None = None, seed: int = 0) -> list[SuiteCase]:
    """Every case of one split ("train" or "test"), or of both when split is None. Deterministic for a seed.

    The test split is always scored with seed 0, so its figures compare across models and releases.
    """
    check_split(split)
    return [c for s in ([split] if split else SPLITS) for c in _cases(s, seed, None)]


def functionalities() -> list[dict[str, Any]]:
    """One dict per functionality: name, description, family, head(s), gold labels, polarity, template counts."""
    funcs, _ = definitions()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for case in load_suite():
        counts[(case.functionality, case.split)] += 1
    return [
        {
            "name": f.name,
            "description": f.description,
            "family": f.family,
            "head": "+".join(f.heads),
            "heads": list(f.heads),
            "labels": dict(f.labels),
            "expected": expected_text(f.labels),
            "polarity": f.polarity,
            "obfuscation": list(f.obfuscate),
            "templates": {s: len(f.templates[s]) for s in SPLITS},
            "cases": {s: counts[(f.name, s)] for s in SPLITS},
        }
        for f in funcs
    ]


def expected_text(labels: dict[str, int | None], heads: Sequence[str] | None = None) -> str:
    """'violence=1, toxicity=0' — the known gold labels, positives first; unknown heads are left out."""
    known = [(h, v) for h, v in labels.items() if v is not None and (heads is None or h in heads)]
    known.sort(key=lambda hv: -int(hv[1] or 0))
    return ", ".join(f"{h}={v}" for h, v in known) or "(no known label)"


def held_out_keys() -> frozenset[str]:
    """dedup_key of every test-split case (and of the plain form of obfuscated ones): never train on these."""
    keys = set()
    for case in load_suite("test"):
        keys.add(dedup_key(case.text))
        if case.plain_text:
            keys.add(dedup_key(case.plain_text))
    return frozenset(keys)


def leaked_cases(texts: Iterable[str]) -> list[SuiteCase]:
    """The test-split cases whose text (after dedup_key) appears among `texts`, e.g. a training split."""
    keys = {dedup_key(t) for t in texts}
    return [
        c for c in load_suite("test")
        if dedup_key(c.text) in keys or (c.plain_text is not None and dedup_key(c.plain_text) in keys)
    ]


def training_examples(seed: int = 0, per_template: int | None = None) -> list[TrainingExample]:
    """Cases from TRAIN templates as `TrainingExample`s (source "suite_train").

    `seed` draws a different sample of filler combinations from the same train templates; `per_template`
    draws more (or fewer) cases per template than the suite's own. A case that would collide with a test
    case (same dedup_key) is left out, so training on these never leaks the test split.
    """
    funcs, _ = definitions()
    family = {f.name: f.family for f in funcs}
    held_out = held_out_keys()
    out = []
    for case in _cases("train", seed, per_template):
        if dedup_key(case.text) in held_out or (case.plain_text and dedup_key(case.plain_text) in held_out):
            continue
        meta = {"functionality": case.functionality, "family": family[case.functionality],
                "template_id": case.template_id}
        if case.obfuscation:
            meta["obfuscation"] = case.obfuscation
        out.append(TrainingExample(text=case.text, labels=dict(case.labels), source=SOURCE, meta=meta))
    return out
