from pathlib import Path

import pytest

from harmscan.errors import HarmscanError
from harmscan.labels import DEFAULT_LABELS, default_taxonomy, load_taxonomy
from harmscan.text import dedup_key, normalize_text


def test_default_taxonomy_has_the_three_heads_with_definitions():
    tax = default_taxonomy()
    assert tuple(tax.names) == DEFAULT_LABELS
    for label in tax:
        assert len(label.definition) > 40
    assert tax.index("violence") == 1


def test_user_adds_a_label_from_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = tmp_path / "labels.yaml"
    cfg.write_text(
        "labels:\n"
        "  - {name: toxicity, definition: rude}\n"
        "  - {name: violence, definition: hurt}\n"
        "  - {name: illegal_advice, definition: crime}\n"
        "  - {name: self_harm, definition: Encourages or describes self-harm.}\n"
    )
    monkeypatch.setenv("HARMSCAN_LABELS", str(cfg))
    tax = load_taxonomy()
    assert tax.names[-1] == "self_harm"
    assert tax.get("self_harm").definition.startswith("Encourages")


@pytest.mark.parametrize(
    "content, message",
    [
        ("labels: []\n", "empty"),
        ("labels:\n  - {name: a}\n  - {name: a}\n", "duplicate"),
        ("labels:\n  - {name: 'self harm'}\n", "identifier"),
        ("nope: 1\n", "labels:"),
        ("labels: [\n", "not valid YAML"),
    ],
)
def test_bad_label_files_give_clear_errors(tmp_path: Path, content: str, message: str):
    cfg = tmp_path / "labels.yaml"
    cfg.write_text(content)
    with pytest.raises(HarmscanError, match=message):
        load_taxonomy(cfg)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ｋｉｌｌ them", "kill them"),                 # full-width
        ("k\u200bi\u200cl\u200dl them", "kill them"),  # zero-width
        ("kіll them", "kill them"),                    # Cyrillic i inside a Latin word
        ("@someone go away http://t.co/x", "@user go away http"),
        ("  many   spaces\t\there ", "many spaces here"),
        ("Привет мир", "Привет мир"),                  # wholly Cyrillic words stay
    ],
)
def test_normalize_text(raw: str, expected: str):
    assert normalize_text(raw) == expected
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)


def test_dedup_key_ignores_case_punctuation_and_handles():
    assert dedup_key("@bob YOU are an IDIOT!!!") == dedup_key("@alice you are an idiot")
    assert dedup_key("you are an idiot") != dedup_key("you are not an idiot")


def _reference_normalize(text: str) -> str:
    """normalize_text as first written, every step unconditional: the fast version must give the same text
    (the model was trained on this one's output)."""
    import re
    import unicodedata

    from harmscan import text as t

    text = unicodedata.normalize("NFKC", text)
    text = text.translate(t._INVISIBLE)
    text = t._CONTROL.sub(" ", text)
    text = t._WORD.sub(t._fold_mixed_script, text)
    text = re.sub(r"(?:https?://|www\.)\S+", "http", text, flags=re.IGNORECASE)
    text = t._MENTION.sub("@user", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+", " ", text)
    text = t._NEWLINES.sub("\n", text)
    return text.strip()


def test_fast_normalisation_gives_the_reference_output():
    import random

    rng = random.Random(0)
    pieces = [" ", "  ", "\t", "\u00a0", "\u2003", "\u3000", "\n", "\r\n", "\r", " \n ", "\u200b", "\ufeff",
              "\u00ad", "x", "Kill", "@", "@bob", "a@b", "http://A.b", "HTTPS://x.y/z", "WwW.site.com", "hTTp:/",
              "www", "kіll", "ｋｉｌｌ", "\x00", "\x07", "é", "ſ", "\u212a", "Ω", "Привет", ".", "😀"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(20000)]
    mismatches = [t for t in texts if normalize_text(t) != _reference_normalize(t)]
    assert mismatches == []
