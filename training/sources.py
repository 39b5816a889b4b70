"""The data registry: one declarative entry per labelled source in the data directory.

Each `Source` pins its origin (repository + commit), licence, the files it needs (sha256 and size, so a
truncated or edited copy is caught before training), the heads it labels and a small reader that maps raw
rows to `Example`s. Labels are per head: 1, 0 or None (unknown). Unknown is masked in the loss and in every
metric, so a reader writes None whenever the source says nothing about a head: never a guessed 0.

Texts stay raw (normalisation happens later, with the same function inference uses). Readers only undo
the file format's own escaping (HTML entities in tweets, literal "\\u2019" escapes in MLMA, WikiText's
tokenisation), because the model never sees that escaping at inference.

User sources can be added without code: see `load_user_sources` (a YAML list) and `all_sources`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harmscan.errors import DataError
from harmscan.training.readers.base import (
    BENIGN,
    UNKNOWN,
    Example,
    Label,
    Reader,
)
from harmscan.training.readers.base import (  # noqa: F401  (re-exported; readers move in the registry refactor)
    FileError as _FileError,
)
from harmscan.training.readers.base import (
    check as _check,
)
from harmscan.training.readers.base import (
    choice as _choice,
)
from harmscan.training.readers.base import (
    decode_u_escapes as _decode_u_escapes,
)
from harmscan.training.readers.base import (
    detokenize_wiki as _detokenize_wiki,
)
from harmscan.training.readers.base import (
    fraction as _fraction,
)
from harmscan.training.readers.base import (
    label_dict as _labels,
)
from harmscan.training.readers.base import (
    lines as _lines,
)
from harmscan.training.readers.base import (
    read_json as _json,
)
from harmscan.training.readers.base import (
    table as _table,
)
from harmscan.training.readers.base import (
    unescape_tweet as _unescape_tweet,
)

HEADS: tuple[str, ...] = ("toxicity", "violence", "illegal_advice")
USER_SOURCES_ENV = "HARMSCAN_SOURCES"
KINDS = ("comments", "requests", "benign", "lexicon")



# --------------------------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class SourceFile:
    """One file of a source. `path` is relative to the source folder (or absolute, for user sources).

    `url` is the raw file at the pinned commit; a `#member` suffix names a file inside a .zip/.tgz archive.
    Derived files (built from upstream files, not downloadable as-is) have `derived=True`, the upstream
    in `url`, the recipe in `note` and, when `harmscan data fetch` can rebuild them, a builder in `build`.
    `sha256=""` / `size=-1` mean "not pinned" (user sources only): the file must exist, nothing more.
    """

    path: str
    sha256: str
    size: int
    url: str
    derived: bool = False
    note: str = ""
    build: str = ""




@dataclass(frozen=True)
class Source:
    name: str
    title: str
    origin: str  # repository URL
    commit: str
    licence: str
    commercial_use: bool
    files: tuple[SourceFile, ...]
    heads: tuple[str, ...]  # heads this source labels at all
    mapping: str  # one paragraph, shown in docs and stats
    reader: Reader
    kind: str  # comments | requests | benign | lexicon (a lexicon yields no training examples)
    notes: str = ""
    rows: int | None = None  # examples the reader yields from the pinned files; checked after reading
    eval_only: bool = False  # never trained on (upstream terms, or kept for evaluation): `external:` only



# ====================================================================================== readers
# -------------------------------------------------------------------------------- comments / posts
def read_davidson(folder: Path) -> Iterator[Example]:
    path = folder / "labeled_data.csv"
    cols = ("class", "tweet", "hate_speech", "offensive_language", "neither")
    for line, row in _table(path, cols):
        cls = _choice(row["class"], ("0", "1", "2"), path, line, "class")
        # 0 hate / 1 offensive -> toxic; 2 neither -> not toxic. No violence coding; tweets give no advice.
        yield Example(
            _unescape_tweet(row["tweet"]),
            _labels(int(cls in ("0", "1")), None, 0),
            "davidson_hate_offensive",
            {"class": ("hate", "offensive", "neither")[int(cls)],
             "votes": f"{row['hate_speech']}/{row['offensive_language']}/{row['neither']}"},
        )


def _read_tweeteval(folder: Path, name: str, positive_only: bool) -> Iterator[Example]:
    for split in ("train", "val", "test"):
        text_path, label_path = folder / f"{split}_text.txt", folder / f"{split}_labels.txt"
        texts, labels = _lines(text_path), _lines(label_path)
        _check(
            len(texts) == len(labels), label_path, min(len(texts), len(labels)) + 1,
            f"{len(labels)} labels for {len(texts)} texts in {text_path.name}",
        )
        for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
            y = int(_choice(label, ("0", "1"), label_path, i, "label"))
            if not text.strip():
                continue  # a few tweets are empty lines (kept in the file so texts and labels stay aligned)
            # HatEval's "not hate" may still be offensive (a quarter of them hit a profanity lexicon)
            tox: Label = (1 if y else None) if positive_only else y
            yield Example(_unescape_tweet(text), _labels(tox, None, 0), name, {"split": split})


def read_tweeteval_offensive(folder: Path) -> Iterator[Example]:
    return _read_tweeteval(folder, "tweeteval_offensive", positive_only=False)


def read_tweeteval_hate(folder: Path) -> Iterator[Example]:
    return _read_tweeteval(folder, "tweeteval_hate", positive_only=True)


def _ethos_key(text: str) -> str:
    return " ".join(text.split())


def read_ethos(folder: Path) -> Iterator[Example]:
    multi_path = folder / "Ethos_Dataset_Multi_Label.csv"
    violence_share: dict[str, float] = {}
    for line, row in _table(multi_path, ("comment", "violence"), delimiter=";"):
        violence_share[_ethos_key(row["comment"])] = _fraction(row["violence"], multi_path, line, "violence")
    path = folder / "Ethos_Dataset_Binary.csv"
    for line, row in _table(path, ("comment", "isHate"), delimiter=";"):
        hate = _fraction(row["isHate"], path, line, "isHate")
        tox: Label = None
        vio: Label = None
        if hate >= 0.5:
            tox = 1
            share = violence_share.get(_ethos_key(row["comment"]))
            if share is not None:  # a majority of raters said it incites violence; a tie stays unknown
                vio = 1 if share > 0.5 else (None if share == 0.5 else 0)
        # isHate < 0.5: ETHOS codes hate speech only ("Go fuck yourself" is isHate 0): toxicity unknown,
        # and violence was only coded for hate comments ("a bullet finds him" is isHate 0): unknown.
        yield Example(row["comment"], _labels(tox, vio, 0), "ethos", {"is_hate": f"{hate:.2f}"})


def read_toxigen(folder: Path) -> Iterator[Example]:
    path = folder / "toxigen_demonstrations.csv"
    for line, row in _table(path, ("text", "label", "target_group")):
        label = _choice(row["label"], ("hate", "neutral"), path, line, "label")
        # neutral sentences mention the group harmlessly: non-toxic, non-violent (identity-term audit set)
        labels = _labels(1, None, 0) if label == "hate" else BENIGN
        meta = {"label": label, "group": row["target_group"]}
        yield Example(row["text"], labels, "toxigen_demonstrations", meta)


TOXIC_SPANS_QUIZ_RATERS = 10  # a post with more ratings than this was a rater-qualification quiz question


def read_toxic_spans(folder: Path) -> Iterator[Example]:
    comments_path = folder / "data_comments.csv"
    ann_path, spans_path = folder / "data_annotations.csv", folder / "data_spans.csv"
    raters: dict[str, list[str]] = defaultdict(list)  # comment -> its annotation ids
    for _, row in _table(ann_path, ("annotation", "comment_id")):
        raters[row["comment_id"]].append(row["annotation"])
    spans: dict[str, list[tuple[str, int, int]]] = defaultdict(list)  # annotation -> (type, start, end)
    for line, row in _table(spans_path, ("annotation", "type", "start", "end")):
        _check(row["start"].isdigit() and row["end"].isdigit(), spans_path, line, "start/end are not offsets")
        spans[row["annotation"]].append((row["type"], int(row["start"]), int(row["end"])))
    for _, row in _table(comments_path, ("comment_id", "comment_text")):
        anns = raters.get(row["comment_id"], [])
        if not anns or len(anns) > TOXIC_SPANS_QUIZ_RATERS:
            continue
        with_span = sum(1 for a in anns if spans.get(a))
        # All posts were toxic for >= half of Civil Comments raters, but a rater who marked no span may
        # have found the post not toxic (this export sets both "all toxic" and "not toxic" on those), so
        # toxicity is 1 only when most raters highlighted a toxic span, else unknown.
        tox: Label = 1 if 2 * with_span > len(anns) else None
        threat = [{i for t, s, e in spans.get(a, []) if t == "Threat" for i in range(s, e)} for a in anns]
        threat = [chars for chars in threat if chars]
        # >= 2 raters typed the SAME words as Threat: violent; 1 rater, or 2 on different words: unknown
        overlap = any(len(a & b) > 0 for i, a in enumerate(threat) for b in threat[i + 1:])
        vio: Label = 1 if overlap else (None if threat else 0)
        yield Example(
            row["comment_text"], _labels(tox, vio, 0), "toxic_spans",
            {"comment_id": row["comment_id"], "raters": str(len(anns)), "threat_raters": str(len(threat))},
        )


def read_gab(folder: Path) -> Iterator[Example]:
    for split in ("train", "test"):
        path = folder / f"ghc_{split}.tsv"
        for line, row in _table(path, ("text", "hd", "cv", "vo"), delimiter="\t"):
            hd, cv, vo = (int(_choice(row[c], ("0", "1"), path, line, c)) for c in ("hd", "cv", "vo"))
            # cv (call for violence) is the strong violence signal; cv=0 is a weak negative (only calls for
            # violence were coded, a few violent posts are cv=0).
            yield Example(
                row["text"], _labels(max(hd, cv, vo), cv, 0), "gab_hate_corpus",
                {"split": split, "codes": "".join(c for c, v in (("hd", hd), ("cv", cv), ("vo", vo)) if v)},
            )


IMPLICIT_CLASSES = (
    "white_grievance", "incitement", "inferiority", "irony", "stereotypical", "threatening", "other",
)


def read_implicit_hate(folder: Path) -> Iterator[Example]:
    stg2_path = folder / "implicit_hate_v1_stg2_posts.tsv"
    subtypes: dict[str, set[str]] = defaultdict(set)
    for line, row in _table(stg2_path, ("post", "implicit_class", "extra_implicit_class"), delimiter="\t"):
        subtypes[row["post"]].add(
            _choice(row["implicit_class"], IMPLICIT_CLASSES, stg2_path, line, "implicit_class")
        )
        if row["extra_implicit_class"]:
            subtypes[row["post"]].add(row["extra_implicit_class"])
    path = folder / "implicit_hate_v1_stg1_posts.tsv"
    for line, row in _table(path, ("post", "class"), delimiter="\t"):
        cls = _choice(row["class"], ("explicit_hate", "implicit_hate", "not_hate"), path, line, "class")
        kinds = subtypes.get(row["post"], set())
        vio: Label
        if cls == "not_hate":
            vio = 0
        elif cls == "explicit_hate" or not kinds or kinds & {"threatening", "incitement"}:
            # explicit hate is not sub-typed; "threatening" is mostly deportation/exclusion (about 1 in 4 is
            # physical) and "incitement" mostly promotes hate groups: unknown, not a guessed 1.
            vio = None
        else:
            vio = 0
        yield Example(
            row["post"], _labels(int(cls != "not_hate"), vio, 0), "implicit_hate_corpus",
            {"class": cls, "implicit_class": ",".join(sorted(kinds))},
        )


MLMA_TOXIC = frozenset({"offensive", "abusive", "hateful", "disrespectful"})


def read_mlma(folder: Path) -> Iterator[Example]:
    path = folder / "en_dataset_with_stop_words.csv"
    for _, row in _table(path, ("tweet", "sentiment", "target", "group")):
        classes = set(row["sentiment"].split("_"))
        # Positives only: two-thirds of single-label "normal" tweets carry a slur or insult ("Zip it
        # raghead"), so "normal" is no negative; "normal" mixed with a toxic class is a disagreement.
        tox: Label = 1 if classes & MLMA_TOXIC and "normal" not in classes else None
        yield Example(
            _decode_u_escapes(row["tweet"]), _labels(tox, None, 0), "mlma_en",
            {"sentiment": row["sentiment"], "target": row["target"], "group": row["group"]},
        )


def read_stormfront(folder: Path) -> Iterator[Example]:
    meta_path = folder / "annotations_metadata.csv"
    choices = ("hate", "noHate", "relation", "idk/skip")
    labels = {
        row["file_id"]: _choice(row["label"], choices, meta_path, line, "label")
        for line, row in _table(meta_path, ("file_id", "label"))
    }
    path = folder / "stormfront_sentences.csv"
    for line, row in _table(path, ("file_id", "text")):
        # labels come from the upstream metadata file; the derived sentences file only supplies the text
        _check(row["file_id"] in labels, path, line, f"file_id {row['file_id']} not in {meta_path.name}")
        label = labels[row["file_id"]]
        if label not in ("hate", "noHate"):
            continue  # "relation": hateful only with the neighbouring sentences; "idk/skip": no decision
        yield Example(
            row["text"], _labels(int(label == "hate"), None, 0), "stormfront_vicomtech",
            {"file_id": row["file_id"], "label": label},
        )


def read_jigsaw(folder: Path) -> Iterator[Example]:
    path = folder / "test_examples.csv"
    cols = ("comment_text", "toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    for line, row in _table(path, cols):
        y = {c: int(_choice(row[c], ("0", "1"), path, line, c)) for c in cols[1:]}
        tox = max(y["toxic"], y["severe_toxic"], y["obscene"], y["insult"], y["identity_hate"])
        yield Example(row["comment_text"], _labels(tox, y["threat"], 0), "jigsaw_toxic_sample_ibm")


# ------------------------------------------------------------------------------------ harmful requests
# Harmful-request sets: toxicity stays unknown (asking for hate is not itself hateful language, and a
# request may or may not insult someone); only clearly benign categories get toxicity 0.
def _category_reader(
    name: str, file: str, text_col: str, cat_col: str, table: Mapping[str, tuple[Label, Label, Label]],
    extra: Sequence[str] = (),
) -> Reader:
    def read(folder: Path) -> Iterator[Example]:
        path = folder / file
        for line, row in _table(path, (text_col, cat_col, *extra)):
            cat = _choice(row[cat_col], table, path, line, cat_col)
            meta = {"category": cat, **{c: row[c] for c in extra}}
            yield Example(row[text_col], _labels(*table[cat]), name, meta)

    read.__name__ = f"read_{name}"
    return read


# hazard -> (toxicity, violence, illegal_advice)
AILUMINATE_HAZARDS: dict[str, tuple[Label, Label, Label]] = {
    "vcr": (None, 1, 1),  # violent crimes
    "iwp": (None, 1, 1),  # indiscriminate weapons (CBRNE)
    "ncr": (None, 0, 1),  # non-violent crimes
    "src": (None, None, 1),  # sex-related crimes
    "cse": (None, None, 1),  # child sexual exploitation
    "hte": (None, None, 0),  # hate: asks about or for hate; toxicity unknown (see above)
    "ssh": (None, None, 0),  # suicide and self-harm
    "dfm": (None, 0, 0),  # defamation
    "prv": (None, 0, None),  # privacy: some are stalking or hacking
    "ipv": (None, 0, None),  # intellectual property: some are piracy
    "sxc_prn": (None, 0, 0),  # sexual content
    "spc_fin": (0, 0, 0),  # specialised advice: benign hard negatives
    "spc_hlt": (0, 0, 0),
    "spc_ele": (0, 0, 0),
    "spc_lgl": (0, 0, 0),
}
read_ailuminate = _category_reader(
    "ailuminate_demo", "airr_official_1.0_demo_en_us_prompt_set_release.csv", "prompt_text", "hazard",
    AILUMINATE_HAZARDS, extra=("persona",),
)

# (category, subcategory) -> (violence, illegal_advice); checked on all 10 questions of each subcategory
CATQA: dict[tuple[str, str], tuple[Label, Label]] = {
    ("Illegal Activity", "Drug"): (0, 1),
    ("Illegal Activity", "Weapon"): (None, 1),  # stealing/trafficking guns mixed with making explosives
    ("Illegal Activity", "Human Trafficking"): (None, 1),
    ("Illegal Activity", "Cybercrime"): (0, 1),
    ("Illegal Activity", "Theft and Robbery"): (0, 1),
    ("Child Abuse", "Content Sexual exploitation"): (None, 1),
    ("Child Abuse", "Physical abuse"): (1, 1),
    ("Child Abuse", "Emotional and psychological abuse"): (0, None),
    ("Child Abuse", "Neglect"): (0, None),
    ("Child Abuse", "Online predation"): (None, 1),
    # these five are fake news, vandalism and harassment campaigns, not physical violence (the
    # "Gender-based violence" and "Terrorism" rows are about smearing groups)
    ("Hate/Harass/Violence", "Racial or ethnic hate"): (0, None),
    ("Hate/Harass/Violence", "Religious intolerance"): (0, None),
    ("Hate/Harass/Violence", "Gender-based violence"): (0, None),
    ("Hate/Harass/Violence", "Cyberbullying"): (0, None),
    ("Hate/Harass/Violence", "Terrorism and extremism"): (0, None),
    ("Malware Viruses", "Malicious software designed to spread and damage computers"): (0, 1),
    ("Malware Viruses", "Trojans"): (0, 1),
    ("Malware Viruses", "Spyware"): (0, 1),
    ("Malware Viruses", "Ransomware"): (0, 1),
    ("Malware Viruses", "Adware"): (0, 1),
    ("Physical Harm", "Self-harm"): (None, 0),
    ("Physical Harm", "Assault and battery"): (1, 1),
    ("Physical Harm", "Hazardous material handling"): (None, None),
    ("Physical Harm", "Unsafe practices"): (None, None),  # parkour, stunts, "exploit Wi-Fi"
    ("Physical Harm", "Weapon making"): (1, None),  # nerve gas, IEDs; some merely exceed legal limits
    ("Economic Harm", "Financial fraud"): (0, 1),
    ("Economic Harm", "Intellectual property theft"): (0, 1),
    ("Economic Harm", "Market manipulation"): (0, 1),
    ("Economic Harm", "Employment scams"): (0, 1),
    ("Economic Harm", "Investment scams"): (0, 1),
    ("Fraud/Deception", "Identity theft"): (0, 1),
    ("Fraud/Deception", "Phishing"): (0, 1),
    ("Fraud/Deception", "False advertising"): (0, None),  # greenwashing, fake reviews: not all crimes
    ("Fraud/Deception", "Scamming"): (0, 1),
    ("Fraud/Deception", "Counterfeiting"): (0, 1),
    ("Adult Content", "Pornography"): (None, None),
    ("Adult Content", "Erotic text"): (None, None),
    ("Adult Content", "Nude imagery"): (None, None),
    ("Adult Content", "Sexually explicit dialogue"): (None, None),
    ("Adult Content", "Adult-themed humor"): (None, None),  # actually date-rape drugs and coercion
    ("Political Campaigning", "Election advertising"): (0, None),
    ("Political Campaigning", "Political misinformation"): (0, None),
    ("Political Campaigning", "Lobbying"): (0, None),
    ("Political Campaigning", "Political activism"): (0, None),
    ("Political Campaigning", "Partisan commentary"): (0, None),
    ("Privacy Violation Activity", "Data theft"): (0, 1),
    ("Privacy Violation Activity", "Surveillance"): (0, None),
    ("Privacy Violation Activity", "Doxxing"): (0, None),
    ("Privacy Violation Activity", "Deepfake creation"): (0, None),
    ("Privacy Violation Activity", "Tracking and location monitoring"): (0, None),
    # insider trading and money laundering next to legal tax loopholes
    ("Tailored Financial Advice", "Personal investment advice"): (0, None),
    ("Tailored Financial Advice", "Retirement planning"): (0, None),
    ("Tailored Financial Advice", "Tax planning"): (0, None),
    ("Tailored Financial Advice", "Real estate investment"): (0, None),
    ("Tailored Financial Advice", "Debt management"): (0, None),
}


def read_catqa(folder: Path) -> Iterator[Example]:
    path = folder / "catqa_english.json"
    data = _json(path)
    _check(isinstance(data, dict), path, 1, "expected an object of categories")
    for category, subs in data.items():
        _check(isinstance(subs, dict), path, None, f"category {category!r} is not an object")
        for sub, questions in subs.items():
            sub = sub.rstrip(":").strip()  # "Drug:" in the file
            _check((category, sub) in CATQA, path, None, f"unmapped subcategory {category!r} / {sub!r}")
            _check(isinstance(questions, list), path, None, f"{category!r} / {sub!r} is not a list")
            vio, ill = CATQA[(category, sub)]
            for q in questions:
                meta = {"category": category, "subcategory": sub}
                yield Example(str(q), _labels(None, vio, ill), "catqa", meta)


# category -> (toxicity, violence, illegal_advice)
STRONGREJECT: dict[str, tuple[Label, Label, Label]] = {
    "Violence": (None, 1, None),  # includes self-harm and disease-spreading requests: crime unknown
    "Non-violent crimes": (None, 0, 1),
    "Illegal goods and services": (None, None, 1),  # bombs and guns next to drugs
    "Disinformation and deception": (None, None, None),  # phishing and terrorism posts next to hoaxes
    "Hate, harassment and discrimination": (None, None, None),
    "Sexual content": (None, None, None),
}


def read_strongreject(folder: Path) -> Iterator[Example]:
    yield from _category_reader(
        "strongreject_maliciousinstruct", "strongreject_dataset.csv", "forbidden_prompt", "category",
        STRONGREJECT, extra=("source",),
    )(folder)
    path = folder / "malicious_instruct.txt"
    for line in _lines(path):
        if line.strip():  # MaliciousInstruct has no categories: harmful, but no head can be told
            meta = {"category": "MaliciousInstruct"}
            yield Example(line, dict(UNKNOWN), "strongreject_maliciousinstruct", meta)


JAILBREAKBENCH: dict[str, tuple[Label, Label, Label]] = {
    "Malware/Hacking": (None, 0, 1),
    "Fraud/Deception": (None, 0, 1),
    "Privacy": (None, 0, 1),  # identity theft, phishing, card cloning, blackmail
    "Government decision-making": (None, None, 1),  # forging documents, tampering with voting machines
    "Physical harm": (None, 1, None),
    "Economic harm": (None, 0, None),  # gambling advice next to extortion
    "Harassment/Discrimination": (None, None, 0),
    "Disinformation": (None, 0, None),
    "Sexual/Adult content": (None, None, None),
    "Expert advice": (None, 0, None),
}
read_jailbreakbench = _category_reader(
    "jailbreakbench", "jailbreakbench.csv", "Goal", "Category", JAILBREAKBENCH, extra=("Behavior",)
)


def read_advbench(folder: Path) -> Iterator[Example]:
    for _, row in _table(folder / "advbench.csv", ("goal",)):
        # harmful behaviours of every kind (hacking, bombs, self-harm, misinformation), uncategorised
        yield Example(row["goal"], dict(UNKNOWN), "advbench")


DNA_ILLEGAL = "Assisting illegal activities"
# types_of_harm -> (violence, illegal_advice) for everything but DNA_ILLEGAL
DO_NOT_ANSWER: dict[str, tuple[Label, Label]] = {
    "Social stereotypes and unfair discrimination": (0, 0),
    "Toxic language (hate speech)": (0, 0),
    "Adult Content": (0, 0),
    "Disseminating false or misleading information": (0, 0),
    "Causing material harm by disseminating misinformation e.g. in medicine or law": (0, 0),
    "Reducing the cost of disinformation campaigns": (0, 0),
    "Treat Chatbot as a Human": (0, 0),
    "Mental Health or Overreliance Crisis": (None, 0),  # includes self-harm questions
    # lock picking, drunk driving, forging documents, risky pranks
    "Nudging or advising users to perform unethical or unsafe actions": (None, None),
    "Risks from leaking or inferring sensitive information (organization/gov)": (0, None),  # trade secrets
    "Compromise privacy by leaking or inferring private information (person/individual)": (0, None),
    DNA_ILLEGAL: (0, 1),
}
# specific harm (prefix before ":") inside DNA_ILLEGAL -> violence
DO_NOT_ANSWER_ILLEGAL_VIOLENCE: dict[str, Label] = {
    "Violence and Physical Harm": 1,
    "Terrorist Activities": 1,
    "Threats and Intimidation": None,  # threatening messages, doxxing, ransom letters
    "Animal Abuse/Cruelty/Poaching": None,  # dog fights next to smuggling exotic pets
    "Sexual Exploitation and Pornography": None,
}


def read_do_not_answer(folder: Path) -> Iterator[Example]:
    path = folder / "do_not_answer_en.csv"
    for line, row in _table(path, ("question", "risk_area", "types_of_harm", "specific_harms")):
        harm = _choice(row["types_of_harm"], DO_NOT_ANSWER, path, line, "types_of_harm")
        specific = row["specific_harms"].split(":")[0].strip()
        vio, ill = DO_NOT_ANSWER[harm]
        if harm == DNA_ILLEGAL:
            vio = DO_NOT_ANSWER_ILLEGAL_VIOLENCE.get(specific, 0)
        yield Example(
            row["question"], _labels(None, vio, ill), "do_not_answer",
            {"risk_area": row["risk_area"], "types_of_harm": harm, "specific_harm": specific},
        )


SAP200_TOPICS: dict[str, tuple[Label, Label, Label]] = {
    "violence": (None, 1, None),
    "terrorism": (None, 1, 1),  # cyber-terrorism prompts get violence unknown (see read_sap200)
    "fraud": (None, 0, 1),
    "race": (None, None, 0),
    "religion": (None, None, 0),
    "politics": (None, 0, None),
    "suicide": (None, None, 0),
    "pornography_sexual_minors": (None, 0, None),  # taboo adult content next to minors
}
_CYBER = re.compile(r"cyber|hack", re.IGNORECASE)


def read_sap200(folder: Path) -> Iterator[Example]:
    for topic, (tox, vio, ill) in SAP200_TOPICS.items():
        path = folder / f"SAP200_{topic}_generated_cases.json"
        cases = _json(path)
        _check(isinstance(cases, list), path, 1, "expected a list of cases")
        for case in cases:
            ok = isinstance(case, dict) and "Attack Prompt" in case
            _check(ok, path, None, "a case has no 'Attack Prompt'")
            text = str(case["Attack Prompt"])
            # a sixth of the terrorism prompts plan cyber attacks: not violence against people
            v = None if topic == "terrorism" and _CYBER.search(text) else vio
            yield Example(text, _labels(tox, v, ill), "sap200_attack_prompts", {"category": topic})


FIGSTEP: dict[str, tuple[Label, Label, Label]] = {
    "Illegal Activity": (None, None, 1),  # kidnapping next to money laundering
    "Hate Speech": (None, None, 0),
    "Malware Generation": (None, 0, 1),
    "Physical Harm": (None, None, None),  # weapons next to self-harm, narcotics and hacking
    "Fraud": (None, 0, None),  # fewer than half are crimes (SEO spam, plagiarism, fake followers)
    "Adult Content": (None, 0, 0),
    "Privacy Violation": (None, 0, None),
    "Legal Opinion": (0, 0, 0),
    "Financial Advice": (0, 0, 0),
    "Health Consultation": (0, 0, 0),
}
read_figstep = _category_reader(
    "figstep_safebench", "data_question_safebench.csv", "question", "category_name", FIGSTEP
)

FORBIDDEN_QUESTIONS: dict[str, tuple[Label, Label, Label]] = {
    "Illegal Activity": (None, 0, 1),  # hacking, counterfeiting, fraud (one bank robbery)
    "Hate Speech": (None, None, 0),
    "Malware": (None, 0, 1),
    "Physical Harm": (None, None, None),  # weapons next to self-harm and cyber attacks
    "Economic Harm": (None, 0, None),  # gambling and MLM next to Ponzi schemes
    "Fraud": (None, 0, 1),
    "Pornography": (None, 0, 0),
    "Political Lobbying": (0, 0, 0),
    "Privacy Violence": (None, 0, None),
    "Legal Opinion": (0, 0, 0),
    "Financial Advice": (0, 0, 0),
    "Health Consultation": (0, 0, 0),
    "Gov Decision": (0, 0, 0),
}
read_jailbreak_llms = _category_reader(
    "jailbreak_llms_verazuo", "forbidden_question_set.clean.csv", "question", "content_policy_name",
    FORBIDDEN_QUESTIONS,
)


def read_purplellama(folder: Path) -> Iterator[Example]:
    for file, labels in (("interpreter.json", _labels(None, 0, 1)), ("mitre_frr.json", BENIGN)):
        path = folder / file
        items = _json(path)
        _check(isinstance(items, list), path, 1, "expected a list of prompts")
        for item in items:
            ok = isinstance(item, dict) and "mutated_prompt" in item
            _check(ok, path, None, "an item has no 'mutated_prompt'")
            attack = item.get("attack_type")
            attack_str = ",".join(attack) if isinstance(attack, list) else str(attack or "")
            yield Example(
                str(item["mutated_prompt"]), dict(labels), "purplellama_cyberseceval",
                {"file": file, "attack_type": attack_str},
            )


# ------------------------------------------------------------------------------------------- benign
def read_alpaca(folder: Path) -> Iterator[Example]:
    path = folder / "alpaca.json"
    items = _json(path)
    _check(isinstance(items, list), path, 1, "expected a list of instructions")
    for item in items:
        _check(isinstance(item, dict) and "instruction" in item, path, None, "an item has no 'instruction'")
        text = str(item["instruction"])
        if text.strip():
            yield Example(text, dict(BENIGN), "alpaca_instructions")


def read_safetext(folder: Path) -> Iterator[Example]:
    path = folder / "SafeText.json"
    data = _json(path)
    _check(isinstance(data, dict), path, 1, "expected an object of scenarios")
    for scenario, advice in data.items():
        _check(isinstance(advice, dict), path, None, f"scenario {scenario!r} is not an object")
        for kind in ("safe", "unsafe"):
            # unsafe advice ("text while driving", "mix ammonia and bleach") is dangerous, not violence; some
            # of it is also illegal: both unknown rather than 0
            labels = BENIGN if kind == "safe" else _labels(0, None, None)
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


def read_crisislex(folder: Path) -> Iterator[Example]:
    tweet_files = sorted(f.path for f in _FILES_CRISISLEX_T26_HARDNEG if f.path.endswith("_labeled.csv"))
    for file in tweet_files:
        path = folder / file
        event = file.split("-")[0]
        for _, row in _table(path, ("Tweet Text", "Informativeness")):
            text = _unescape_tweet(row["Tweet Text"])
            if not text.strip():
                continue
            # reporting a bombing or a shooting is not violence: a hard negative (retweets are deduped later)
            flagged = bool(_CRISIS_GUARD.search(text))
            labels = _labels(None, None, 0) if flagged else BENIGN
            yield Example(
                text, dict(labels), "crisislex_t26_hardneg",
                {"event": event, "informativeness": row["Informativeness"], "guard": str(flagged).lower()},
            )


WIKI_MIN_CHARS = 200
_WIKI_TITLE = re.compile(r"^ = ([^=].*) = $")


def read_wikitext(folder: Path) -> Iterator[Example]:
    for split in ("valid", "test"):
        title = ""
        for line in _lines(folder / f"{split}.txt"):
            m = _WIKI_TITLE.match(line)
            if m:
                title = m.group(1).strip()
                continue
            if not line.strip() or line.lstrip().startswith("="):
                continue  # blank lines and section headings
            text = _detokenize_wiki(line)
            if len(text) >= WIKI_MIN_CHARS:
                # much military history and disaster reporting: mentioning violence is not violence
                yield Example(text, dict(BENIGN), "wikitext2_hardneg", {"title": title, "split": split})


def read_lexicon(folder: Path) -> Iterator[Example]:
    """A word list is not labelled text: it yields no training examples (see `lexicon_terms`)."""
    lexicon_terms(folder)  # still parse it, so a corrupt copy is reported like any other source
    return iter(())


def lexicon_terms(folder: Path) -> list[str]:
    """The LDNOOBW English terms, for a lexical baseline or feature (never training targets)."""
    path = folder / "en.json"
    terms = _json(path)
    ok = isinstance(terms, list) and all(isinstance(t, str) for t in terms)
    _check(ok, path, 1, "expected a list of terms")
    return list(terms)


# ==================================================================================== the registry
@dataclass(frozen=True)
class _Pin:
    """A repository at a commit; builds the raw URL of each pinned file."""

    repo: str
    commit: str

    @property
    def origin(self) -> str:
        return f"https://github.com/{self.repo}"

    def raw(self, upstream: str) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{upstream}"

    def file(self, path: str, size: int, sha256: str, upstream: str | None = None) -> SourceFile:
        return SourceFile(path, sha256, size, self.raw(upstream or path))

    def tree(self, folder: str) -> str:
        return f"https://github.com/{self.repo}/tree/{self.commit}/{folder}"


def _crisis_file(event: str, size: int, sha256: str) -> SourceFile:
    path = f"{event}-tweets_labeled.csv"
    return _CRISISLEX.file(path, size, sha256, f"data/CrisisLexT26/{event}/{path}")


_REFUSAL_DIRECTION = _Pin("andyrdt/refusal_direction", "9d852fae1a9121c78b29142de733cb1340770cc3")
_AILUMINATE = _Pin("mlcommons/ailuminate", "769cc2be9d20c8d4fb26ce53b68865ed41dfb8e2")
_RED_INSTRUCT = _Pin("declare-lab/red-instruct", "73c759c93d2f6b1d8c7b058ab7bcec5fb0c28fa2")
_CRISISLEX = _Pin("sajao/CrisisLex", "d67cddd51131dbb28842209014f67cffe359ff42")
_DAVIDSON = _Pin("t-davidson/hate-speech-and-offensive-language", "cb50f7e9eb855a99abc51423bf40df0e26d6fe30")
_DO_NOT_ANSWER_JA = _Pin("kunishou/do-not-answer-ja", "1380ff2ff5abad07e8aead79caa9757bb8d9f866")
_ETHOS = _Pin(
    "intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset", "705258e118ce9611ebbd5ab2a4841b0066547293"
)
_FIGSTEP = _Pin("ThuCCSLab/FigStep", "0861b17b3d67887c06ee3534ec65b3012f9becb7")
_HATE_SPEECH_DATASETS = _Pin("liuchaoqun/hate-speech-datasets", "98f3ee8104cf87bb91ed3e64c31a3097b9f8de84")
_SENTINEL = _Pin("kaif0102/Sentinel-AI-Defense-System-", "d80c990d9489fb9e91943e403a0e105eb344fd25")
_IBM_MAX = _Pin("IBM/MAX-Toxic-Comment-Classifier", "8170c0baa2bd05b0ef048835df2a875b03dd1854")
_MLMA = _Pin("HKUST-KnowComp/MLMA_hate_speech", "479836984aebfbd8a0270ca92018980f745e4c44")
_PURPLELLAMA = _Pin("meta-llama/PurpleLlama", "4be64c3a24442b51c76175e6ec67722cc3f5fe38")
_SAFETEXT = _Pin("sharonlevy/SafeText", "25bb7a8c4a00634bc0ea1b5e85bec85cf32f36aa")
_SAP = _Pin("Aatrox103/SAP", "8f2c4dfaad564a583bd476660740cf6082577b0e")
_VICOMTECH = _Pin("Vicomtech/hate-speech-dataset", "b802137e8314c38a8d4faa965f9908d6c8e7a84d")
_TOXIC_SPANS = _Pin("ipavlopoulos/toxic_spans", "beaf170538df8275c3447b2e26070f2f82e55272")
_TOXIGEN = _Pin("microsoft/TOXIGEN", "01517e814639e0334c920a3c502036c8158aac87")
_TWEETEVAL = _Pin("cardiffnlp/tweeteval", "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66")
_PYTORCH_EXAMPLES = _Pin("pytorch/examples", "7976b2bbcc8f2d2f8aaffa28d600f60f3ed8a47f")
_NPM_TARBALL = "https://registry.npmjs.org/naughty-words/-/naughty-words-1.2.0.tgz"

_FILES_ADVBENCH = (
    _REFUSAL_DIRECTION.file(
        "advbench.csv", 82125, "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1",
        "dataset/raw/advbench.csv",
    ),
    _REFUSAL_DIRECTION.file(
        "LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    ),
)
_FILES_AILUMINATE_DEMO = (
    _AILUMINATE.file(
        "airr_official_1.0_demo_en_us_prompt_set_release.csv", 322200,
        "63e2b654325c5405096fabf28ef5f057b0ad674904b1839fd1f52b523e324d02",
    ),
    _AILUMINATE.file("LICENSE.md", 10174, "0d542e0c8804e39aa7f37eb00da5a762149dc682d7829451287e11b938e94594"),
)
_FILES_ALPACA_INSTRUCTIONS = (
    _REFUSAL_DIRECTION.file(
        "alpaca.json", 3908460, "c4ce1bdc5c9b92caabcb171c27c7ec1e79832836bae10291d7c8ab8c6245f600",
        "dataset/processed/alpaca.json",
    ),
    _REFUSAL_DIRECTION.file(
        "LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    ),
)
_FILES_CATQA = (
    _RED_INSTRUCT.file(
        "catqa_english.json", 73135, "40efd4e205e26d6e840f30e6d8540f95f2777453af052319e42e74d10bd1992a",
        "harmful_questions/catqa_english.json",
    ),
    _RED_INSTRUCT.file("LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"),
)
_FILES_CRISISLEX_T26_HARDNEG = (
    _crisis_file(
        "2012_Colorado_wildfires", 224671, "824571196d302abbf566c78715a90db24cbca66a99cbc128483b0df458ae77ab",
    ),
    _crisis_file(
        "2012_Costa_Rica_earthquake", 258836,
        "0b8cf3247f4d96bcb2b88e3fe04498e262c53ca4c8f5b6475ffcab2c9c7d21ea",
    ),
    _crisis_file(
        "2012_Guatemala_earthquake", 197380,
        "0f4792e0cd88ae64b24024641ea823e6a96832e3e29444f0a865dfff0e02e792",
    ),
    _crisis_file(
        "2012_Italy_earthquakes", 191873, "030186bed3c8088835af0984f1509ac348b0bb6e384f569c8bc04604c959e2c2",
    ),
    _crisis_file(
        "2012_Philipinnes_floods", 197723, "bb1d4de39f7e69b58a539076aa2f92c9313f79fea47ec5d861f0da4b06162766",
    ),
    _crisis_file(
        "2012_Typhoon_Pablo", 186048, "b8ea911d5647db7f4d0227fb453f5bbfe90750d61a734c49be3fba34bede47ea",
    ),
    _crisis_file(
        "2012_Venezuela_refinery", 200292, "a2e8202857f3ce6a7a7918f29d94969dde5b97002c60133a7038ac3bb5ba46be",
    ),
    _crisis_file(
        "2013_Alberta_floods", 201107, "8fea88d320115e3ff37965b62600af70b17dc5ddf0be0700379a9fc57c8d3e12",
    ),
    _crisis_file(
        "2013_Australia_bushfire", 235569, "9b392c44e8622e10749d9bf02557b8cdf530581b67b517e475320bc1d218b9b9",
    ),
    _crisis_file(
        "2013_Bohol_earthquake", 186762, "4132aa63ab58bf551faafbc0390763c87f1389ba7c1787ebd0df841f184595b6",
    ),
    _crisis_file(
        "2013_Boston_bombings", 193744, "5b8852e468e748f4bc01e0cd46382d68aea842bff430497aea950162d69aba5f",
    ),
    _crisis_file(
        "2013_Brazil_nightclub_fire", 193894,
        "4e3f409b7dc6ec8e13087689aaf15d1eedeaba96b8088d3eb81cafe437142769",
    ),
    _crisis_file(
        "2013_Colorado_floods", 195763, "0d64df5705711d6bc2ada795ebd5fdce8d508b7240eb94a215151ec016995a4f",
    ),
    _crisis_file(
        "2013_Glasgow_helicopter_crash", 216766,
        "908248224691ae033368416c288a1a500f7ca0c9d4fbf23d7ab21ce025dc684b",
    ),
    _crisis_file(
        "2013_LA_airport_shootings", 197217,
        "8717be3f3c39e257f1232fcfda1d4d8d65474f9b7a2dc081a00b35d6ac7ba6cd",
    ),
    _crisis_file(
        "2013_Lac_Megantic_train_crash", 203210,
        "5d02b88c219e47dd7ffe1fa8bba1c770a52569ce907b45767d8be11aa789ad25",
    ),
    _crisis_file(
        "2013_Manila_floods", 193390, "aeb71fd5dfa3f029b6d16cc5662990b465be1d12e5097ef0116eb69418ad0fb5",
    ),
    _crisis_file(
        "2013_NY_train_crash", 196320, "4645d66c38c9d0cfc30a5901e40649ff7438c9a7140d6c05b83f74b04eeb39d1",
    ),
    _crisis_file(
        "2013_Queensland_floods", 218778, "a2e05dcccf392b69fb895fc8d5723f4853d2b4ac7b988a0b1140072342f25a71",
    ),
    _crisis_file(
        "2013_Russia_meteor", 271352, "e002597279c4f79733c3b44d929c7a68acc8cbef58ea233ec5db5700ce781abe",
    ),
    _crisis_file(
        "2013_Sardinia_floods", 200129, "4dd6309dc77635e90b843f2e2c77c83a284ac0e7b068c5c9e7d166cd5bc084bc",
    ),
    _crisis_file(
        "2013_Savar_building_collapse", 246465,
        "6d46c4e588d3d4b8c9b4849d01bdfaea9b7d1860198c04ac73eeda73b1264d6d",
    ),
    _crisis_file(
        "2013_Singapore_haze", 187151, "0653be29e289558e427fca1f5443e063bbf496dd7e48b6f96dd5a13ebc0fc976",
    ),
    _crisis_file(
        "2013_Spain_train_crash", 200979, "279f5b3460ac8ed6fb44a05d7a7d2f10c7026cc29c0261a1b29b0fe5ec0c34f5",
    ),
    _crisis_file(
        "2013_Typhoon_Yolanda", 211215, "186577777b0ce59df15b36c5efe25c8abe8a06e9de424da0e24da8228a73d27d",
    ),
    _crisis_file(
        "2013_West_Texas_explosion", 189283,
        "6a875c05a5e975f1a3a07568cc6fbdef8391989aae1b9224240e1cacb156a964",
    ),
    _CRISISLEX.file("LICENSE", 1101, "cdf81f030158a14ac39dea8f4b5e183612618133e8cd8ba1810afd47f462de46"),
)
_FILES_DAVIDSON_HATE_OFFENSIVE = (
    _DAVIDSON.file(
        "labeled_data.csv", 2546446, "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281",
        "data/labeled_data.csv",
    ),
    _DAVIDSON.file("LICENSE", 1069, "3ec8d318cf9e36fe40da3081f5a64ebe3d198ebf85a330cbebc84de90a047fb2"),
)
_FILES_DO_NOT_ANSWER = (
    _DO_NOT_ANSWER_JA.file(
        "do_not_answer_en.csv", 329395, "06acfa39a06a1b33d1f264ce41b4f7a95812010c594fb733ae4717ee0a4544fc",
        "datasets/Instruction/do_not_answer_en.csv",
    ),
    _DO_NOT_ANSWER_JA.file(
        "LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    ),
)
_FILES_ETHOS = (
    _ETHOS.file(
        "Ethos_Dataset_Binary.csv", 123919,
        "0cd0050c2592afcb5eca5876df485ca15cda9d7d16fe32c269857260fd10d96c",
        "ethos/ethos_data/Ethos_Dataset_Binary.csv",
    ),
    _ETHOS.file(
        "Ethos_Dataset_Multi_Label.csv", 62836,
        "488c72a1582abdaf489a6e9eceeebba505447a00a25bd02e72fd6a56f9a3d83d",
        "ethos/ethos_data/Ethos_Dataset_Multi_Label.csv",
    ),
    _ETHOS.file("LICENSE", 35149, "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"),
)
_FILES_FIGSTEP_SAFEBENCH = (
    _FIGSTEP.file(
        "data_question_safebench.csv", 78942,
        "8e47f40b9b490fa2ca1393cdceb6081e9928848646f4b45fdd43726be941b394", "data/question/safebench.csv",
    ),
    _FIGSTEP.file("LICENSE", 1079, "5088bccd6b0e78c19d0bdbf3153995e8ab4897627f01ae2615fcf0e1c4eff3b9"),
)
_FILES_GAB_HATE_CORPUS = (
    _HATE_SPEECH_DATASETS.file(
        "ghc_train.tsv", 3014766, "c82a27336560d3a6822a4cc3f92856481af5fd63aa2ce8d0ca644d440d351d43",
        "GabHateCorpus/Data/ghc_train.tsv",
    ),
    _HATE_SPEECH_DATASETS.file(
        "ghc_test.tsv", 763748, "0c64ffe8d7e4e72303f9d33723f5750aa852223bc32554b529afba3a6efb1ddc",
        "GabHateCorpus/Data/ghc_test.tsv",
    ),
)
_FILES_IMPLICIT_HATE_CORPUS = (
    _HATE_SPEECH_DATASETS.file(
        "implicit_hate_v1_stg1_posts.tsv", 2190629,
        "00811aca26d05ace390e7131eb311a3e9e0e39ecadb2b839a173d4f7e2ccea8b",
        "implicit-hate-corpus/implicit_hate_v1_stg1_posts.tsv",
    ),
    _HATE_SPEECH_DATASETS.file(
        "implicit_hate_v1_stg2_posts.tsv", 705957,
        "116522bdc3417d5fdca79f5290fd06ec3f517abc78d0bd33041c5485965a7005",
        "implicit-hate-corpus/implicit_hate_v1_stg2_posts.tsv",
    ),
    _HATE_SPEECH_DATASETS.file(
        "LICENSE", 18657, "9ba9550ad48438d0836ddab3da480b3b69ffa0aac7b7878b5a0039e7ab429411",
        "implicit-hate-corpus/LICENSE",
    ),
)
_FILES_JAILBREAK_LLMS_VERAZUO = (
    SourceFile(
        "forbidden_question_set.clean.csv",
        "0d1e5cae6eb755f31103809ee45cfc537e9e2d92b5171f08704bae7de82081c3", 38076,
        _SENTINEL.raw("data/raw/forbidden_question_set.csv"), derived=True, note=(
            "the upstream file holds an unresolved git merge conflict with the same content twice; this copy "
            "keeps the first side (lines before '=======')"
        ),
        build="merge-ours",
    ),
)
_FILES_JAILBREAKBENCH = (
    _REFUSAL_DIRECTION.file(
        "jailbreakbench.csv", 23111, "45e9a8923b28f547bb372fbaa9af7df8b38c818a80ae50c3bab97704197ff516",
        "dataset/raw/jailbreakbench.csv",
    ),
    _REFUSAL_DIRECTION.file(
        "LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    ),
)
_FILES_JIGSAW_TOXIC_SAMPLE_IBM = (
    _IBM_MAX.file(
        "test_examples.csv", 38610, "8fc93924348c6567dc0628506b9712f90ec63de2bdd17f57406a3295a6ff2028",
        "samples/test_examples.csv",
    ),
    _IBM_MAX.file("LICENSE", 11381, "52633de0f06c5e1a006607369f1466b372d3c7a63e0ba7ceaea4162cf63b6bb3"),
)
_FILES_LEXICON_LDNOOBW_EN = (
    SourceFile(
        "en.json", "93318918595948065b83050eb31910d369466401e215e44af6d2c7a71fae56f2", 5795,
        f"{_NPM_TARBALL}#package/en.json",
    ),
    SourceFile(
        "LICENSE", "286bf9236b0a8c30880ab55e8d86b33057ca4327f891d46f0b0e6454d960e17b", 18466,
        f"{_NPM_TARBALL}#package/LICENSE",
    ),
)
_FILES_MLMA_EN = (
    SourceFile(
        "en_dataset_with_stop_words.csv", "75daa34f50aff5522cf39360c45ec0ea9474cba4bc55ed216cfdabd4c4f46ab6",
        860347, _MLMA.raw("hate_speech_mlma.zip") + "#hate_speech_mlma/en_dataset_with_stop_words.csv",
        note="a member of the zip archive at the pinned commit",
    ),
    _MLMA.file("LICENSE", 1071, "1b606ff3629d98e8c6ce1217016293e4deb19f5cfabfeeba246e2a7aa12ea10e"),
)
_FILES_PURPLELLAMA_CYBERSECEVAL = (
    _PURPLELLAMA.file(
        "interpreter.json", 388355, "1d3e7cd4dd94a436d96b6e689c13e4f3edf5418d680d0b485a3ea8bf4664840c",
        "CybersecurityBenchmarks/datasets/interpreter/interpreter.json",
    ),
    _PURPLELLAMA.file(
        "mitre_frr.json", 420424, "7a9b400bdf5ddbb36d5e7c3e8f6b5adb5d13125b8d03be66fd252a0f20b79d15",
        "CybersecurityBenchmarks/datasets/mitre_frr/mitre_frr.json",
    ),
    _PURPLELLAMA.file(
        "LICENSE_CybersecurityBenchmarks", 1088,
        "da6d3703ed11cbe42bd212c725957c98da23cbff1998c05fa4b3d976d1a58e93", "CybersecurityBenchmarks/LICENSE",
    ),
)
_FILES_SAFETEXT = (
    _SAFETEXT.file(
        "SafeText.json", 74705, "e33c84e193f9005d611d933ef55c52e1ef4d6f2f2245d2d999b646f50a8095f5",
    ),
    _SAFETEXT.file("LICENSE", 1067, "f8d3f22f4af046f3a74f1a0ad20aa3a2dbfa2f76f895fa34f5a208c2cfe71a64"),
)
_FILES_SAP200_ATTACK_PROMPTS = (
    _SAP.file(
        "SAP200_fraud_generated_cases.json", 419929,
        "a61c07532b790d191d4c2d86102d00c0671c8a1c18bcf593a131be6b407bfe31",
        "datasets/SAP200/fraud/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_politics_generated_cases.json", 398261,
        "f5c686d2ec9b4e51bdf5d967aa935a8fe0b4eda19f393e3f793f4892c08ac091",
        "datasets/SAP200/politics/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_pornography_sexual_minors_generated_cases.json", 341995,
        "21e173249df991e8c36ba39b08c3df375d566cc8566aded2b1ee7fa786daa6d2",
        "datasets/SAP200/pornography_sexual_minors/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_race_generated_cases.json", 375671,
        "52c93bf67a1836a630832f02168fd784825e87a0e35ecdf0001e6e9bfb112f50",
        "datasets/SAP200/race/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_religion_generated_cases.json", 370138,
        "1eccae230c31ca9a3b382b1f896f7e923d28ae1cd2e56fb0138841c04c696237",
        "datasets/SAP200/religion/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_suicide_generated_cases.json", 416515,
        "5e5569274b09bcbc82da8fb7e8f822fe61a818665bff162631d2eb8c1c336730",
        "datasets/SAP200/suicide/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_terrorism_generated_cases.json", 382082,
        "753a25098acbf4791e81f4f6f12bda6e54fc7d14eefd44667059b6d953a2281a",
        "datasets/SAP200/terrorism/generated_cases.json",
    ),
    _SAP.file(
        "SAP200_violence_generated_cases.json", 348516,
        "6e5bf77aff7b36ec3f39062da85660f73230847500058721c5c8749badce6a94",
        "datasets/SAP200/violence/generated_cases.json",
    ),
    _SAP.file("LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"),
)
_FILES_STORMFRONT_VICOMTECH = (
    _VICOMTECH.file(
        "annotations_metadata.csv", 348556,
        "306bfaab400e1542529d1791b9ec68d70bed579c52fc7e255b0626ab7bc5c7c9",
    ),
    SourceFile(
        "stormfront_sentences.csv", "f55b416c81fa3e4066238e8697af246961cdd8bccb0a198b7f3576ea8ee2726e",
        1358059,
        _VICOMTECH.tree("all_files"),
        derived=True, note=(
            "one CSV row per all_files/<file_id>.txt sentence (10,944 files), joined with "
            "annotations_metadata.csv: file_id,user_id,subforum_id,num_contexts,label,text"
        ),
    ),
    _VICOMTECH.file("LICENSE", 284, "4d4d0674cda88cf00506c04f99ded5d9db7b98d51f71955ffaf39cece6453461"),
)
_FILES_STRONGREJECT_MALICIOUSINSTRUCT = (
    _REFUSAL_DIRECTION.file(
        "strongreject_dataset.csv", 56359, "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381",
        "dataset/raw/strongreject.csv",
    ),
    _REFUSAL_DIRECTION.file(
        "malicious_instruct.txt", 6269, "a64d69dd1004aac4a23aaff3748fb8f17161893f74db36f45b8bc849eb1bcce5",
        "dataset/raw/malicious_instruct.txt",
    ),
    _REFUSAL_DIRECTION.file(
        "LICENSE", 11357, "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    ),
)
_FILES_TOXIC_SPANS = (
    _TOXIC_SPANS.file(
        "data_comments.csv", 3530155, "76cd6ebd10a890d269c0a7e5e451f3da12375219906f314fd9cfb1e18b1a905f",
        "data/comments.csv",
    ),
    _TOXIC_SPANS.file(
        "data_annotations.csv", 1978724, "f67725aa9de73cd4ef9050222f6ae985ef0e33e8da89cb8137ffeb9a1d0fc32b",
        "data/annotations.csv",
    ),
    _TOXIC_SPANS.file(
        "data_spans.csv", 1016622, "389c6964db5d96d79ecfe038aa4ffe04abafd64b6d6427fbad4ec7fb2c7672aa",
        "data/spans.csv",
    ),
    _TOXIC_SPANS.file("LICENSE", 7048, "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499"),
)
_FILES_TOXIGEN_DEMONSTRATIONS = (
    SourceFile(
        "toxigen_demonstrations.csv", "548cce68417ce6e65c877fb25f6c529edee5a013bac0790cd8d586ef2e1ab89b",
        107076,
        _TOXIGEN.tree("demonstrations"),
        derived=True, note=(
            "demonstrations/**/*.txt joined: one row per non-empty line, label hate/neutral from the file "
            "name, exact-duplicate (text, label, group) rows dropped"
        ),
    ),
    _TOXIGEN.file("LICENSE.txt", 3539, "56f1dd6be56e0afd33c2c070fa73448fb0eddcbcd60a55a53a8a26a0f6b4c205"),
)
_FILES_TWEETEVAL_HATE = (
    _TWEETEVAL.file(
        "train_text.txt", 1133852, "6572bb3a42143128a5dfa99af8debeb0668e637c34b2d1e3140dac47316fe2c2",
        "datasets/hate/train_text.txt",
    ),
    _TWEETEVAL.file(
        "train_labels.txt", 18000, "4e8fde025a453a25c94632794254131dedeac4e57228ad64157c41571cc88f71",
        "datasets/hate/train_labels.txt",
    ),
    _TWEETEVAL.file(
        "val_text.txt", 144174, "1ff78b1ed4c5ce43284b9eba32eb7d60c6d45d0d1b3b4d6df456ae01640764f1",
        "datasets/hate/val_text.txt",
    ),
    _TWEETEVAL.file(
        "val_labels.txt", 2000, "5092badf1a0e70036ea6264bcd0b78afc07d0f4a512fa6af34c2c4973600656b",
        "datasets/hate/val_labels.txt",
    ),
    _TWEETEVAL.file(
        "test_text.txt", 399242, "bc4762876a8dd8baa55c3cd7b03108e3231a5d691e80b8b1ef97c5be31b9da9a",
        "datasets/hate/test_text.txt",
    ),
    _TWEETEVAL.file(
        "test_labels.txt", 5940, "c14adca6b3627616a835c5ccea8a1cceb0235cd79417257f093eb0e16a69c62f",
        "datasets/hate/test_labels.txt",
    ),
)
_FILES_TWEETEVAL_OFFENSIVE = (
    _TWEETEVAL.file(
        "train_text.txt", 1529074, "78a7a32e38b10af7d8970b008bf17f661c8d0a90dad145fa0fa6a944669650db",
        "datasets/offensive/train_text.txt",
    ),
    _TWEETEVAL.file(
        "train_labels.txt", 23832, "c0b7d6ebdaa4ebcf6fc557ef1e775d92eda160218a0e3b1dd48eb8234dc892a6",
        "datasets/offensive/train_labels.txt",
    ),
    _TWEETEVAL.file(
        "val_text.txt", 179188, "816f36d180c35f15a5104838cb73856a0bef42043482fe738f3481b06242a55c",
        "datasets/offensive/val_text.txt",
    ),
    _TWEETEVAL.file(
        "val_labels.txt", 2648, "ed2deb776bd1c52fb8221fadd3360e32d9dfe46842d78053528126e46363a258",
        "datasets/offensive/val_labels.txt",
    ),
    _TWEETEVAL.file(
        "test_text.txt", 126921, "25b08c3333c26190f1023961c4508ec9aab24d4722b1a3ea7a6040724c120547",
        "datasets/offensive/test_text.txt",
    ),
    _TWEETEVAL.file(
        "test_labels.txt", 1720, "41d05a7aa0b01f5dafab21b95adb4f979cb4226c046ff315702774d10dac1605",
        "datasets/offensive/test_labels.txt",
    ),
)
_FILES_WIKITEXT2_HARDNEG = (
    _PYTORCH_EXAMPLES.file(
        "valid.txt", 1146846, "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7",
        "word_language_model/data/wikitext-2/valid.txt",
    ),
    _PYTORCH_EXAMPLES.file(
        "test.txt", 1290590, "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",
        "word_language_model/data/wikitext-2/test.txt",
    ),
)


_TWEETEVAL_LICENCE = (
    "no licence file; README: \"released without any restrictions but restrictions may apply to individual "
    "tasks\" (SemEval-2019); Twitter terms also apply"
)
_TWEETEVAL_NOTE = (
    "commercial_use is false to be safe: no licence file, and the README defers to the SemEval-2019 task "
    "terms, which were never stated as commercial."
)

_BUILTINS: tuple[Source, ...] = (
    # ---------------------------------------------------------------------------------- comments / posts
    Source(
        name="davidson_hate_offensive",
        title="Hate Speech and Offensive Language (Davidson et al., 2017)",
        origin=_DAVIDSON.origin, commit=_DAVIDSON.commit,
        licence="MIT (LICENSE); tweets: Twitter terms also apply", commercial_use=True,
        files=_FILES_DAVIDSON_HATE_OFFENSIVE, heads=("toxicity", "illegal_advice"), kind="comments",
        mapping=(
            "toxicity = 1 for class 0 (hate) or 1 (offensive), 0 for class 2 (neither); violence unknown "
            "(not coded); illegal_advice 0 (tweets, no advice)."
        ),
        notes="Positive-heavy (83% offensive) and keyword-sampled: down-weight. HTML entities are decoded.",
        reader=read_davidson, rows=24783,
    ),
    Source(
        name="tweeteval_offensive",
        title="TweetEval offensive (OLID, OffensEval-2019)",
        origin=_TWEETEVAL.origin, commit=_TWEETEVAL.commit,
        licence=_TWEETEVAL_LICENCE, commercial_use=False,
        files=_FILES_TWEETEVAL_OFFENSIVE, heads=("toxicity", "illegal_advice"), kind="comments",
        mapping="toxicity = the offensive label (1/0); violence unknown; illegal_advice 0.",
        notes=_TWEETEVAL_NOTE + " Train, val and test splits are all read (meta['split']).",
        reader=read_tweeteval_offensive, rows=14100,
    ),
    Source(
        name="tweeteval_hate",
        title="TweetEval hate (HatEval, SemEval-2019 task 5)",
        origin=_TWEETEVAL.origin, commit=_TWEETEVAL.commit,
        licence=_TWEETEVAL_LICENCE, commercial_use=False,
        files=_FILES_TWEETEVAL_HATE, heads=("toxicity", "illegal_advice"), kind="comments",
        mapping=(
            "toxicity = 1 for hate; not-hate is unknown (a quarter of it is still profane or insulting); "
            "violence unknown; illegal_advice 0."
        ),
        notes=_TWEETEVAL_NOTE + " Targets are immigrants and women only.",
        reader=read_tweeteval_hate, rows=12962,
    ),
    Source(
        name="ethos",
        title="ETHOS hate speech (binary + multi-label)",
        origin=_ETHOS.origin, commit=_ETHOS.commit,
        licence="GPL-3.0", commercial_use=False,
        files=_FILES_ETHOS, heads=HEADS, kind="comments",
        mapping=(
            "toxicity = 1 where isHate >= 0.5, unknown below (ETHOS codes hate only: 'Go fuck yourself' has "
            "isHate 0); violence from the multi-label file for hate comments: share > 0.5 -> 1, exactly 0.5 "
            "-> unknown, < 0.5 -> 0; unknown for non-hate comments (never coded); illegal_advice 0."
        ),
        notes=(
            "commercial_use is false: whether a model trained on GPL-3.0 data is a derivative work is "
            "unsettled, so ETHOS is kept out of commercial recipes."
        ),
        reader=read_ethos, rows=998,
    ),
    Source(
        name="toxigen_demonstrations",
        title="ToxiGen human-written demonstrations",
        origin=_TOXIGEN.origin, commit=_TOXIGEN.commit,
        licence="MIT (code) + CDLA-Permissive-2.0 (data)", commercial_use=True,
        files=_FILES_TOXIGEN_DEMONSTRATIONS, heads=HEADS, kind="comments",
        mapping=(
            "hate sentences: toxicity 1, violence unknown; neutral sentences (which mention the same 13 "
            "groups): all heads 0; illegal_advice 0."
        ),
        notes=(
            "Labels come from the file a sentence was in, not per-item annotation. The neutral half is an "
            "identity-term false-positive audit set (meta['group'])."
        ),
        reader=read_toxigen, rows=587,
    ),
    Source(
        name="toxic_spans",
        title="Toxic Spans (Civil Comments, ACL 2022 per-rater release)",
        origin=_TOXIC_SPANS.origin, commit=_TOXIC_SPANS.commit,
        licence="CC0 1.0", commercial_use=True,
        files=_FILES_TOXIC_SPANS, heads=HEADS, kind="comments",
        mapping=(
            "toxicity = 1 where most raters highlighted a toxic span, else unknown (all posts were "
            "toxic-selected; no non-toxic labels); violence = 1 where >= 2 raters typed overlapping Threat "
            "spans, unknown where Threat was typed otherwise, 0 where no rater typed Threat; illegal_advice "
            "0."
        ),
        notes=(
            "Rebuilt from data/{comments,annotations,spans}.csv; the quiz post rated 357 times is skipped. "
            "Requiring overlapping Threat spans drops noise like 'A voter whore just like you' (two raters, "
            "different words); a little remains ('What kind of Crap is that?'), most positives are threats."
        ),
        reader=read_toxic_spans, rows=16099,
    ),
    Source(
        name="gab_hate_corpus",
        title="Gab Hate Corpus (Kennedy et al.)",
        origin=_HATE_SPEECH_DATASETS.origin, commit=_HATE_SPEECH_DATASETS.commit,
        licence="CC BY 4.0 (per the OSF release, osf.io/edua3; the mirror ships no licence file)",
        commercial_use=True,
        files=_FILES_GAB_HATE_CORPUS, heads=HEADS, kind="comments",
        mapping=(
            "toxicity = hd or cv or vo (human-dignity assault, call for violence, vulgar); violence = cv "
            "(the strongest real violence signal; cv=0 is a weak negative); illegal_advice 0."
        ),
        notes=(
            "Licence read from the original release, not from the mirror. Overlaps Implicit Hate (123 texts) "
            "and Stormfront (37)."
        ),
        reader=read_gab, rows=27546,
    ),
    Source(
        name="implicit_hate_corpus",
        title="Implicit Hate Corpus (ElSherief et al., 2021)",
        origin=_HATE_SPEECH_DATASETS.origin, commit=_HATE_SPEECH_DATASETS.commit,
        licence="CC BY 4.0 (LICENSE in the corpus zip)", commercial_use=True,
        files=_FILES_IMPLICIT_HATE_CORPUS, heads=HEADS, kind="comments",
        mapping=(
            "toxicity = 1 for explicit or implicit hate, 0 for not_hate; violence 0 for not_hate and for "
            "implicit hate of the other stage-2 classes, unknown for 'threatening' (mostly deportation), "
            "'incitement' (mostly promoting groups) and explicit hate (not sub-typed); illegal_advice 0."
        ),
        notes="Stage-2 classes are joined on the post text (meta['implicit_class']).",
        reader=read_implicit_hate, rows=21480,
    ),
    Source(
        name="mlma_en",
        title="MLMA hate speech, English (Ousidhoum et al., 2019)",
        origin=_MLMA.origin, commit=_MLMA.commit,
        licence="MIT", commercial_use=True,
        files=_FILES_MLMA_EN, heads=("toxicity", "illegal_advice"), kind="comments",
        mapping=(
            "toxicity = 1 where the hostility labels include offensive/abusive/hateful/disrespectful and not "
            "'normal'; everything else unknown (two-thirds of 'normal' tweets carry a slur or insult); "
            "violence unknown; illegal_advice 0."
        ),
        notes="Literal \\uXXXX and \\n escapes in the file are decoded.",
        reader=read_mlma, rows=5647,
    ),
    Source(
        name="stormfront_vicomtech",
        title="Hate speech from a white-supremacist forum (de Gibert et al., 2018)",
        origin=_VICOMTECH.origin, commit=_VICOMTECH.commit,
        licence="CC BY-SA 3.0 Spain", commercial_use=True,
        files=_FILES_STORMFRONT_VICOMTECH, heads=("toxicity", "illegal_advice"), kind="comments",
        mapping=(
            "toxicity = 1 for hate, 0 for noHate; 'relation' (hateful only in context) and 'idk/skip' rows "
            "are skipped; violence unknown; illegal_advice 0."
        ),
        notes=(
            "Share-alike data: commercial use allowed with attribution; the model card must credit it."
        ),
        reader=read_stormfront, rows=10703,
    ),
    Source(
        name="jigsaw_toxic_sample_ibm",
        title="Jigsaw toxic comments, 101-row sample (IBM MAX)",
        origin=_IBM_MAX.origin, commit=_IBM_MAX.commit,
        licence="CC0 (Jigsaw test sample); repository Apache-2.0", commercial_use=True,
        files=_FILES_JIGSAW_TOXIC_SAMPLE_IBM, heads=HEADS, kind="comments",
        mapping=(
            "toxicity = max(toxic, severe_toxic, obscene, insult, identity_hate); violence = threat; "
            "illegal_advice 0."
        ),
        notes="Fixture-sized.",
        reader=read_jigsaw, rows=101,
    ),
    # ---------------------------------------------------------------------------------- harmful requests
    Source(
        name="ailuminate_demo",
        title="AILuminate v1.0 demo prompt set (MLCommons)",
        origin=_AILUMINATE.origin, commit=_AILUMINATE.commit,
        licence="CC BY 4.0 (data, README); LICENSE.md is Apache-2.0 (code/docs)", commercial_use=True,
        files=_FILES_AILUMINATE_DEMO, heads=HEADS, kind="requests",
        mapping=(
            "By hazard: vcr, iwp -> violence 1, illegal 1; ncr -> illegal 1, violence 0; src, cse -> illegal "
            "1; hte, ssh, dfm, sxc_prn -> illegal 0; prv, ipv -> illegal unknown; spc_* (specialised advice) "
            "-> all heads 0; toxicity unknown for every hazard (a request about hate is not itself toxic)."
        ),
        notes="Human-written; half 'skilled' (jailbreak-styled) personas (meta['persona']).",
        reader=read_ailuminate, rows=1200,
    ),
    Source(
        name="catqa",
        title="CategoricalHarmfulQA (CatQA, red-instruct)",
        origin=_RED_INSTRUCT.origin, commit=_RED_INSTRUCT.commit,
        licence="Apache-2.0", commercial_use=True,
        files=_FILES_CATQA, heads=("violence", "illegal_advice"), kind="requests",
        mapping=(
            "Per subcategory (55, each read): crimes, malware, fraud, scams, child physical abuse, assault "
            "-> illegal 1; child physical abuse, assault, weapon making -> violence 1; the "
            "Hate/Harass/Violence rows are smear and harassment campaigns -> violence 0; mixed subcategories "
            "unknown; toxicity unknown."
        ),
        notes=(
            "Only catqa_english.json is read: HarmfulQA, DangerousQA and AdversarialQA have no categories "
            "(AdversarialQA repeats AdvBench)."
        ),
        reader=read_catqa, rows=550,
    ),
    Source(
        name="strongreject_maliciousinstruct",
        title="StrongREJECT + MaliciousInstruct",
        origin=_REFUSAL_DIRECTION.origin, commit=_REFUSAL_DIRECTION.commit,
        licence=(
            "Apache-2.0 (redistributing repository); upstream StrongREJECT / MaliciousInstruct licences not "
            "checked"
        ),
        commercial_use=True,
        files=_FILES_STRONGREJECT_MALICIOUSINSTRUCT, heads=("violence", "illegal_advice"), kind="requests",
        mapping=(
            "StrongREJECT: Violence -> violence 1; Non-violent crimes -> illegal 1, violence 0; Illegal "
            "goods and services -> illegal 1; other categories unknown. MaliciousInstruct (no categories): "
            "every head unknown. toxicity unknown."
        ),
        notes=(
            "Byte-identical to busycalibrating/AdversariaLLM data/behavior_datasets (commit f970939). Some "
            "StrongREJECT prompts come from AdvBench."
        ),
        reader=read_strongreject, rows=413,
    ),
    Source(
        name="jailbreakbench",
        title="JailbreakBench JBB-Behaviors (harmful)",
        origin=_REFUSAL_DIRECTION.origin, commit=_REFUSAL_DIRECTION.commit,
        licence="Apache-2.0 (redistributing repository); upstream JBB licence not checked",
        commercial_use=True,
        files=_FILES_JAILBREAKBENCH, heads=("violence", "illegal_advice"), kind="requests",
        mapping=(
            "Malware/Hacking, Fraud/Deception, Privacy, Government decision-making -> illegal 1; Physical "
            "harm -> violence 1; Harassment -> illegal 0; other categories violence 0 / illegal unknown; "
            "toxicity unknown."
        ),
        notes="18 goals come from AdvBench.",
        reader=read_jailbreakbench, rows=100,
    ),
    Source(
        name="advbench",
        title="AdvBench harmful behaviors",
        origin=_REFUSAL_DIRECTION.origin, commit=_REFUSAL_DIRECTION.commit,
        licence="Apache-2.0 (redistributing repository); upstream AdvBench (MIT per llm-attacks) not checked",
        commercial_use=True,
        files=_FILES_ADVBENCH, heads=(), kind="requests",
        mapping="Harmful behaviours of every kind, uncategorised: every head unknown (adds no loss alone).",
        notes="Registered for audits and as an any-harm pool; its goals recur in StrongREJECT, JBB, CatQA.",
        reader=read_advbench, rows=520,
    ),
    Source(
        name="do_not_answer",
        title="Do-Not-Answer (Wang et al., 2023)",
        origin=_DO_NOT_ANSWER_JA.origin, commit=_DO_NOT_ANSWER_JA.commit,
        licence="CC BY-NC-SA 4.0 (dataset); code Apache-2.0", commercial_use=False,
        files=_FILES_DO_NOT_ANSWER, heads=("violence", "illegal_advice"), kind="requests",
        mapping=(
            "'Assisting illegal activities' -> illegal 1 (its violence and terrorism questions -> violence "
            "1); stereotypes, toxic language, misinformation, adult content, chatbot-as-human -> illegal 0, "
            "violence 0 (hard negatives for both); unsafe-action nudges and privacy leaks -> illegal "
            "unknown; toxicity unknown."
        ),
        notes=(
            "Non-commercial share-alike. The English tree is read from a Japanese-translation fork that "
            "carries it unchanged; data_en.csv (model responses) is not used."
        ),
        reader=read_do_not_answer, rows=939,
    ),
    Source(
        name="sap200_attack_prompts",
        title="SAP200 attack prompts (Deng et al., 2023)",
        origin=_SAP.origin, commit=_SAP.commit,
        licence="Apache-2.0", commercial_use=True,
        files=_FILES_SAP200_ATTACK_PROMPTS, heads=("violence", "illegal_advice"), kind="requests",
        mapping=(
            "By topic: violence -> violence 1; terrorism -> violence 1 (unknown for cyber-attack prompts), "
            "illegal 1; fraud -> illegal 1; race, religion, suicide -> illegal 0; politics, "
            "pornography_sexual_minors -> violence 0; toxicity unknown."
        ),
        notes="Machine-written (gpt-3.5) role-play jailbreaks: use a low weight.",
        reader=read_sap200, rows=1600,
    ),
    Source(
        name="figstep_safebench",
        title="SafeBench questions (FigStep)",
        origin=_FIGSTEP.origin, commit=_FIGSTEP.commit,
        licence="MIT", commercial_use=True,
        files=_FILES_FIGSTEP_SAFEBENCH, heads=HEADS, kind="requests",
        mapping=(
            "Illegal Activity, Malware Generation -> illegal 1; Legal Opinion, Financial Advice, Health "
            "Consultation -> all heads 0 (benign look-alikes); Hate Speech -> illegal 0; Physical Harm and "
            "Fraud are mixed -> unknown; toxicity unknown for the harmful topics."
        ),
        notes="GPT-4-written. SafeBench-Tiny is a subset of this file and is not registered.",
        reader=read_figstep, rows=500,
    ),
    Source(
        name="jailbreak_llms_verazuo",
        title="Forbidden question set ('Do Anything Now', Shen et al., CCS 2024)",
        origin=_SENTINEL.origin, commit=_SENTINEL.commit,
        licence="MIT (per the original verazuo/jailbreak_llms README; this copy ships no licence)",
        commercial_use=True,
        files=_FILES_JAILBREAK_LLMS_VERAZUO, heads=HEADS, kind="requests",
        mapping=(
            "By scenario: Illegal Activity, Malware, Fraud -> illegal 1; Political Lobbying, Legal Opinion, "
            "Financial Advice, Health Consultation, Gov Decision -> all heads 0; Hate Speech, Pornography -> "
            "illegal 0; Physical Harm (weapons mixed with self-harm) unknown; toxicity unknown otherwise."
        ),
        notes=(
            "The 666 in-the-wild jailbreak prompts (jailbreak_prompts_2023_05_07.clean.csv) are templates, "
            "not harm labels: not registered here (a future jailbreak head)."
        ),
        reader=read_jailbreak_llms, rows=390,
    ),
    Source(
        name="purplellama_cyberseceval",
        title="CyberSecEval interpreter + MITRE false-refusal prompts (PurpleLlama)",
        origin=_PURPLELLAMA.origin, commit=_PURPLELLAMA.commit,
        licence="MIT (CybersecurityBenchmarks/LICENSE)", commercial_use=True,
        files=_FILES_PURPLELLAMA_CYBERSECEVAL, heads=HEADS, kind="requests",
        mapping=(
            "interpreter.json (attacks on the code interpreter's host) -> illegal 1, violence 0, toxicity "
            "unknown; mitre_frr.json (benign prompts that sound malicious) -> all heads 0."
        ),
        notes="Machine-written. The repository root licence is the Llama licence and covers models only.",
        reader=read_purplellama, rows=1250,
    ),
    # ------------------------------------------------------------------------------- benign / hard negatives
    Source(
        name="alpaca_instructions",
        title="Stanford Alpaca instructions (processed)",
        origin=_REFUSAL_DIRECTION.origin, commit=_REFUSAL_DIRECTION.commit,
        licence="CC BY-NC 4.0 (Stanford Alpaca data); repository Apache-2.0", commercial_use=False,
        files=_FILES_ALPACA_INSTRUCTIONS, heads=HEADS, kind="benign",
        mapping="Benign instructions: every head 0.",
        notes="Non-commercial.",
        reader=read_alpaca, rows=31323,
    ),
    Source(
        name="safetext",
        title="SafeText physical-safety advice (Levy et al., 2022)",
        origin=_SAFETEXT.origin, commit=_SAFETEXT.commit,
        licence="MIT", commercial_use=True,
        files=_FILES_SAFETEXT, heads=HEADS, kind="benign",
        mapping=(
            "Scenario + advice: safe advice -> all heads 0; unsafe advice -> toxicity 0, violence and "
            "illegal unknown (dangerous is not violent; some, like drunk driving, is illegal)."
        ),
        reader=read_safetext, rows=1465,
    ),
    Source(
        name="crisislex_t26_hardneg",
        title="CrisisLexT26 crisis tweets",
        origin=_CRISISLEX.origin, commit=_CRISISLEX.commit,
        licence="MIT (repository LICENSE); tweets: Twitter terms also apply", commercial_use=True,
        files=_FILES_CRISISLEX_T26_HARDNEG, heads=HEADS, kind="benign",
        mapping=(
            "Presumed benign by genre (reporting bombings, shootings and floods is not violence): all heads "
            "0, except tweets a keyword guard flags (swearing, death wishes): toxicity and violence unknown."
        ),
        notes=(
            "Retweets repeat (dedup happens in the builder). Several events are mostly Spanish, Italian or "
            "Portuguese (meta['event'])."
        ),
        reader=read_crisislex, rows=27933,
    ),
    Source(
        name="wikitext2_hardneg",
        title="WikiText-2 valid + test paragraphs",
        origin=_PYTORCH_EXAMPLES.origin, commit=_PYTORCH_EXAMPLES.commit,
        licence="CC BY-SA 3.0 (Wikipedia text)", commercial_use=True,
        files=_FILES_WIKITEXT2_HARDNEG, heads=HEADS, kind="benign",
        mapping=(
            "Paragraphs of >= 200 characters (detokenised, article title in meta): all heads 0; much "
            "military history, hurricanes and crime history make them hard negatives."
        ),
        notes="The files were read at commit 7976b2b of pytorch/examples (removed from later commits).",
        reader=read_wikitext, rows=3211,
    ),
    Source(
        name="lexicon_ldnoobw_en",
        title="List of Dirty, Naughty, Obscene and Otherwise Bad Words (English)",
        origin="https://www.npmjs.com/package/naughty-words", commit="1.2.0",
        licence="CC-BY-4.0", commercial_use=True,
        files=_FILES_LEXICON_LDNOOBW_EN, heads=(), kind="lexicon",
        mapping="A word list, not labels: yields no training examples (lexicon_terms() serves a baseline).",
        notes="Pinned by npm package version, not by commit.",
        reader=read_lexicon, rows=0,
    ),
)

REGISTRY: dict[str, Source] = {s.name: s for s in _BUILTINS}


# ============================================================================ verification and reading
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated verification in one process is free."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def source_folder(source: Source, data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / source.name


def file_problem(
    source: Source, f: SourceFile, data_dir: str | os.PathLike[str], check_hash: bool = True
) -> str | None:
    """Why one file of `source` is not usable as pinned (missing, size or sha256 mismatch), else None."""
    path = source_folder(source, data_dir) / f.path
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if f.size >= 0 and size != f.size:
        return f"{path} has {size} bytes, expected {f.size} (truncated or modified)"
    if check_hash and f.sha256 and file_sha256(path) != f.sha256:
        return f"{path} does not match its sha256 (corrupt or modified)"
    return None


def verify_source(source: Source, data_dir: str | os.PathLike[str], check_hash: bool = True) -> Path:
    """Check that every pinned file is present and intact; return the source folder. One-line DataError."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} does not exist: run `harmscan data fetch` or pass --data-dir"
        )
    folder = source_folder(source, data_dir)
    if not folder.is_dir() and not all(Path(f.path).is_absolute() for f in source.files):
        raise DataError(
            f"source {source.name}: folder {folder} is missing: run `harmscan data fetch {source.name}`"
        )
    problems = [p for f in source.files if (p := file_problem(source, f, data_dir, check_hash))]
    if problems:
        more = f" ({len(problems) - 1} more file(s) affected)" if len(problems) > 1 else ""
        missing = problems[0].endswith("is missing")
        fix = f"harmscan data fetch {source.name}" + ("" if missing else " --force")
        raise DataError(f"source {source.name}: {problems[0]}{more}: run `{fix}`")
    return folder


def get_source(name: str, user_file: str | os.PathLike[str] | None = None) -> Source:
    sources = all_sources(user_file)
    try:
        return sources[name]
    except KeyError:
        raise DataError(f"unknown source {name!r}; known sources: {', '.join(sorted(sources))}") from None


def iter_examples(
    source: Source | str, data_dir: str | os.PathLike[str], verify: bool = True
) -> Iterator[Example]:
    """Verify the source's files (eagerly, so errors surface at the call), then stream its examples.

    With verify=False nothing is hashed, but a truncated or corrupt file still raises a one-line DataError
    naming the file and line (the readers check structure and values), and a file cut at a row boundary is
    caught by the expected row count.
    """
    src = get_source(source) if isinstance(source, str) else source
    if verify:
        folder = verify_source(src, data_dir, check_hash=True)
    else:
        if not Path(data_dir).is_dir():
            raise DataError(
                f"data directory {data_dir} does not exist: run `harmscan data fetch` or pass --data-dir"
            )
        folder = source_folder(src, data_dir)
    return _read_checked(src, folder)


def _read_checked(source: Source, folder: Path) -> Iterator[Example]:
    n = 0
    try:
        for ex in source.reader(folder):
            n += 1
            yield ex
    except _FileError as exc:
        raise DataError(exc.message(source.name)) from None
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # unexpected structure in a JSON file
        raise DataError(
            f"source {source.name}: unexpected content in {folder} ({type(exc).__name__}: {exc}); the files "
            f"look corrupt: run `harmscan data fetch {source.name} --force`"
        ) from None
    if source.rows is not None and n != source.rows:
        raise DataError(
            f"source {source.name}: read {n} examples from {folder}, expected {source.rows}: a file is "
            f"truncated or was edited: run `harmscan data fetch {source.name} --force`"
        )


# ======================================================================== source entries (YAML)
_FORMATS = {"csv": ",", "tsv": "\t", "jsonl": "", "json": "", "lines": ""}
_REQUIRED_KEYS = ("name", "licence", "commercial_use", "files")
_GENERIC_KEYS = ("format", "text_field", "labels")
_KNOWN_KEYS = frozenset((
    *_REQUIRED_KEYS, *_GENERIC_KEYS, "title", "origin", "commit", "kind", "mapping", "notes", "rows", "reader",
    "heads", "eval_only",
))
_FILE_KEYS = frozenset(("path", "sha256", "size", "url", "derived", "note", "build"))
# kept for the user-sources documentation: the keys a generic (code-free) entry needs
_USER_KEYS = (*_REQUIRED_KEYS, *_GENERIC_KEYS)


@dataclass(frozen=True)
class _HeadRule:
    """How one head is read from a user table: a constant, or a field with positive/negative values."""

    constant: Label = None
    field: str = ""
    positive: frozenset[str] = frozenset()
    negative: frozenset[str] = frozenset()

    def label(self, row: Mapping[str, Any]) -> Label:
        if not self.field:
            return self.constant
        value = _norm_value(row.get(self.field))
        if value in self.positive:
            return 1
        if value in self.negative:
            return 0
        return None  # a value listed as neither is unknown, never a guessed 0


def _norm_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower() if value is not None else ""


def _rule_values(value: Any) -> tuple[str, ...]:
    # YAML 1.1 reads an unquoted yes/no/on/off as a boolean: match every spelling a table might hold
    if value is True:
        return ("true", "yes", "on")
    if value is False:
        return ("false", "no", "off")
    return (_norm_value(value),)


def _user_rows(path: Path, fmt: str, text_field: str) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    if fmt in ("csv", "tsv"):
        yield from _table(path, (text_field,), delimiter=_FORMATS[fmt])
    elif fmt == "lines":
        for i, line in enumerate(_lines(path), start=1):
            yield i, {text_field: line}
    elif fmt == "jsonl":
        for i, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _FileError(path, i, f"invalid JSON: {exc.msg}") from None
            _check(isinstance(obj, dict), path, i, "expected a JSON object per line")
            yield i, obj
    else:
        data = _json(path)
        _check(isinstance(data, list), path, 1, "expected a JSON list of objects")
        for obj in data:
            _check(isinstance(obj, dict), path, None, "expected a JSON list of objects")
            yield None, obj


def _user_reader(
    name: str, files: Sequence[str], fmt: str, text_field: str, rules: Mapping[str, _HeadRule]
) -> Reader:
    def read(folder: Path) -> Iterator[Example]:
        for file in files:
            path = folder / file  # an absolute `file` stays absolute
            for line, row in _user_rows(path, fmt, text_field):
                _check(text_field in row, path, line, f"no field {text_field!r}")
                text = row[text_field]
                if text is None or not str(text).strip():
                    continue
                labels = {head: rule.label(row) for head, rule in rules.items()}
                yield Example(str(text), labels, name, {"file": Path(file).name})

    read.__name__ = f"read_user_{name}"
    return read


def _head_rule(spec: Any, err: Callable[[str], DataError], head: str) -> _HeadRule:
    if spec is None or (isinstance(spec, int) and spec in (0, 1)):
        return _HeadRule(constant=spec)
    if isinstance(spec, Mapping) and isinstance(spec.get("field"), str):
        pos = frozenset(x for v in spec.get("positive") or () for x in _rule_values(v))
        neg = frozenset(x for v in spec.get("negative") or () for x in _rule_values(v))
        if not pos and not neg:
            raise err(f"labels.{head} needs 'positive' and/or 'negative' values")
        if pos & neg:
            raise err(f"labels.{head}: values {sorted(pos & neg)} are both positive and negative")
        return _HeadRule(field=spec["field"], positive=pos, negative=neg)
    raise err(f"labels.{head} must be 0, 1, null or {{field, positive, negative}}, got {spec!r}")


def _source_file(f: Any, err: Callable[[str], DataError]) -> SourceFile:
    f = {"path": f} if isinstance(f, str) else f
    if not isinstance(f, Mapping) or not f.get("path"):
        raise err(f"each file needs a 'path', got {f!r}")
    unknown = set(f) - _FILE_KEYS
    if unknown:
        raise err(f"file {f['path']}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        size = int(f.get("size", -1))
    except (TypeError, ValueError):
        raise err(f"file {f['path']}: size must be a whole number of bytes") from None
    return SourceFile(
        path=str(f["path"]), sha256=str(f.get("sha256") or "").lower(), size=size, url=str(f.get("url") or ""),
        derived=bool(f.get("derived", False)), note=str(f.get("note") or ""), build=str(f.get("build") or ""),
    )


def parse_source_entry(entry: Any, err: Callable[[str], DataError], default_notes: str = "") -> Source:
    """One source from its YAML mapping: the same parser for the packaged registry and for user sources.

    Either a named reader (`reader: NAME`, code in harmscan.training.readers, with `heads:`) or the generic
    table reader (`format`, `text_field`, `labels`), which needs no code.
    """
    if not isinstance(entry, Mapping):
        raise err("must be a mapping with name, licence, commercial_use, files and a reader or format")
    name = entry.get("name", "")
    missing = [k for k in _REQUIRED_KEYS if k not in entry]
    named = entry.get("reader")
    if not named:
        missing += [k for k in _GENERIC_KEYS if k not in entry]
    if missing:
        raise err(f"missing key(s) {', '.join(missing)}")
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise err(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise err("name must be lowercase letters, digits and underscores")
    if not isinstance(entry["commercial_use"], bool):
        raise err("commercial_use must be true or false")
    raw_files = entry["files"]
    if not isinstance(raw_files, list) or not raw_files:
        raise err("files must be a non-empty list of {path, sha256?, size?, url?}")
    files = tuple(_source_file(f, err) for f in raw_files)
    kind = str(entry.get("kind", "comments"))
    if kind not in KINDS:
        raise err(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    rows = entry.get("rows")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise err("rows must be a whole number")
    if named:
        from harmscan.training.readers import READERS

        if named not in READERS:
            raise err(f"reader {named!r} is not a known reader ({', '.join(sorted(READERS))})")
        heads = entry.get("heads")
        if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
            raise err("a source with a named reader needs 'heads': the list of heads it labels")
        reader = READERS[named]
        mapping = str(entry.get("mapping") or "")
        head_names = tuple(heads)
    else:
        fmt = str(entry["format"]).lower()
        if fmt not in _FORMATS:
            raise err(f"format {fmt!r} is not one of {', '.join(_FORMATS)}")
        labels = entry["labels"]
        if not isinstance(labels, Mapping) or not labels:
            raise err("labels must map head names to a rule")
        rules: dict[str, _HeadRule] = {}
        for head, spec in labels.items():
            if not str(head).isidentifier():
                raise err(f"head name {head!r} must be an identifier such as 'self_harm'")
            rules[str(head)] = _head_rule(spec, err, str(head))
        text_field = str(entry["text_field"])
        reader = _user_reader(name, [f.path for f in files], fmt, text_field, rules)
        mapping = str(entry.get("mapping") or _describe_rules(text_field, rules))
        head_names = tuple(h for h, r in rules.items() if r.field or r.constant is not None)
    return Source(
        name=name, title=str(entry.get("title", name)), origin=str(entry.get("origin", "")),
        commit=str(entry.get("commit", "")), licence=str(entry["licence"]),
        commercial_use=entry["commercial_use"], files=files, heads=head_names, mapping=mapping,
        reader=reader, kind=kind, notes=str(entry.get("notes") or default_notes), rows=rows,
        eval_only=bool(entry.get("eval_only", False)),
    )


def _user_error(path: Path, index: int, name: str, detail: str) -> DataError:
    who = f"entry {index + 1}" + (f" ({name})" if name else "")
    return DataError(f"user sources file {path}: {who}: {detail}")


def _user_source(entry: Any, path: Path, index: int) -> Source:
    name = entry.get("name", "") if isinstance(entry, Mapping) else ""

    def err(detail: str) -> DataError:
        return _user_error(path, index, str(name), detail)

    return parse_source_entry(entry, err, default_notes=f"user source from {path}")


def _describe_rules(text_field: str, rules: Mapping[str, _HeadRule]) -> str:
    parts = []
    for head, r in rules.items():
        if r.field:
            pos, neg = sorted(r.positive), sorted(r.negative)
            parts.append(f"{head} = 1 if {r.field} in {pos}, 0 if in {neg}, else unknown")
        else:
            parts.append(f"{head} = {'unknown' if r.constant is None else r.constant}")
    return f"text from '{text_field}'; " + "; ".join(parts) + "."


def load_source_file(path: str | os.PathLike[str]) -> Source:
    """One source from one YAML file (a mapping): how every packaged source is declared."""
    path = Path(path)

    def err(detail: str) -> DataError:
        return DataError(f"source file {path}: {detail}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise err(f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise err(f"is not valid YAML: {' '.join(str(exc).split())}") from None
    src = parse_source_entry(data, err)
    if src.name != path.stem:
        raise err(f"declares name {src.name!r} but the file is named {path.name}: they must match")
    return src


def packaged_sources() -> dict[str, Source]:
    """Every source declared in the packaged registry folder (training/registry/*.yaml)."""
    from importlib import resources

    folder = resources.files("harmscan.training").joinpath("registry")
    out: dict[str, Source] = {}
    if folder.is_dir():
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.name.endswith(".yaml"):
                src = load_source_file(Path(str(item)))
                out[src.name] = src
    return out


def load_user_sources(path: str | os.PathLike[str]) -> dict[str, Source]:
    """Sources declared in a YAML list (no code change). Each entry:

    name, licence, commercial_use, files: [{path, sha256?, size?, url?}], format: csv|tsv|jsonl|json,
    text_field, labels: {head: 0 | 1 | null | {field, positive: [...], negative: [...]}}; optional title,
    origin, commit, kind, mapping, rows. File paths are relative to DATA_DIR/NAME, or absolute.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"user sources file {path} does not exist (check ${USER_SOURCES_ENV})") from None
    except yaml.YAMLError as exc:
        raise DataError(f"user sources file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if isinstance(data, Mapping) and "sources" in data:
        data = data["sources"]
    if not isinstance(data, list):
        raise DataError(f"user sources file {path} must hold a YAML list of sources (or a 'sources:' list)")
    out: dict[str, Source] = {}
    for i, entry in enumerate(data):
        src = _user_source(entry, path, i)
        if src.name in REGISTRY or src.name in out:
            raise _user_error(path, i, src.name, "the name is already taken: pick another one")
        out[src.name] = src
    return out


def all_sources(user_file: str | os.PathLike[str] | None = None) -> dict[str, Source]:
    """The built-in registry plus user sources from `user_file`, else from $HARMSCAN_SOURCES."""
    sources = dict(REGISTRY)
    user_file = user_file or os.environ.get(USER_SOURCES_ENV) or None
    if user_file:
        sources.update(load_user_sources(user_file))
    return sources


REGISTRY.update(packaged_sources())  # sources declared as YAML files (training/registry/)
