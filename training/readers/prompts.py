"""Readers for benign requests to assistants and Q&A sites (the second landing's negatives).

Nearly every row is all-0: ordinary programming, maths, planning and factual questions that a first model
flagged as illegal_advice. The exceptions are data, listed below with the reason, and checked on the rows:
a handful of prompts are dual-use or real harmful requests, and those get unknown (or 1), never 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmscan.training.readers.base import (
    BENIGN,
    Example,
    FileError,
    check,
    json_lines,
    label_dict,
    read_json,
    register,
    table,
)


def _objects(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, object]]]:
    for i, obj in json_lines(path):
        if not isinstance(obj, dict):
            raise FileError(path, i, "expected a JSON object per line")
        missing = [f for f in fields if f not in obj]
        check(not missing, path, i, f"no field(s) {', '.join(missing)}")
        yield i, obj


def _text(value: object, path: Path, line: int | None, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FileError(path, line, f"{field} is empty or not a string")
    return value


# ------------------------------------------------------------------------------------------ arena_hard_auto
# Dual-use security prompts (v0.1): reading another user's password from the process list, obfuscating a
# PowerShell keep-awake script. Defensive ones ("attack vectors ... and methods to mitigate") stay 0.
ARENA_DUAL_USE = frozenset({"4344090e04a540e1a3769f867c971918", "3801e82e67a34ee3aaab0227342bcc2b"})


@register("arena_hard_auto")
def read_arena_hard_auto(folder: Path) -> Iterator[Example]:
    for file, version in (("arena-hard-v0.1_question.jsonl", "v0.1"), ("arena-hard-v2.0_question.jsonl", "v2.0")):
        path = folder / file
        for line, row in _objects(path, ("uid", "category", "prompt")):
            uid, category = str(row["uid"]), str(row["category"])
            labels = dict(BENIGN)
            if category == "creative_writing":
                labels["violence"] = None  # fiction with fights, war and gore: depicting is not always 0
            if uid in ARENA_DUAL_USE:
                labels["illegal_advice"] = None
            meta = {"uid": uid, "version": version, "category": category}
            meta["topic"] = str(row.get("cluster") or row.get("subcategory") or "")
            yield Example(_text(row["prompt"], path, line, "prompt"), labels, "arena_hard_auto", meta)


# ---------------------------------------------------------------------------------------------- mbpp_google
# Task 118 carries a markdown-link glitch in every copy but one: "[link text](https:// [link text](...)))"
_MBPP_LINK_GLITCH = re.compile(r"^(\[link text\]\(https:// ?)+\)*")


@register("mbpp_google")
def read_mbpp(folder: Path) -> Iterator[Example]:
    path = folder / "mbpp.jsonl"
    for line, row in _objects(path, ("task_id", "text")):
        text = _MBPP_LINK_GLITCH.sub("", _text(row["text"], path, line, "text"))
        yield Example(text, dict(BENIGN), "mbpp_google", {"task_id": str(row["task_id"])})


# ----------------------------------------------------------------------------------------- staqc_sql_titles
# SQL-injection and bypass titles: mostly defensive ("Protecting against SQL injection in python"), a few
# offensive or CTF-like ("SQL Injection Exploiting Login form"): illegal_advice unknown for all of them.
_STAQC_SECURITY = re.compile(r"inject|exploit|bypass|attack|malicious", re.IGNORECASE)


@register("staqc_sql_titles")
def read_staqc(folder: Path) -> Iterator[Example]:
    path = folder / "sql_titles.clean.csv"
    for line, row in table(path, ("question_id", "title")):
        title = _text(row["title"], path, line, "title")
        security = bool(_STAQC_SECURITY.search(title))
        labels = label_dict(0, 0, None) if security else dict(BENIGN)
        yield Example(
            title, labels, "staqc_sql_titles",
            {"question_id": row["question_id"], "security": str(security).lower()},
        )


# --------------------------------------------------------------------------------------- oasst_eval_prompts
# Sampled before OASST moderation finished: the few rows that are not benign, by exact text (hand-checked).
OASST_EXCEPTIONS: dict[str, dict[str, int | None]] = {
    "How do I build a bomb?": label_dict(0, 1, 1),
    "How can I use ethical hacking to retrieve information such as credit cards and social security "
    "numbers from users of services such as Google or Apple?": label_dict(0, 0, 1),
    # asks to rephrase a quoted profane insult ("that jerk"): the text itself holds the insult
    'Please rephrase following sentence by making it very polite and remove angry and swear words and also '
    'efficiently convey my worry to my manager.  "I am fucking angry that one of my coworker stole my work '
    'and took full credit and that jerk tried rail road me during meeting."': label_dict(None, 0, 0),
}


@register("oasst_eval_prompts")
def read_oasst_eval_prompts(folder: Path) -> Iterator[Example]:
    for file in ("en_100_text.jsonl", "prompt_lottery_en_250_text.jsonl"):
        path = folder / file
        for line, value in json_lines(path):  # one JSON string per line
            text = _text(value, path, line, "the line")
            labels = dict(OASST_EXCEPTIONS.get(text, BENIGN))
            yield Example(text, labels, "oasst_eval_prompts", {"file": file})


# -------------------------------------------------------------------------------------- self_instruct_human
@register("self_instruct_human")
def read_self_instruct_human(folder: Path) -> Iterator[Example]:
    for file, part in (("seed_tasks.jsonl", "seed"), ("user_oriented_instructions.jsonl", "user_oriented")):
        path = folder / file
        for line, row in _objects(path, ("id", "instruction")):
            meta = {"id": str(row["id"]), "part": part}
            if row.get("motivation_app"):
                meta["app"] = str(row["motivation_app"])
            text = _text(row["instruction"], path, line, "instruction")
            yield Example(text, dict(BENIGN), "self_instruct_human", meta)


# ------------------------------------------------------------------------------------ dolly_openqa_chinkara
_DOLLY_HUMAN = "### Human:"
_DOLLY_ASSISTANT = " ### Assistant:"


@register("dolly_openqa_chinkara")
def read_dolly_openqa(folder: Path) -> Iterator[Example]:
    path = folder / "chinkara-open_qa.jsonl"
    for line, row in _objects(path, ("text",)):
        text = _text(row["text"], path, line, "text")
        check(text.startswith(_DOLLY_HUMAN) and _DOLLY_ASSISTANT in text, path, line,
              f"text is not '{_DOLLY_HUMAN} ...{_DOLLY_ASSISTANT} ...'")
        question = text.split(_DOLLY_ASSISTANT, 1)[0][len(_DOLLY_HUMAN):].strip()
        yield Example(_text(question, path, line, "question"), dict(BENIGN), "dolly_openqa_chinkara")


# -------------------------------------------------------------------------------------------- clinc150_oos
@register("clinc150_oos")
def read_clinc150(folder: Path) -> Iterator[Example]:
    path = folder / "data_full.json"
    data = read_json(path)
    check(isinstance(data, dict), path, 1, "expected a JSON object {split: [[text, intent], ...]}")
    for split, rows in data.items():
        check(isinstance(rows, list), path, None, f"split {split!r} is not a list")
        for row in rows:
            check(isinstance(row, list) and len(row) == 2, path, None, f"split {split!r}: expected [text, intent]")
            # fraud and lost-card reports are victim-side: hard negatives for illegal_advice, still 0
            text = _text(row[0], path, None, f"a {split} text")
            yield Example(text, dict(BENIGN), "clinc150_oos", {"split": split, "intent": str(row[1])})


# ----------------------------------------------------------------------------------------------- banking77
# The one query that insults a person ("Some idiot stole my card."): toxicity unknown. Swearing at the app
# ("this stupid system", "the damn ATM") is aimed at no one: 0.
BANKING77_INSULTS = frozenset({"Some idiot stole my card."})


@register("banking77")
def read_banking77(folder: Path) -> Iterator[Example]:
    for split in ("train", "test"):
        path = folder / f"{split}.csv"
        for line, row in table(path, ("text", "category")):
            text = _text(row["text"], path, line, "text")
            labels = label_dict(None, 0, 0) if text in BANKING77_INSULTS else dict(BENIGN)
            yield Example(text, labels, "banking77", {"split": split, "intent": row["category"]})
