"""Text normalisation shared by training and inference: the same function on both sides.

Why each step:
- NFKC folds full-width, ligature and other compatibility forms to plain letters ("ｋｉｌｌ" -> "kill").
- Zero-width and other invisible format characters are a common evasion trick; they carry no meaning.
- Homoglyphs: a word mixing Latin with Cyrillic/Greek look-alikes ("kіll" with a Cyrillic i) is folded to
  Latin; words written wholly in another script are left alone.
- Twitter sources use "@user" placeholders and raw URLs; real traffic has handles and links. Both sides are
  mapped to the same tokens so the model does not learn a source's formatting.

The steps are written once, in `_STEPS`, and run two ways: `normalize_text` gives the text the model reads;
`normalize_with_offsets` gives the same text plus, per output character, the range of original characters
it came from, so that a span found in the normalised text can point into the text the user gave us.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

NORMALIZER_VERSION = 1

_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E,
     0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x2066,
     0x2067, 0x2068, 0x2069, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0x3164, 0xFE0F, 0xFEFF,
     0xFFA0],
    None,
)
# Cyrillic and Greek letters that render like Latin ones.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁӏԛԝАВЕКМНОРСТХІЈЅУ" "αεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdlqwABEKMHOPCTXIJSY" "aeikvoptuxABEZHIKMNOPTYX",
)
_LATIN = re.compile(r"[A-Za-z]")
_NON_LATIN_LOOKALIKE = re.compile(r"[\u0370-\u03FF\u0400-\u04FF\u0500-\u052F]")
_WORD = re.compile(r"\w+")
# Case-insensitive by hand: re.IGNORECASE makes this search several times slower.
_URL = re.compile(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)\S+")
_INVISIBLE_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in _INVISIBLE) + "]")
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CR = re.compile(r"\r\n?")
# Runs of two or more spaces, or any other horizontal space: a lone " " is already right and is skipped.
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_NEWLINES = re.compile(r"\s*\n\s*")


def _fold_mixed_script(match: re.Match[str]) -> str:
    word = match.group(0)
    if _LATIN.search(word) and _NON_LATIN_LOOKALIKE.search(word):
        return word.translate(_CONFUSABLES)
    return word


Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class _Step:
    """One substitution after NFKC. `may_match` is a cheap test that is False only when `pattern` cannot
    match: the step is then skipped (the same output, 3x faster on tweets, which matters on a GPU where the
    model is no longer the slow part)."""

    pattern: re.Pattern[str]
    repl: Replacement
    may_match: Callable[[str], bool] = lambda text: True


# In order; NFKC runs before them and strip() after them.
_STEPS: tuple[_Step, ...] = (
    _Step(_INVISIBLE_RE, ""),
    _Step(_CONTROL, " "),
    _Step(_WORD, _fold_mixed_script, lambda text: _NON_LATIN_LOOKALIKE.search(text) is not None),
    _Step(_URL, "http"),
    _Step(_MENTION, "@user", lambda text: "@" in text),
    _Step(_CR, "\n", lambda text: "\r" in text),
    _Step(_SPACES, " "),
    _Step(_NEWLINES, "\n", lambda text: "\n" in text),
)


def normalize_text(text: str) -> str:
    """Normalise one text for the model. Idempotent: normalize_text(normalize_text(t)) == normalize_text(t)."""
    text = unicodedata.normalize("NFKC", text)
    for step in _STEPS:
        if step.may_match(text):
            text = step.pattern.sub(step.repl, text)
    return text.strip()


def dedup_key(text: str) -> str:
    """A key for near-exact duplicate detection across sources (case, punctuation and spacing ignored)."""
    norm = normalize_text(text).casefold()
    norm = norm.replace("@user", " ").replace("http", " ")
    return " ".join(_WORD.findall(norm))


# -- the same steps with an offset map ------------------------------------------------------------------
@dataclass
class MappedText:
    """A normalised text and, per character, the [start, end) range of original characters it came from."""

    text: str
    starts: list[int]
    ends: list[int]
    original_length: int
    # False would mean the map is unusable and spans cover the whole text. Both forms run `_STEPS`, so the
    # map always holds today; the flag stays for callers that check it.
    exact: bool = True

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) range of the normalised text to a range of the original text."""
        if not self.exact or not self.text:
            return 0, self.original_length
        start = min(max(start, 0), len(self.text) - 1)
        end = min(max(end, start + 1), len(self.text))
        return self.starts[start], self.ends[end - 1]


def _identity(text: str) -> MappedText:
    return MappedText(text, list(range(len(text))), list(range(1, len(text) + 1)), len(text))


def _sub(pattern: re.Pattern[str], repl: Replacement, m: MappedText) -> MappedText:
    """`pattern.sub(repl, m.text)` that carries offsets: same-length replacements map 1:1, others map to the
    whole match."""
    text, starts, ends = m.text, m.starts, m.ends
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for match in pattern.finditer(text):
        a, b = match.span()
        out.append(text[pos:a])
        new_starts.extend(starts[pos:a])
        new_ends.extend(ends[pos:a])
        r = repl(match) if callable(repl) else repl
        if len(r) == b - a:
            new_starts.extend(starts[a:b])
            new_ends.extend(ends[a:b])
        elif r:
            lo = starts[a] if a < len(starts) else m.original_length
            hi = ends[b - 1] if b > a else lo
            new_starts.extend([lo] * len(r))
            new_ends.extend([hi] * len(r))
        out.append(r)
        pos = b
    out.append(text[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return MappedText("".join(out), new_starts, new_ends, m.original_length)


def _nfkc_segments(text: str, boundary: Callable[[str], bool]) -> MappedText | None:
    """NFKC applied per segment (a new segment starts where `boundary(char)`); None if that changes the
    result, i.e. NFKC composed across a segment boundary."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    seg_start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or boundary(text[i]):
            piece = unicodedata.normalize("NFKC", text[seg_start:i])
            out.append(piece)
            starts.extend([seg_start] * len(piece))
            ends.extend([i] * len(piece))
            seg_start = i
    joined = "".join(out)
    if joined != unicodedata.normalize("NFKC", text):
        return None
    return MappedText(joined, starts, ends, len(text))


def _nfkc(text: str) -> MappedText:
    if text.isascii():  # NFKC leaves ASCII unchanged: the common case costs nothing
        return _identity(text)
    # Per starter character first (fine-grained); NFKC never composes a following ASCII character, so
    # splitting before ASCII is always safe; the whole text as one segment is the last resort.
    for boundary in (lambda c: unicodedata.combining(c) == 0 and not 0x1160 <= ord(c) <= 0x11FF, str.isascii):
        mapped = _nfkc_segments(text, boundary)
        if mapped is not None:
            return mapped
    norm = unicodedata.normalize("NFKC", text)
    return MappedText(norm, [0] * len(norm), [len(text)] * len(norm), len(text))


def _strip(m: MappedText) -> MappedText:
    stripped = m.text.strip()
    if not stripped:
        return MappedText("", [], [], m.original_length)
    a = len(m.text) - len(m.text.lstrip())
    b = a + len(stripped)
    return MappedText(stripped, m.starts[a:b], m.ends[a:b], m.original_length)


def normalize_with_offsets(text: str) -> MappedText:
    """`normalize_text(text)` plus the map from its characters back to `text`: the same steps, each
    carrying the offsets (`_nfkc` and `_sub` build exactly the text that NFKC and `pattern.sub` build)."""
    m = _nfkc(text)
    for step in _STEPS:
        if step.may_match(m.text):
            m = _sub(step.pattern, step.repl, m)
    return _strip(m)
