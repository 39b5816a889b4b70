r"""Obfuscations that people use to slip harmful text past filters, as deterministic text transforms.

Five methods, each rewriting only some target words (the harmful ones, or a content word), because that is
what evasion looks like in real posts ("k1ll", "i d i o t"), not a whole sentence in leetspeak:

    leet         k1ll, 1d10t, $tab        a few letters swapped for digits or symbols
    spacing      k i l l, k.i.l.l          characters pulled apart
    zero_width   k\u200bill               invisible characters inserted
    homoglyph    kіll (Cyrillic і)         Latin letters swapped for Cyrillic/Greek look-alikes
    misspelling  kil, murdr, stupd         one edit in the word

`harmscan.text.normalize_text` strips zero-width characters and folds mixed-script homoglyphs at inference,
so those two are undone before the model sees the text; leetspeak, spacing and misspellings are not, and
need training augmentation (`augment_obfuscations`). Stdlib only (plus harmscan.errors); the same (text, method, seed) always gives
the same output.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from harmscan.errors import InputError

METHODS = ("leet", "spacing", "zero_width", "homoglyph", "misspelling")
# Undone by harmscan.text.normalize_text before the model sees the text.
NORMALIZED_AWAY = ("zero_width", "homoglyph")
# The ones a model has to learn: the default for training augmentation.
TRAINING_METHODS = ("leet", "spacing", "misspelling")

_LEET = {
    "a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "l": "1", "g": "9", "b": "8",
}
_SEPARATORS = " " * 6 + ".-*"
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# Only look-alikes that harmscan.text folds back to Latin (its _CONFUSABLES table), so the normaliser undoes
# them; letters without a folded look-alike (b f g h m n r z) stay Latin.
_HOMOGLYPHS = {
    "a": "а", "c": "с", "d": "ԁ", "e": "е", "i": "і", "j": "ј", "k": "κ", "l": "ӏ", "o": "о", "p": "р",
    "q": "ԛ", "s": "ѕ", "t": "τ", "u": "υ", "v": "ν", "w": "ԝ", "x": "х", "y": "у",
    "A": "А", "B": "В", "E": "Е", "K": "К", "M": "М", "H": "Н", "O": "О", "P": "Р", "C": "С", "T": "Т",
    "X": "Х", "I": "І", "J": "Ј", "S": "Ѕ", "Y": "У",
}
_VOWELS = "aeiou"

# Stems of words that carry the harm in a sentence: what evaders disguise first.
HARM_STEMS = (
    "kill", "murder", "stab", "shoot", "shot", "bomb", "gun", "knife", "poison", "hurt", "beat", "strangl",
    "choke", "burn", "slaughter", "butcher", "massacre", "attack", "destroy", "dead", "die", "rape",
    "torture", "behead", "hang", "lynch", "exterminat", "genocide", "explos", "weapon", "rifle", "ammo",
    "idiot", "stupid", "moron", "dumb", "retard", "bitch", "fuck", "shit", "cunt", "bastard", "loser",
    "pathetic", "worthless", "ugly", "disgusting", "trash", "garbage", "scum", "vermin", "filth", "whore",
    "slut", "fag", "dyke", "tranny", "hate", "meth", "cocaine", "heroin", "fentanyl", "crack", "drug",
    "hack", "steal", "stole", "rob", "fraud", "scam", "launder", "counterfeit", "forge", "phish", "malware",
    "ransomware", "password", "shoplift", "hotwire", "smuggl", "traffick", "overdose",
)
_STOPWORDS = frozenset(
    "the a an and or but if of to in on at by for with from into onto about as is are was were be been "
    "being have has had do does did this that these those there their they them then than you your yours "
    "he she him her his hers it its we our ours us me my mine i not no so just very really what which who "
    "whom whose when where why how can could would should will shall may might must also too only even "
    "some any all each every more most much many such own same other others out up down over under again "
    "once here off yes well still like get got make made going want know think".split()
)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z']*[A-Za-z]|[A-Za-z]")

E = TypeVar("E")


def _rng(method: str, text: str, seed: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, so this is stable across processes and platforms
    # (unlike hash(), which PYTHONHASHSEED randomises).
    return random.Random(f"{method}\x1f{seed}\x1f{text}")


def target_words(text: str, max_words: int = 2) -> list[str]:
    """The words an evader would disguise: harm-carrying words first, else the longest content word."""
    words = _WORD_RE.findall(text)
    harmful = [w for w in words if w.lower().startswith(HARM_STEMS) and len(w) >= 3]
    if harmful:
        return list(dict.fromkeys(harmful))[:max_words]
    content = [w for w in words if w.lower() not in _STOPWORDS and len(w) >= 4]
    return [max(content, key=len)] if content else []


# -- word-level transforms: each returns a visibly different word (or the word itself when impossible) ---
def _leet_word(word: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(word) if ch.lower() in _LEET]
    if not spots:
        # No leet-able letter: censor a vowel instead ("p*nch"), the other common disguise.
        vowels = [i for i, ch in enumerate(word) if ch.lower() in _VOWELS]
        if not vowels:
            return word
        i = rng.choice(vowels)
        return word[:i] + "*" + word[i + 1 :]
    chosen = [i for i in spots if rng.random() < 0.6] or [rng.choice(spots)]
    chars = list(word)
    for i in chosen:
        chars[i] = rng.choice(_LEET[word[i].lower()])
    return "".join(chars)


def _spacing_word(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word
    return rng.choice(_SEPARATORS).join(word)


def _zero_width_word(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word
    gaps = list(range(1, len(word)))
    chosen = sorted(rng.sample(gaps, k=max(1, len(gaps) // 2)))
    out, last = [], 0
    for i in chosen:
        out.append(word[last:i])
        out.append(rng.choice(_ZERO_WIDTH))
        last = i
    out.append(word[last:])
    return "".join(out)


def _homoglyph_word(word: str, rng: random.Random) -> str:
    chars = list(word)
    # Per run of letters ("didn't" is two runs for the normaliser's \w+): keep at least one Latin letter in
    # each, because a run wholly in Cyrillic/Greek is left alone by the normaliser (it may be real Cyrillic),
    # and real evasion mixes scripts anyway.
    for run in re.finditer(r"[A-Za-z]+", word):
        spots = [i for i in range(run.start(), run.end()) if word[i] in _HOMOGLYPHS]
        budget = min(len(spots), len(run.group()) - 1)
        if budget >= 1:
            for i in rng.sample(spots, k=rng.randint(1, budget)):
                chars[i] = _HOMOGLYPHS[word[i]]
    return "".join(chars)


def _misspell_word(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word
    ops = ["double"] + (["drop", "swap"] if len(word) >= 4 else [])
    rng.shuffle(ops)
    # A vowel change only as the last resort: in short words it tends to make another real word (meth->math).
    for op in [*ops, "vowel"]:
        if op == "drop":
            i = rng.randrange(1, len(word) - 1)  # keep the first and last letters: the word stays readable
            new = word[:i] + word[i + 1 :]
        elif op == "swap":
            i = rng.randrange(1, len(word) - 2)
            new = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif op == "double":
            i = rng.randrange(1, len(word))
            new = word[:i] + word[i] + word[i:]
        else:
            vowels = [i for i, ch in enumerate(word) if ch.lower() in _VOWELS and i > 0]
            if not vowels:
                continue
            i = rng.choice(vowels)
            repl = rng.choice([v for v in _VOWELS if v != word[i].lower()])
            new = word[:i] + (repl.upper() if word[i].isupper() else repl) + word[i + 1 :]
        if new.lower() != word.lower():
            return new
    return word


_WORD_TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "leet": _leet_word,
    "spacing": _spacing_word,
    "zero_width": _zero_width_word,
    "homoglyph": _homoglyph_word,
    "misspelling": _misspell_word,
}


def obfuscate(text: str, method: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """Rewrite the target `words` of `text` (default: `target_words(text)`) with one obfuscation method.

    Every whole-word occurrence of a target is rewritten the same way. Returns `text` unchanged when it has no
    word the method can change.
    """
    try:
        transform = _WORD_TRANSFORMS[method]
    except KeyError:
        raise InputError(f"unknown obfuscation {method!r}; choose one of {', '.join(METHODS)}") from None
    targets = [w for w in (words if words is not None else target_words(text)) if w.strip()]
    rng = _rng(method, text, seed)
    # Longest first (so 'killing' is rewritten before 'kill'), ties in text order: iterating a set would
    # follow PYTHONHASHSEED, and the shared rng would then give each process different rewrites.
    for word in sorted(dict.fromkeys(targets), key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)
        text = pattern.sub(lambda m: transform(m.group(0), rng), text)
    return text


def leetspeak(text: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """'kill' -> 'k1ll': letters swapped for look-alike digits and symbols."""
    return obfuscate(text, "leet", seed, words)


def spacing(text: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """'kill' -> 'k i l l' (sometimes 'k.i.l.l' or 'k-i-l-l')."""
    return obfuscate(text, "spacing", seed, words)


def zero_width(text: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """'kill' -> 'k\\u200bil\\u200dl': invisible characters inside the word."""
    return obfuscate(text, "zero_width", seed, words)


def homoglyphs(text: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """'kill' -> 'kіll' with a Cyrillic 'і': mixed-script look-alikes."""
    return obfuscate(text, "homoglyph", seed, words)


def misspell(text: str, seed: int = 0, words: Sequence[str] | None = None) -> str:
    """'murder' -> 'murdr': one edit (drop, swap, double or vowel change) in each target word."""
    return obfuscate(text, "misspelling", seed, words)


def augment_obfuscations(
    examples: Iterable[E],
    rate: float = 0.15,
    seed: int = 0,
    methods: Sequence[str] = TRAINING_METHODS,
) -> list[E]:
    """Obfuscated copies of the positive examples (any head labelled 1), for the train split only.

    Each positive is copied with probability `rate`, with one method drawn from `methods` applied to its
    harm-carrying words; labels and source are kept, and meta gains "obfuscation" (the method) and
    "plain_text". Returns only the new copies; the caller adds them to the originals. Works on any dataclass
    with `text`, `labels` and `meta` fields (harmscan.training.sources.Example).
    """
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"obfuscation rate (a recipe's augment.obfuscation.rate) must be within [0, 1], got {rate}")
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise InputError(f"unknown obfuscation methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    rng = random.Random(f"augment\x1f{seed}")
    out: list[E] = []
    for ex in examples:
        item: Any = ex
        if not any(v == 1 for v in item.labels.values()):
            continue
        # Draw both numbers for every positive so that one example's result does not shift the others'.
        take, method = rng.random() < rate, rng.choice(list(methods))
        if not take:
            continue
        new_text = obfuscate(item.text, method, seed)
        if new_text == item.text:
            continue
        meta = dict(getattr(item, "meta", None) or {})
        meta.update({"obfuscation": method, "plain_text": item.text})
        out.append(dataclasses.replace(item, text=new_text, labels=dict(item.labels), meta=meta))
    return out
