"""Which language a text is in, so that a policy can route texts the model was not trained for.

py3langid (a base dependency: pure Python + numpy, its model ships in the wheel) tells 97 languages by
their ISO 639-1 codes. A guess it is unsure of, or a text with too few letters to judge ("ok", "lol", an
emoji), is `und` (undetermined, ISO 639-2), which no policy treats as out of scope: routing a text for
its language needs evidence that it is in another one.

Cost, measured on the 2-core development machine (1 thread): ~130 µs a short text (a tweet or a
sentence), ~8% of scoring one with the int8 model; the first call loads the identifier (~1 s). Only the
first `MAX_CHARS` characters are read, so a long text costs no more. Scores never depend on it: the
language is read from the caller's text beside the model, never fed to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNDETERMINED = "und"
# Below this probability the guess is `und`. English sentences of three words or more scored 0.5 to 0.99
# in a spot check ("how do I kill a python process": 0.50); French and German threats 0.84 to 0.999.
MIN_CONFIDENCE = 0.5
MIN_LETTERS = 8  # "ok", "lol", "gg wp": no language can be told from these
MAX_CHARS = 1000  # a text's language is clear from its start; this bounds the cost of long ones
# The taxonomy's sources are English: a bundle whose manifest names no languages was trained on English.
DEFAULT_LANGUAGES = ("en",)

_identifier: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 ("en", "fr"), or "und"
    confidence: float  # the identifier's probability for its best guess (also given when it is `und`)


def _get_identifier() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            # norm_probs: probabilities (0..1) rather than raw log scores, so one threshold fits every length.
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def detect(text: str) -> Language:
    """The language of one text, `und` when unsure or when it has too few letters."""
    head = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in head) < MIN_LETTERS:
        return Language(UNDETERMINED, 0.0)
    code, confidence = _get_identifier().classify(head)
    confidence = round(float(confidence), 4)
    return Language(str(code) if confidence >= MIN_CONFIDENCE else UNDETERMINED, confidence)


def detect_many(texts: Iterable[str]) -> list[Language]:
    return [detect(t) for t in texts]


def bundle_languages(training: Mapping[str, Any]) -> tuple[str, ...]:
    """The languages a bundle was trained on (`bundle.info.training`): its `languages` when recorded, else
    English."""
    recorded = training.get("languages")
    if isinstance(recorded, Sequence) and not isinstance(recorded, str) and recorded:
        return tuple(str(x).lower() for x in recorded)
    return DEFAULT_LANGUAGES
