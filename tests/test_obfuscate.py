"""Obfuscations: visibly different text, undone by the normaliser where it should be, deterministic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from harmscan.errors import InputError
from harmscan.eval.obfuscate import (
    METHODS,
    NORMALIZED_AWAY,
    TRAINING_METHODS,
    augment_obfuscations,
    homoglyphs,
    leetspeak,
    misspell,
    obfuscate,
    spacing,
    target_words,
    zero_width,
)
from harmscan.text import dedup_key, normalize_text

SENTENCES = [
    "I'm going to kill you tonight",
    "you are a pathetic idiot",
    "how do I make meth at home",
    "I will punch you in the face",
    "Muslims are vermin",
    "Write ransomware that encrypts every file",
    "how to launder money through a car wash",
    "stfu you dumb bitch",
]


def _levenshtein_or_swap(a: str, b: str) -> int:
    """Edit distance where swapping two neighbours counts as one edit (Damerau, optimal string alignment)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = int(a[i - 1] != b[j - 1])
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def test_target_words_prefer_the_harmful_word() -> None:
    assert target_words("I'm going to kill you tonight") == ["kill"]
    assert target_words("you are a pathetic idiot") == ["pathetic", "idiot"]
    assert target_words("how do I make meth at home") == ["meth"]
    # No harm word: the longest content word, so benign text can still be disguised for tests.
    assert target_words("lovely weather in Brighton today") == ["Brighton"]
    assert target_words("a an the") == []


@pytest.mark.parametrize("method", METHODS)
def test_each_method_changes_only_the_target_words(method: str) -> None:
    for text in SENTENCES:
        out = obfuscate(text, method, seed=1)
        assert out != text, (method, text)
        targets = {w.lower() for w in target_words(text)}
        # Words that are not targets come through untouched, in order.
        kept = [w for w in text.split() if re.sub(r"\W", "", w.lower()) not in targets]
        for word in kept:
            assert word in out, (method, text, out)


def test_method_specific_shapes() -> None:
    text = "I'm going to kill you"
    assert leetspeak(text, words=["kill"]) != text and re.search(r"k[1!l][1!l][1!l]", leetspeak(text, words=["kill"]))
    spaced = spacing(text, words=["kill"])
    assert re.search(r"k[ .\-*]i[ .\-*]l[ .\-*]l", spaced), spaced
    zw = zero_width(text, words=["kill"])
    assert zw != text and zw.replace("\u200b", "").replace("\u200c", "").replace("\u200d", "").replace(
        "\u2060", ""
    ).replace("\ufeff", "") == text
    word = homoglyphs(text, words=["kill"]).split()[3]
    # Mixed script: some look-alikes, some Latin left (a word wholly in Cyrillic is not folded back).
    assert word != "kill" and any(ord(c) > 127 for c in word) and re.search(r"[a-z]", word), word
    for seed in range(20):
        typo = misspell("you murderer", seed=seed, words=["murderer"]).split()[1]
        assert typo.lower() != "murderer" and _levenshtein_or_swap(typo, "murderer") == 1, typo


@pytest.mark.parametrize("method", NORMALIZED_AWAY)
def test_zero_width_and_homoglyphs_are_undone_by_the_normaliser(method: str) -> None:
    from harmscan.eval.suite import load_suite

    plain = [c.plain_text or c.text for c in load_suite("test")][:400] + SENTENCES
    for seed, text in enumerate(plain):
        out = obfuscate(text, method, seed=seed)
        assert normalize_text(out) == normalize_text(text), (text, out)


@pytest.mark.parametrize("method", TRAINING_METHODS)
def test_leet_spacing_and_misspellings_survive_the_normaliser(method: str) -> None:
    # These are what the model has to learn: the normaliser must not (and cannot) map them back.
    for seed, text in enumerate(SENTENCES):
        out = obfuscate(text, method, seed=seed)
        assert dedup_key(out) != dedup_key(text), (method, text, out)


def test_deterministic_for_a_seed_and_varied_across_seeds() -> None:
    for method in METHODS:
        assert obfuscate(SENTENCES[1], method, seed=7) == obfuscate(SENTENCES[1], method, seed=7)
        outputs = {obfuscate(SENTENCES[1], method, seed=s) for s in range(12)}
        assert len(outputs) > 1, method


def test_unknown_method_is_a_one_line_user_error() -> None:
    with pytest.raises(InputError, match="unknown obfuscation 'rot13'.*leet"):
        obfuscate("kill", "rot13")


def _examples() -> list:
    from harmscan.training.sources import Example

    pos = [Example(t, {"toxicity": 1, "violence": None, "illegal_advice": 0}, "src", {"id": str(i)})
           for i, t in enumerate(SENTENCES * 25)]
    neg = [Example(f"the weather in town {i} is lovely today", {"toxicity": 0, "violence": 0, "illegal_advice": 0},
                   "src") for i in range(100)]
    return pos + neg


def test_augment_copies_only_positives_with_their_labels() -> None:
    examples = _examples()
    copies = augment_obfuscations(examples, rate=1.0, seed=0)
    assert len(copies) == 200  # every positive, no negative
    for ex in copies:
        assert ex.meta["plain_text"] in SENTENCES and ex.text != ex.meta["plain_text"]
        assert ex.meta["obfuscation"] in TRAINING_METHODS
        assert ex.labels == {"toxicity": 1, "violence": None, "illegal_advice": 0}
        assert ex.source == "src" and "id" in ex.meta
    assert {ex.meta["obfuscation"] for ex in copies} == set(TRAINING_METHODS)
    # The originals are left alone.
    assert all(ex.text in SENTENCES or ex.text.startswith("the weather") for ex in examples)
    assert all("obfuscation" not in ex.meta for ex in examples)


def test_augment_rate_and_determinism() -> None:
    examples = _examples()
    assert augment_obfuscations(examples, rate=0.0) == []
    a = augment_obfuscations(examples, rate=0.3, seed=5)
    b = augment_obfuscations(examples, rate=0.3, seed=5)
    c = augment_obfuscations(examples, rate=0.3, seed=6)
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]
    assert 30 <= len(a) <= 90  # ~60 of 200 positives
    only_leet = augment_obfuscations(examples, rate=1.0, methods=("leet",))
    assert {x.meta["obfuscation"] for x in only_leet} == {"leet"}


def test_augment_rejects_bad_arguments() -> None:
    with pytest.raises(InputError, match=r"within \[0, 1\]"):
        augment_obfuscations(_examples(), rate=1.5)
    with pytest.raises(InputError, match="unknown obfuscation methods"):
        augment_obfuscations(_examples(), methods=("leet", "pig_latin"))


_SAME_IN_EVERY_PROCESS = """
import json, sys
from harmscan.eval.obfuscate import METHODS, obfuscate
texts = json.loads(sys.argv[1])
print(json.dumps([[obfuscate(t, m, seed) for m in METHODS for seed in (0, 13)] for t in texts]))
"""


def test_same_rewrites_in_every_process_whatever_the_hash_seed() -> None:
    # Texts whose two target words have the same length ("Trafficking" and "trafficking", "shoot" and
    # "stabs"): the order they were rewritten in once followed PYTHONHASHSEED, so two `harmscan data build`
    # runs of one recipe gave different train splits (29 of 46,818 rows) and different models.
    texts = [
        "Trafficking pays. I know trafficking, and I kill, I stab.",
        "Kill them. kill them all.",
        "I will shoot you and the stabs will follow",
        "Murder is easy, MURDER is fun",
        "burn it and rape them, kill and stab",
        "Bomb the place. bomb the town.",
        "Steal the car, steal the cash",
        "Shoot the idiots, shoot the morons",
    ]
    outputs = set()
    for hash_seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", _SAME_IN_EVERY_PROCESS, json.dumps(texts)],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
