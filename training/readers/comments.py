"""Readers for comment and post corpora (tweets, forum posts, news comments), one per source.

Each maps a corpus's own labels to the heads (1, 0 or None) and says why where the mapping is not obvious;
the YAML file of the same name in training/registry/ pins the files and describes the mapping.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from harmscan.training.readers.base import (
    BENIGN,
    Example,
    Label,
    check,
    choice,
    decode_u_escapes,
    fraction,
    label_dict,
    lines,
    register,
    table,
    unescape_tweet,
)


@register("davidson_hate_offensive")
def read_davidson(folder: Path) -> Iterator[Example]:
    path = folder / "labeled_data.csv"
    cols = ("class", "tweet", "hate_speech", "offensive_language", "neither")
    for line, row in table(path, cols):
        cls = choice(row["class"], ("0", "1", "2"), path, line, "class")
        # 0 hate / 1 offensive -> toxic; 2 neither -> not toxic. No violence coding; tweets give no advice.
        yield Example(
            unescape_tweet(row["tweet"]),
            label_dict(int(cls in ("0", "1")), None, 0),
            "davidson_hate_offensive",
            {"class": ("hate", "offensive", "neither")[int(cls)],
             "votes": f"{row['hate_speech']}/{row['offensive_language']}/{row['neither']}"},
        )


def _read_tweeteval(folder: Path, name: str, positive_only: bool) -> Iterator[Example]:
    for split in ("train", "val", "test"):
        text_path, label_path = folder / f"{split}_text.txt", folder / f"{split}_labels.txt"
        texts, labels = lines(text_path), lines(label_path)
        check(
            len(texts) == len(labels), label_path, min(len(texts), len(labels)) + 1,
            f"{len(labels)} labels for {len(texts)} texts in {text_path.name}",
        )
        for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
            y = int(choice(label, ("0", "1"), label_path, i, "label"))
            if not text.strip():
                continue  # a few tweets are empty lines (kept in the file so texts and labels stay aligned)
            # HatEval's "not hate" may still be offensive (a quarter of them hit a profanity lexicon)
            tox: Label = (1 if y else None) if positive_only else y
            yield Example(unescape_tweet(text), label_dict(tox, None, 0), name, {"split": split})


@register("tweeteval_offensive")
def read_tweeteval_offensive(folder: Path) -> Iterator[Example]:
    return _read_tweeteval(folder, "tweeteval_offensive", positive_only=False)


@register("tweeteval_hate")
def read_tweeteval_hate(folder: Path) -> Iterator[Example]:
    return _read_tweeteval(folder, "tweeteval_hate", positive_only=True)


def _ethos_key(text: str) -> str:
    return " ".join(text.split())


@register("ethos")
def read_ethos(folder: Path) -> Iterator[Example]:
    multi_path = folder / "Ethos_Dataset_Multi_Label.csv"
    violence_share: dict[str, float] = {}
    for line, row in table(multi_path, ("comment", "violence"), delimiter=";"):
        violence_share[_ethos_key(row["comment"])] = fraction(row["violence"], multi_path, line, "violence")
    path = folder / "Ethos_Dataset_Binary.csv"
    for line, row in table(path, ("comment", "isHate"), delimiter=";"):
        hate = fraction(row["isHate"], path, line, "isHate")
        tox: Label = None
        vio: Label = None
        if hate >= 0.5:
            tox = 1
            share = violence_share.get(_ethos_key(row["comment"]))
            if share is not None:  # a majority of raters said it incites violence; a tie stays unknown
                vio = 1 if share > 0.5 else (None if share == 0.5 else 0)
        # isHate < 0.5: ETHOS codes hate speech only ("Go fuck yourself" is isHate 0): toxicity unknown,
        # and violence was only coded for hate comments ("a bullet finds him" is isHate 0): unknown.
        yield Example(row["comment"], label_dict(tox, vio, 0), "ethos", {"is_hate": f"{hate:.2f}"})


@register("toxigen_demonstrations")
def read_toxigen(folder: Path) -> Iterator[Example]:
    path = folder / "toxigen_demonstrations.csv"
    for line, row in table(path, ("text", "label", "target_group")):
        label = choice(row["label"], ("hate", "neutral"), path, line, "label")
        # neutral sentences mention the group harmlessly: non-toxic, non-violent (identity-term audit set)
        labels = label_dict(1, None, 0) if label == "hate" else BENIGN
        meta = {"label": label, "group": row["target_group"]}
        yield Example(row["text"], labels, "toxigen_demonstrations", meta)


TOXIC_SPANS_QUIZ_RATERS = 10  # a post with more ratings than this was a rater-qualification quiz question


@register("toxic_spans")
def read_toxic_spans(folder: Path) -> Iterator[Example]:
    comments_path = folder / "data_comments.csv"
    ann_path, spans_path = folder / "data_annotations.csv", folder / "data_spans.csv"
    raters: dict[str, list[str]] = defaultdict(list)  # comment -> its annotation ids
    for _, row in table(ann_path, ("annotation", "comment_id")):
        raters[row["comment_id"]].append(row["annotation"])
    spans: dict[str, list[tuple[str, int, int]]] = defaultdict(list)  # annotation -> (type, start, end)
    for line, row in table(spans_path, ("annotation", "type", "start", "end")):
        check(row["start"].isdigit() and row["end"].isdigit(), spans_path, line, "start/end are not offsets")
        spans[row["annotation"]].append((row["type"], int(row["start"]), int(row["end"])))
    for _, row in table(comments_path, ("comment_id", "comment_text")):
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
            row["comment_text"], label_dict(tox, vio, 0), "toxic_spans",
            {"comment_id": row["comment_id"], "raters": str(len(anns)), "threat_raters": str(len(threat))},
        )


@register("gab_hate_corpus")
def read_gab(folder: Path) -> Iterator[Example]:
    for split in ("train", "test"):
        path = folder / f"ghc_{split}.tsv"
        for line, row in table(path, ("text", "hd", "cv", "vo"), delimiter="\t"):
            hd, cv, vo = (int(choice(row[c], ("0", "1"), path, line, c)) for c in ("hd", "cv", "vo"))
            # cv (call for violence) is the strong violence signal; cv=0 is a weak negative (only calls for
            # violence were coded, a few violent posts are cv=0).
            yield Example(
                row["text"], label_dict(max(hd, cv, vo), cv, 0), "gab_hate_corpus",
                {"split": split, "codes": "".join(c for c, v in (("hd", hd), ("cv", cv), ("vo", vo)) if v)},
            )


IMPLICIT_CLASSES = (
    "white_grievance", "incitement", "inferiority", "irony", "stereotypical", "threatening", "other",
)


@register("implicit_hate_corpus")
def read_implicit_hate(folder: Path) -> Iterator[Example]:
    stg2_path = folder / "implicit_hate_v1_stg2_posts.tsv"
    subtypes: dict[str, set[str]] = defaultdict(set)
    for line, row in table(stg2_path, ("post", "implicit_class", "extra_implicit_class"), delimiter="\t"):
        subtypes[row["post"]].add(
            choice(row["implicit_class"], IMPLICIT_CLASSES, stg2_path, line, "implicit_class")
        )
        if row["extra_implicit_class"]:
            subtypes[row["post"]].add(row["extra_implicit_class"])
    path = folder / "implicit_hate_v1_stg1_posts.tsv"
    for line, row in table(path, ("post", "class"), delimiter="\t"):
        cls = choice(row["class"], ("explicit_hate", "implicit_hate", "not_hate"), path, line, "class")
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
            row["post"], label_dict(int(cls != "not_hate"), vio, 0), "implicit_hate_corpus",
            {"class": cls, "implicit_class": ",".join(sorted(kinds))},
        )


MLMA_TOXIC = frozenset({"offensive", "abusive", "hateful", "disrespectful"})


@register("mlma_en")
def read_mlma(folder: Path) -> Iterator[Example]:
    path = folder / "en_dataset_with_stop_words.csv"
    for _, row in table(path, ("tweet", "sentiment", "target", "group")):
        classes = set(row["sentiment"].split("_"))
        # Positives only: two-thirds of single-label "normal" tweets carry a slur or insult ("Zip it
        # raghead"), so "normal" is no negative; "normal" mixed with a toxic class is a disagreement.
        tox: Label = 1 if classes & MLMA_TOXIC and "normal" not in classes else None
        yield Example(
            decode_u_escapes(row["tweet"]), label_dict(tox, None, 0), "mlma_en",
            {"sentiment": row["sentiment"], "target": row["target"], "group": row["group"]},
        )


@register("stormfront_vicomtech")
def read_stormfront(folder: Path) -> Iterator[Example]:
    meta_path = folder / "annotations_metadata.csv"
    choices = ("hate", "noHate", "relation", "idk/skip")
    labels = {
        row["file_id"]: choice(row["label"], choices, meta_path, line, "label")
        for line, row in table(meta_path, ("file_id", "label"))
    }
    path = folder / "stormfront_sentences.csv"
    for line, row in table(path, ("file_id", "text")):
        # labels come from the upstream metadata file; the derived sentences file only supplies the text
        check(row["file_id"] in labels, path, line, f"file_id {row['file_id']} not in {meta_path.name}")
        label = labels[row["file_id"]]
        if label not in ("hate", "noHate"):
            continue  # "relation": hateful only with the neighbouring sentences; "idk/skip": no decision
        yield Example(
            row["text"], label_dict(int(label == "hate"), None, 0), "stormfront_vicomtech",
            {"file_id": row["file_id"], "label": label},
        )


@register("jigsaw_toxic_sample_ibm")
def read_jigsaw(folder: Path) -> Iterator[Example]:
    path = folder / "test_examples.csv"
    cols = ("comment_text", "toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    for line, row in table(path, cols):
        y = {c: int(choice(row[c], ("0", "1"), path, line, c)) for c in cols[1:]}
        tox = max(y["toxic"], y["severe_toxic"], y["obscene"], y["insult"], y["identity_hate"])
        yield Example(row["comment_text"], label_dict(tox, y["threat"], 0), "jigsaw_toxic_sample_ibm")
