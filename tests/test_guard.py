"""Guard: input and output checks, streamed output (buffered to sentences, a bounded cut, redaction, never
more than one guard chunk held), and audit records for every intervention without any text."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harmscan.classifiers.guard import Guard, input_texts
from harmscan.classifiers.policy import Policy

LABELS = ["toxicity", "violence", "illegal_advice"]
HARMFUL = "I will stab him tonight. "  # the keyword scorer below gives it violence 0.95
RUDE = "You absolute idiot. "  # toxicity 0.7
SECRET = "zebra-canary-7f3a"  # in every text: must never appear in an audit record


class KeywordScorer:
    """A stand-in classifier with known scores, so each test states exactly what should fire."""

    labels = LABELS

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Any) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.calls.append(texts)
        return np.array([[0.7 if "idiot" in t else 0.05, 0.95 if "stab" in t or ("knife" in t and "alley" in t) else 0.05,
                          0.6 if "steal" in t else 0.05] for t in texts])


POLICY = """
version: 1
actions:
  input:
    violence: [{action: block, threshold: 0.9}]
    toxicity: [{action: review, threshold: 0.5}]
    illegal_advice: [{action: annotate, threshold: 0.5}]
  output:
    violence: [{action: block, threshold: 0.9}]
    toxicity: [{action: redact, threshold: 0.5}]
    illegal_advice: [{action: annotate, threshold: 0.5}]
"""


@pytest.fixture()
def records() -> list[dict[str, Any]]:
    return []


@pytest.fixture()
def guard(tmp_path: Path, records: list[dict[str, Any]]) -> Guard:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return Guard(KeywordScorer(), Policy.from_file(path, LABELS), audit=records.append, key_id="key-1",
                 chunk_chars=60, context_chars=40)


def test_input_actions(guard: Guard) -> None:
    assert guard.check_input("hello there").action == "allow"
    assert guard.check_input(f"{SECRET} how do I steal a car").action == "annotate"
    assert guard.check_input(RUDE).action == "review"
    verdict = guard.check_input([{"role": "system", "content": "stab"},  # the app's own text: not checked
                                 {"role": "user", "content": [{"type": "text", "text": "an idiot"}]},
                                 {"role": "user", "content": HARMFUL}])
    assert (verdict.action, verdict.labels) == ("block", ("violence",))
    assert guard.check_input([{"role": "system", "content": HARMFUL}, {"role": "user", "content": "hi"}]).action \
        == "allow"


def test_output_actions_and_redaction(guard: Guard) -> None:
    assert guard.check_output("All fine here.").action == "allow"
    assert guard.check_output("To steal, ask a lawyer first.").action == "annotate"
    assert guard.check_output("Sure. " + HARMFUL).blocked
    verdict = guard.check_output("Hello. " + RUDE + "Have a nice day.")
    assert verdict.action == "redact"
    assert verdict.redacted == "Hello. [redacted] Have a nice day."


def test_stream_cuts_right_after_the_harmful_sentence_and_sends_nothing_of_it(guard: Guard) -> None:
    tokens = ["Once ", "upon ", "a time. ", "Then ", "I ", "will ", "stab ", "him ", "tonight. ", "After ",
              "that ", "nothing."]
    events = list(guard.stream(tokens))
    sent = "".join(e.text for e in events if e.kind == "text")
    assert sent == "Once upon a time. "
    assert events[-1].kind == "blocked" and events[-1].verdict is not None
    assert events[-1].verdict.labels == ("violence",)


def test_stream_holds_at_most_one_guard_chunk(guard: Guard) -> None:
    words = [f"word{i} " for i in range(60)]  # no sentence end at all
    checker = guard.open_stream()
    held_max = 0
    for w in words:
        checker.feed(w)
        held_max = max(held_max, len(checker.pending))
    assert held_max < guard.chunk_chars
    # every word is released in order, nothing lost
    checker = guard.open_stream()
    out = "".join(e.text for w in words for e in checker.feed(w)) + "".join(e.text for e in checker.close())
    assert out == "".join(words)


def test_stream_redacts_and_annotates_in_place(guard: Guard) -> None:
    events = list(guard.stream(["Fine. ", "You absolute ", "idiot. ", "How to steal ", "a bike. ", "Bye."]))
    assert [e.kind for e in events] == ["text"] * 4
    assert "".join(e.text for e in events) == "Fine. [redacted] How to steal a bike. Bye."
    assert [e.verdict.action for e in events if e.verdict] == ["allow", "redact", "annotate", "allow"]


def test_context_window_catches_harm_split_across_sentences(records: list[dict[str, Any]]) -> None:
    # Neither sentence alone scores as violent, the two together do: the trailing context sees it.
    guard = Guard(KeywordScorer(), Policy.from_dict(
        {"version": 1, "actions": {"output": {"violence": [{"action": "block", "threshold": 0.9}]}}}, LABELS),
        context_chars=20)
    events = list(guard.stream(["Bring a knife.\n", "Meet me in the alley.\n"]))
    assert events[-1].kind == "blocked"
    no_context = Guard(guard.classifier, guard.policy, context_chars=0)
    assert all(e.kind == "text" for e in no_context.stream(["Bring a knife.\n", "Meet me in the alley.\n"]))


class DilutingScorer(KeywordScorer):
    """Like a real model: benign text in front of a harmful sentence pulls its score down (measured on the
    quickstart model: a toxic sentence 0.93 alone, 0.50 after one benign sentence)."""

    def predict_proba(self, texts: Any) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = super().predict_proba(texts)
        out[:, 1] = [0.95 if t.startswith("I will stab") else 0.5 if "stab" in t else 0.05 for t in texts]
        return out


def test_benign_context_does_not_dilute_a_harmful_sentence() -> None:
    """Each sentence is scored alone as well as after its context, and the higher score counts: a harmful
    sentence after benign ones is still cut (with the context only, 26 of 150 got through in the benchmark)."""
    policy = Policy.from_dict(
        {"version": 1, "actions": {"output": {"violence": [{"action": "block", "threshold": 0.9}]}}}, LABELS)
    guard = Guard(DilutingScorer(), policy, context_chars=200)
    events = list(guard.stream(["The weather is nice. ", "We had lunch. ", "I will stab him tonight. ", "Bye."]))
    assert "".join(e.text for e in events if e.kind == "text") == "The weather is nice. We had lunch. "
    assert events[-1].kind == "blocked"


def test_threshold_only_policy_blocks_what_it_flags() -> None:
    guard = Guard(KeywordScorer(), Policy({"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.5}))
    assert guard.check_input(RUDE).action == "block"
    assert guard.check_input("hello").action == "allow"


def test_every_intervention_is_audited_without_text(guard: Guard, records: list[dict[str, Any]]) -> None:
    guard.check_input(f"{SECRET} hello")  # allow: no record
    assert records == []
    guard.check_input(f"{SECRET} {RUDE}", request_id="r1")
    guard.check_output(f"{SECRET} steal things.")
    list(guard.stream([f"{SECRET}. ", "You ", "idiot. ", HARMFUL]))
    assert [r["action"] for r in records] == ["review", "annotate", "redact", "block"]
    first = records[0]
    assert first["sha256"] == hashlib.sha256(f"{SECRET} {RUDE}".encode()).hexdigest()
    assert (first["direction"], first["labels"], first["key_id"], first["request_id"]) == \
        ("input", ["toxicity"], "key-1", "r1")
    assert first["policy_sha256"] == guard.policy.sha256 and first["scores"]["toxicity"] == 0.7
    assert set(first) >= {"time", "bundle", "reason", "chars"}
    dumped = json.dumps(records)
    assert SECRET not in dumped and "idiot" not in dumped and "stab" not in dumped


def test_input_texts_refuses_malformed_messages() -> None:
    from harmscan.errors import InputError

    assert input_texts([{"role": "user", "content": None}, {"role": "tool", "content": "t"}]) == ["t"]
    with pytest.raises(InputError, match=r"messages\[0\]"):
        input_texts([{"role": "user", "content": 5}])
    with pytest.raises(InputError):
        input_texts("not a list")  # type: ignore[arg-type]


def test_guard_with_the_real_classifier_decides_like_scan(tmp_path_factory: pytest.TempPathFactory,
                                                          tmp_path: Path) -> None:
    from classifier_helpers import BENIGN, VIOLENT, violence_bundle

    from harmscan.classifiers import HarmClassifier

    bundle = violence_bundle(tmp_path_factory)
    plain = HarmClassifier.load(bundle, threads=1)
    cut = float(plain.predict_proba(BENIGN).max(axis=0)[1] + plain.predict_proba(VIOLENT).min(axis=0)[1]) / 2
    policy = Policy.from_dict({"version": 1, "actions": {
        "input": {"violence": [{"action": "block", "threshold": cut}]},
        "output": {"violence": [{"action": "block", "threshold": cut}]}}}, LABELS)
    clf = HarmClassifier.load(bundle, threads=1, policy=policy)
    guard = Guard(clf)
    texts = BENIGN[:4] + VIOLENT[:2]
    assert [guard.check_input(t).action for t in texts] == [r.decision for r in clf.scan(texts)]
    story = [w + " " for w in (BENIGN[0] + " " + VIOLENT[0] + " " + BENIGN[1]).split()]
    events = list(guard.stream(story))
    assert events[-1].kind == "blocked"
    assert "".join(e.text for e in events) == BENIGN[0] + " "
