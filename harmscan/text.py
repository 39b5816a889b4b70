"""Text normalisation shared by training and inference: the same function on both sides.

Why each step:
- NFKC folds full-width, ligature and other compatibility forms to plain letters ("ｋｉｌｌ" -> "kill").
- Zero-width and other invisible format characters are a common evasion trick; they carry no meaning.
- Homoglyphs: a word mixing Latin with Cyrillic/Greek look-alikes ("kіll" with a Cyrillic i) is folded to
  Latin; words written wholly in another script are left alone.
- Twitter sources use "@user" placeholders and raw URLs; real traffic has handles and links. Both sides are
  mapped to the same tokens so the model does not learn a source's formatting.
"""

from __future__ import annotations

import re
import unicodedata

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
# Runs of two or more spaces, or any other horizontal space: a lone " " is already right and is skipped.
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_NEWLINES = re.compile(r"\s*\n\s*")


def _fold_mixed_script(match: re.Match[str]) -> str:
    word = match.group(0)
    if _LATIN.search(word) and _NON_LATIN_LOOKALIKE.search(word):
        return word.translate(_CONFUSABLES)
    return word


def normalize_text(text: str) -> str:
    """Normalise one text for the model. Idempotent: normalize_text(normalize_text(t)) == normalize_text(t)."""
    # Each step is skipped when a cheap test shows it has nothing to change: the same output, 3x faster
    # on tweets, which matters on a GPU where the model is no longer the slow part.
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _CONTROL.sub(" ", text)
    if _NON_LATIN_LOOKALIKE.search(text):
        text = _WORD.sub(_fold_mixed_script, text)
    text = _URL.sub("http", text)
    if "@" in text:
        text = _MENTION.sub("@user", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _NEWLINES.sub("\n", text)
    return text.strip()


def dedup_key(text: str) -> str:
    """A key for near-exact duplicate detection across sources (case, punctuation and spacing ignored)."""
    norm = normalize_text(text).casefold()
    norm = norm.replace("@user", " ").replace("http", " ")
    return " ".join(_WORD.findall(norm))
