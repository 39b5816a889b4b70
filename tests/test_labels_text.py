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


def test_scarce_heads_come_from_the_taxonomy_and_stay_out_of_manifests(tmp_path: Path):
    # Capping a source keeps positives of the `scarce: true` heads first; the flag is a training choice,
    # so the label entries a bundle stores are the same with or without it.
    cfg = tmp_path / "labels.yaml"
    cfg.write_text("labels:\n  - {name: toxicity, definition: rude}\n"
                   "  - {name: self_harm, definition: hurts oneself, scarce: true}\n")
    tax = load_taxonomy(cfg)
    assert tax.scarce_names == ["self_harm"]
    assert tax.to_list()[1] == {"name": "self_harm", "definition": "hurts oneself", "openai_categories": []}
    assert set(default_taxonomy().scarce_names) < set(default_taxonomy().names)


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


# The obfuscations and scripts real traffic carries; each exercises a step of the normaliser.
OFFSET_FIXTURES = [
    "", "   ", "\u200b", "k\u200bi\u200dl\u2060l him", "I ❤️ U 👍🏽 🏳️‍🌈 👨‍👩‍👧", "kіll the кat", "Привет мир",
    "k1ll 4ll 0f th3m", "ｋｉｌｌ ｔｈｅｍ", "caf\u00e9 cafe\u0301 e\u0301\u0302", "\u1100\u1161\u11a8 \u3131\u314f",
    "我要杀了他！？\u3000好吗", "\ufdfa", "\ufdfa\u200b\ufdfa x", "ﬁne ℌ ① ㎏ \u212b \U0001d54f", "\x00bell\x07",
    "a\r\nb\rc\r\r\nd", "  \t line  one \n\n\n  line two \u00a0\u2003end  ", "@bob @@x a@b.com @" + "x" * 40,
    "see HTTPS://t.co/x and www.Site.com/a?b=1 or http:/ no", "\u0301a", "\u0e33\u0e33", "\u1160\u1161",
    "x\u0345\u0300", "kill " * 2000, "\ufdfa" * 500,
]


@pytest.mark.parametrize("text", OFFSET_FIXTURES, ids=range(len(OFFSET_FIXTURES)))
def test_the_offset_form_gives_the_plain_text(text: str) -> None:
    # One set of steps runs both ways: the text the model reads and the text spans are measured in agree.
    from harmscan.text import normalize_with_offsets

    mapped = normalize_with_offsets(text)
    assert mapped.text == normalize_text(text)
    assert mapped.exact and len(mapped.starts) == len(mapped.ends) == len(mapped.text)
    assert all(0 <= s < e <= len(text) for s, e in zip(mapped.starts, mapped.ends, strict=True))
    assert mapped.starts == sorted(mapped.starts)  # the map keeps the order of the text


def test_a_span_of_the_normalised_text_points_at_the_obfuscated_original() -> None:
    from harmscan.text import normalize_with_offsets

    original = "ok  so k\u200bі\u200bl\u200bl  him\r\n@bob"
    mapped = normalize_with_offsets(original)
    assert mapped.text == "ok so kill him\n@user"
    for norm, orig in [("kill", "k\u200bі\u200bl\u200bl"), ("him", "him"), ("@user", "@bob")]:
        i = mapped.text.index(norm)
        s, e = mapped.original_span(i, i + len(norm))
        assert original[s:e] == orig
