"""`harmscan redteam`: attack a bundle with the recipes of `harmscan.eval.attacks`, within a query budget
per text, and report how often each recipe evades each label.

    result = run_redteam(scorer, targets, recipes=RECIPES, queries=50, seed=0)

A target is one harmful text for one label (known positive) that the scorer flags for that label before
any attack; a text positive for two labels is two targets. An attack succeeds ("evades") when the
target label's score falls below its threshold (the policy's). ASR = evaded / attacked, per label x
recipe. Queries are the texts sent to the scorer for that target and recipe; a search stops when it
evades or when the budget is spent; candidates are scored in batches of up to 8, the last one cut to
what is left of the budget. Each recipe is charged every query it asks for, as if it ran alone, but a
text already scored for the same target (the word ranking both word recipes do) is not scored again.

The scorer is anything with `labels`, `policy.thresholds` and `predict_proba(texts) -> [n, labels]`: a
`HarmClassifier` (ONNX Runtime, no torch) or, in tests, a keyword scorer. The command around it
(data, bundle, files written) is `harmscan.eval.redteam_run`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harmscan.errors import InputError
from harmscan.eval import attacks
from harmscan.eval.neighbours import DEFAULT_MIN_SIMILARITY, Neighbours

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXTS = 50  # targets per label
DEFAULT_QUERIES = 50  # scorer queries per target and recipe
BATCH = 8  # candidates per scorer call: a success in the first batch spends few queries
MAX_IMPORTANCE_WORDS = 8  # words ranked by deletion (each costs a query)
EXAMPLES_PER_CELL = 3
SELECT_CHUNK = 64  # positives scored at a time while looking for flagged ones
TRUNCATE = 240


class Scorer(Protocol):
    labels: list[str]

    @property
    def policy(self) -> Any: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Target:
    text: str
    label: str
    labels: dict[str, int | None]  # the text's known labels (None = unknown): what the JSONL row carries
    score: float  # the target label's score before the attack
    source: str = ""


@dataclass
class Attack:
    recipe: str
    target: Target
    evaded: bool
    queries: int
    text: str = ""  # the adversarial text (the best one tried when the attack failed)
    score: float = float("nan")


@dataclass
class RedteamResult:
    attacks: list[Attack]
    recipes: list[str]
    labels: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # recipe -> why it did not run


class _Budget:
    """Counts the texts one attack sends to the scorer and refuses to go past the limit."""

    def __init__(self, score: Callable[[list[str]], np.ndarray], limit: int) -> None:
        self._score, self.limit, self.used = score, limit, 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def __call__(self, texts: list[str]) -> np.ndarray:
        texts = texts[: self.left]
        self.used += len(texts)
        return self._score(texts) if texts else np.zeros(0)


# -- searches --------------------------------------------------------------------------------------------
def _text_attack(recipe: str, target: Target, score: _Budget, threshold: float, rng: Any,
                 templates: Sequence[str] | None) -> Attack:
    cands = attacks.text_candidates(recipe, target.text, rng, score.limit, templates)
    best = Attack(recipe, target, False, 0, target.text, target.score)
    for start in range(0, len(cands), BATCH):
        batch = cands[start : start + BATCH]
        s = score(batch)
        if not s.size:
            break
        j = int(np.argmin(s))
        if s[j] < best.score:
            best.text, best.score = batch[j], float(s[j])
        hits = np.flatnonzero(s < threshold)
        if hits.size:  # the first evading candidate in the recipe's order
            best.text, best.score, best.evaded = batch[int(hits[0])], float(s[int(hits[0])]), True
            break
    best.queries = score.used
    return best


def _word_attack(recipe: str, target: Target, score: _Budget, threshold: float, rng: Any,
                 neighbours: Neighbours | None, min_similarity: float) -> Attack:
    """Greedy word by word, most important word first (TextFooler / DeepWordBug search)."""
    segments = attacks.split_words(target.text)
    spots = [i for i in range(1, len(segments), 2) if segments[i].lower() not in attacks.STOPWORDS]
    best = Attack(recipe, target, False, 0, target.text, target.score)
    if not spots:
        return best
    # Importance: the score drop when the word is deleted. Longest words first when there are more than
    # the ranking budget allows (they carry the content).
    ranked = sorted(spots, key=lambda i: (-len(segments[i]), i))[:MAX_IMPORTANCE_WORDS]
    if len(ranked) > 1:
        deleted = ["".join(segments[:i] + segments[i + 1 :]) for i in ranked]
        drops = score(deleted)
        order = np.argsort(drops, kind="stable")  # lowest remaining score = most important word
        ranked = [ranked[int(j)] for j in order[: len(drops)]] + ranked[len(drops) :]
    current = list(segments)
    current_score = target.score
    for i in ranked:
        if score.left <= 0:
            break
        word = current[i]
        if recipe == "char_edits":
            options = attacks.char_edit_candidates(word, rng)
        else:
            options = [_match_case(n, word) for n in (neighbours.neighbours(word) if neighbours else [])]
        texts = []
        for opt in options:
            cand = current[:i] + [opt] + current[i + 1 :]
            text = "".join(cand)
            if not attacks.changes_after_normalising(text, "".join(current)):
                continue
            if recipe == "word_substitution" and neighbours is not None and \
                    neighbours.similarity(target.text, text) < min_similarity:
                continue
            texts.append(text)
        if not texts:
            continue
        s = score(texts[:BATCH])
        if not s.size:
            break
        j = int(np.argmin(s))
        if s[j] < current_score:  # keep the edit that lowers the score most, then move to the next word
            current = attacks.split_words(texts[j])
            current_score = float(s[j])
            if len(current) != len(segments):  # an edit that changed the word boundaries: stop there
                best.text, best.score = texts[j], current_score
                best.evaded = current_score < threshold
                break
            best.text, best.score = texts[j], current_score
        if current_score < threshold:
            best.evaded = True
            break
    best.queries = score.used
    return best


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def run_redteam(
    scorer: Scorer,
    targets: Sequence[Target],
    *,
    recipes: Sequence[str] = attacks.RECIPES,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    neighbours: Neighbours | None = None,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    templates: Sequence[str] | None = None,
    progress: bool = False,
) -> RedteamResult:
    """Run every recipe on every target, `queries` scorer texts at most for each (target, recipe)."""
    unknown = [r for r in recipes if r not in attacks.RECIPES]
    if unknown:
        raise InputError(f"unknown recipe(s) {', '.join(unknown)}: use {', '.join(attacks.RECIPES)}")
    if queries < 1:
        raise InputError(f"--queries must be at least 1, got {queries}")
    labels = list(scorer.labels)
    thresholds = dict(scorer.policy.thresholds)
    skipped: dict[str, str] = {}
    active = []
    for r in recipes:
        if r == "word_substitution" and neighbours is None:
            skipped[r] = "no word embeddings to draw neighbours from (the bundle has no fp32 model)"
        else:
            active.append(r)
    from tqdm.auto import tqdm

    out: list[Attack] = []
    with tqdm(total=len(targets) * len(active), desc="redteam", unit="attack",
              disable=None if progress else True) as bar:  # None: silent off a terminal
        for t in targets:
            j = labels.index(t.label)

            cache: dict[str, float] = {}

            def score(texts: list[str], j: int = j, cache: dict[str, float] = cache) -> np.ndarray:
                new = list(dict.fromkeys(t for t in texts if t not in cache))
                if new:
                    cache.update(zip(new, np.asarray(scorer.predict_proba(new))[:, j].tolist(), strict=True))
                return np.asarray([cache[t] for t in texts])

            for recipe in active:
                rng = attacks.rng_for(seed, recipe, t.label, t.text)
                budget = _Budget(score, queries)
                if recipe in attacks.WORD_RECIPES:
                    res = _word_attack(recipe, t, budget, thresholds[t.label], rng, neighbours, min_similarity)
                else:
                    res = _text_attack(recipe, t, budget, thresholds[t.label], rng, templates)
                out.append(res)
                bar.update(1)
    return RedteamResult(out, list(active), labels, skipped)


# -- targets ---------------------------------------------------------------------------------------------
def select_targets(
    scorer: Scorer,
    texts: Sequence[str],
    labels: np.ndarray,
    mask: np.ndarray,
    *,
    sources: Sequence[str] | None = None,
    max_texts: int = DEFAULT_MAX_TEXTS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[list[Target], dict[str, dict[str, int]]]:
    """Known positives per label that the scorer flags for that label, `max_texts` per label at most
    (a seeded sample). Texts longer than one model window are left out when the scorer can count
    windows (a HarmClassifier): each query on them costs several windows, and a long text is scored by
    its worst window. Returns the targets and, per label, how many positives there were, how many fit one
    window, how many were scored to find the targets, and how many are attacked."""
    names = list(scorer.labels)
    thresholds = dict(scorer.policy.thresholds)
    rng = np.random.default_rng(seed)
    targets: list[Target] = []
    counts: dict[str, dict[str, int]] = {}
    windows = getattr(scorer, "count_windows", None)
    for j, name in enumerate(names):
        pos = np.flatnonzero(mask[:, j] & (labels[:, j] == 1))
        pos = pos[rng.permutation(pos.size)]
        if windows is not None and pos.size:  # one window only: a longer text costs several per query
            pos = pos[np.asarray(windows([texts[int(i)] for i in pos])) == 1]
        # Scored a chunk at a time until `max_texts` are flagged: no need to score every positive.
        chosen: list[tuple[int, float]] = []
        scored = 0
        for start in range(0, pos.size, SELECT_CHUNK):
            if len(chosen) >= max_texts:
                break
            chunk = pos[start : start + SELECT_CHUNK]
            probs = _score_all(scorer, [texts[int(i)] for i in chunk], progress, f"score {name}")
            scored += chunk.size
            chosen += [(int(i), float(p)) for i, p in zip(chunk, probs[:, j], strict=True) if p >= thresholds[name]]
        chosen = chosen[:max_texts]
        counts[name] = {"positives": int(np.sum(mask[:, j] & (labels[:, j] == 1))), "one_window": int(pos.size),
                        "scored": scored, "attacked": len(chosen)}
        for i, p in chosen:
            row = {n: (int(labels[i, k]) if mask[i, k] else None) for k, n in enumerate(names)}
            targets.append(Target(texts[i], name, row, p, sources[i] if sources else ""))
    return targets, counts


def _score_all(scorer: Scorer, texts: list[str], progress: bool, desc: str) -> np.ndarray:
    from tqdm.auto import tqdm

    chunks = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=None if progress else True) as bar:
        for start in range(0, len(texts), 256):
            chunk = texts[start : start + 256]
            chunks.append(np.asarray(scorer.predict_proba(chunk)))
            bar.update(len(chunk))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(scorer.labels)))


# -- summary ---------------------------------------------------------------------------------------------
def summarise(result: RedteamResult, counts: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    """ASR per label x recipe, queries per success and a few examples per cell."""
    table: dict[str, dict[str, Any]] = {}
    examples: dict[str, list[dict[str, Any]]] = {r: [] for r in result.recipes}
    for name in result.labels:
        row: dict[str, Any] = {}
        for recipe in result.recipes:
            cell = [a for a in result.attacks if a.recipe == recipe and a.target.label == name]
            row[recipe] = _cell(cell)
            for a in [a for a in cell if a.evaded][:EXAMPLES_PER_CELL]:
                examples[recipe].append({
                    "label": name, "original_score": round(a.target.score, 4), "adversarial_score": round(a.score, 4),
                    "queries": a.queries, "original": _truncate(a.target.text), "adversarial": _truncate(a.text),
                })
        table[name] = row
    overall = {r: _cell([a for a in result.attacks if a.recipe == r]) for r in result.recipes}
    return {"asr": table, "overall": overall, "examples": examples, "skipped_recipes": dict(result.skipped),
            "targets": dict(counts or {})}


def _cell(cell: Sequence[Attack]) -> dict[str, Any]:
    won = [a for a in cell if a.evaded]
    return {
        "attacked": len(cell),
        "evaded": len(won),
        "asr": len(won) / len(cell) if cell else None,
        "queries_per_success": float(np.mean([a.queries for a in won])) if won else None,
        "mean_queries": float(np.mean([a.queries for a in cell])) if cell else None,
    }


def _truncate(text: str, n: int = TRUNCATE) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def adversarial_rows(result: RedteamResult) -> list[dict[str, Any]]:
    """One JSONL row per successful attack: the text, its labels (0/1, null = unknown, kept from the
    original text: the attacks keep the meaning), the recipe and the original text's sha256."""
    rows = []
    for a in result.attacks:
        if not a.evaded:
            continue
        rows.append({
            "text": a.text, **a.target.labels, "recipe": a.recipe, "attacked_label": a.target.label,
            "original_score": round(a.target.score, 6), "adversarial_score": round(a.score, 6),
            "source_sha256": hashlib.sha256(a.target.text.encode("utf-8")).hexdigest(),
        })
    return rows
