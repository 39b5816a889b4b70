"""Readers for benign text and hard negatives (instructions, safety advice, crisis tweets, Wikipedia), and the
lexicon, which is registered and verified but yields no training examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmscan.training.readers.base import (
    BENIGN,
    Example,
    check,
    detokenize_wiki,
    label_dict,
    lines,
    read_json,
    register,
    table,
    unescape_tweet,
)


@register("alpaca_instructions")
def read_alpaca(folder: Path) -> Iterator[Example]:
    path = folder / "alpaca.json"
    items = read_json(path)
    check(isinstance(items, list), path, 1, "expected a list of instructions")
    for item in items:
        check(isinstance(item, dict) and "instruction" in item, path, None, "an item has no 'instruction'")
        text = str(item["instruction"])
        if text.strip():
            yield Example(text, dict(BENIGN), "alpaca_instructions")


@register("safetext")
def read_safetext(folder: Path) -> Iterator[Example]:
    path = folder / "SafeText.json"
    data = read_json(path)
    check(isinstance(data, dict), path, 1, "expected an object of scenarios")
    for scenario, advice in data.items():
        check(isinstance(advice, dict), path, None, f"scenario {scenario!r} is not an object")
        for kind in ("safe", "unsafe"):
            # unsafe advice ("text while driving", "mix ammonia and bleach") is dangerous, not violence; some
            # of it is also illegal: both unknown rather than 0
            labels = BENIGN if kind == "safe" else label_dict(0, None, None)
            for text in advice.get(kind, []):
                yield Example(f"{scenario} {text}", dict(labels), "safetext", {"advice": kind})


# Rows of a presumed-benign source that a keyword guard flags get toxicity/violence unknown instead of 0:
# a few crisis tweets swear at or wish death on the perpetrators ("deserves to be hung ... tortured").
_CRISIS_GUARD = re.compile(
    r"\b(fuck\w*|shit\w*|bitch\w*|cunt\w*|asshole\w*|bastard\w*|nigg\w*|fag(got)?s?|retard\w*|whores?|sluts?"
    r"|idiots?|morons?|stupid|scum\w*|dick(head)?s?|damn(ed|it)?)\b"
    r"|\b(rot|burn) in hell\b|\bdeserves? (to )?(die|be (hung|hanged|shot|killed|tortured))\b"
    r"|\b(hope|wish)\b.{0,30}\b(die|dies|rot|burn|suffer|shot|killed|tortured)\b"
    r"|\b(should|must|gotta|needs? to|let'?s|i'?d|i'?ll|i will|i would|someone)\s+(\w+\s+){0,2}"
    r"(kill|shoot|hang|torture|execute|behead|murder)\b",
    re.IGNORECASE,
)


# The 26 events of CrisisLexT26, one `<event>-tweets_labeled.csv` each: the same list as the files pinned in
# training/registry/crisislex_t26_hardneg.yaml (a reader sees the folder, not the entry).
CRISISLEX_EVENTS = (
    "2012_Colorado_wildfires", "2012_Costa_Rica_earthquake", "2012_Guatemala_earthquake",
    "2012_Italy_earthquakes", "2012_Philipinnes_floods", "2012_Typhoon_Pablo", "2012_Venezuela_refinery",
    "2013_Alberta_floods", "2013_Australia_bushfire", "2013_Bohol_earthquake", "2013_Boston_bombings",
    "2013_Brazil_nightclub_fire", "2013_Colorado_floods", "2013_Glasgow_helicopter_crash",
    "2013_LA_airport_shootings", "2013_Lac_Megantic_train_crash", "2013_Manila_floods", "2013_NY_train_crash",
    "2013_Queensland_floods", "2013_Russia_meteor", "2013_Sardinia_floods", "2013_Savar_building_collapse",
    "2013_Singapore_haze", "2013_Spain_train_crash", "2013_Typhoon_Yolanda", "2013_West_Texas_explosion",
)


@register("crisislex_t26_hardneg")
def read_crisislex(folder: Path) -> Iterator[Example]:
    tweet_files = sorted(f"{event}-tweets_labeled.csv" for event in CRISISLEX_EVENTS)
    for file in tweet_files:
        path = folder / file
        event = file.split("-")[0]
        for _, row in table(path, ("Tweet Text", "Informativeness")):
            text = unescape_tweet(row["Tweet Text"])
            if not text.strip():
                continue
            # reporting a bombing or a shooting is not violence: a hard negative (retweets are deduped later)
            flagged = bool(_CRISIS_GUARD.search(text))
            labels = label_dict(None, None, 0) if flagged else BENIGN
            yield Example(
                text, dict(labels), "crisislex_t26_hardneg",
                {"event": event, "informativeness": row["Informativeness"], "guard": str(flagged).lower()},
            )


WIKI_MIN_CHARS = 200
_WIKI_TITLE = re.compile(r"^ = ([^=].*) = $")


@register("wikitext2_hardneg")
def read_wikitext(folder: Path) -> Iterator[Example]:
    for split in ("valid", "test"):
        title = ""
        for line in lines(folder / f"{split}.txt"):
            m = _WIKI_TITLE.match(line)
            if m:
                title = m.group(1).strip()
                continue
            if not line.strip() or line.lstrip().startswith("="):
                continue  # blank lines and section headings
            text = detokenize_wiki(line)
            if len(text) >= WIKI_MIN_CHARS:
                # much military history and disaster reporting: mentioning violence is not violence
                yield Example(text, dict(BENIGN), "wikitext2_hardneg", {"title": title, "split": split})


@register("lexicon_ldnoobw_en")
def read_lexicon(folder: Path) -> Iterator[Example]:
    """A word list is not labelled text: it yields no training examples (see `lexicon_terms`)."""
    lexicon_terms(folder)  # still parse it, so a corrupt copy is reported like any other source
    return iter(())


def lexicon_terms(folder: Path) -> list[str]:
    """The LDNOOBW English terms, for a lexical baseline or feature (never training targets)."""
    path = folder / "en.json"
    terms = read_json(path)
    ok = isinstance(terms, list) and all(isinstance(t, str) for t in terms)
    check(ok, path, 1, "expected a list of terms")
    return list(terms)
