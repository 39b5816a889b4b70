"""`normalize_text` with an offset map back to the caller's original string.

The model reads normalised text, but a span must point into the text the user gave us. This module replays
the steps of `harmscan.text.normalize_text` while tracking, for every output character, the range of
original characters it came from. The result is checked against `normalize_text` itself: if the two ever
disagree (the normaliser changed and this module did not follow), spans fall back to the whole text rather
than pointing at the wrong place.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# The normaliser's own patterns, so both sides match exactly the same characters.
from harmscan.text import (
    _CONTROL,
    _INVISIBLE_RE,
    _MENTION,
    _NEWLINES,
    _SPACES,
    _URL,
    _WORD,
    _fold_mixed_script,
    normalize_text,
)

log = logging.getLogger(__name__)
_CR = re.compile(r"\r\n?")


@dataclass
class MappedText:
    """A normalised text and, per character, the [start, end) range of original characters it came from."""

    text: str
    starts: list[int]
    ends: list[int]
    original_length: int
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


def _sub(pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], m: MappedText) -> MappedText:
    """re.sub that carries offsets: same-length replacements map 1:1, others map to the whole match."""
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
    """`normalize_text(text)` plus the map from its characters back to `text` (see the module doc)."""
    m = _nfkc(text)
    m = _sub(_INVISIBLE_RE, "", m)
    m = _sub(_CONTROL, " ", m)
    m = _sub(_WORD, _fold_mixed_script, m)
    m = _sub(_URL, "http", m)
    m = _sub(_MENTION, "@user", m)
    m = _sub(_CR, "\n", m)
    m = _sub(_SPACES, " ", m)
    m = _sub(_NEWLINES, "\n", m)
    m = _strip(m)
    expected = normalize_text(text)
    if m.text != expected:
        log.warning("offset map disagrees with normalize_text; spans for this text cover the whole text")
        return MappedText(expected, [0] * len(expected), [len(text)] * len(expected), len(text), exact=False)
    return m
