"""Issue 17: every scan result carries its language, and a policy routes the languages a bundle was not
trained on (French and German threats here) to its out-of-scope action, English untouched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from harmscan.classifiers.language import UNDETERMINED, bundle_languages, detect
from harmscan.classifiers.policy import Policy

FRENCH = [
    "Je vais te retrouver et te tuer, toi et toute ta famille.",  # threat
    "Je vais te planter un couteau dans le ventre ce soir.",  # threat
    "Nous avons visité le marché du village ce matin avec les enfants.",
]
GERMAN = [
    "Ich bringe dich um, wenn ich dich das nächste Mal sehe.",  # threat
    "Ich werde dich heute Nacht mit einem Messer abstechen.",  # threat
    "Die Bibliothek eröffnet nächste Woche einen neuen Lesesaal.",
]
ENGLISH = [
    "The committee reviewed the budget on Monday morning.",
    "I will stab him with a knife tonight and watch him bleed.",
    "My sister planted tomatoes and basil in the garden.",
]


def test_languages_are_detected_and_short_texts_are_undetermined() -> None:
    assert [detect(t).code for t in FRENCH] == ["fr"] * 3
    assert [detect(t).code for t in GERMAN] == ["de"] * 3
    assert [detect(t).code for t in ENGLISH] == ["en"] * 3
    for text in ("ok", "lol", "🙂🙂", "12345 678"):
        assert detect(text).code == UNDETERMINED
    assert all(0.5 <= detect(t).confidence <= 1.0 for t in FRENCH + GERMAN + ENGLISH)


def test_a_bundle_without_recorded_languages_was_trained_on_english() -> None:
    assert bundle_languages({"sources": {}}) == ("en",)
    assert bundle_languages({"languages": ["EN", "fr"]}) == ("en", "fr")


def test_undetermined_language_stays_in_scope() -> None:
    policy = Policy.from_dict({"version": 1, "actions": {"input": {"violence": [{"action": "block", "threshold": 0.9}]}},
                               "out_of_scope": {"languages": ["en"]}}, ["violence"])
    assert policy.decide({"violence": 0.1}, language="und").reason == "scores"
    assert policy.decide({"violence": 0.1}, language="de").action == "review"  # the documented default


def _policy_file(tmp_path: Path, out_of_scope: dict) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({
        "version": 1,
        "actions": {"input": {"violence": [{"action": "block", "threshold": 0.99}]}},
        "out_of_scope": out_of_scope,
    }))
    return path


def test_french_and_german_threats_get_the_out_of_scope_action(tmp_path_factory: pytest.TempPathFactory,
                                                              tmp_path: Path) -> None:
    from classifier_helpers import violence_bundle

    from harmscan.classifiers import HarmClassifier

    bundle = violence_bundle(tmp_path_factory)
    texts = FRENCH + GERMAN + ENGLISH
    plain = HarmClassifier.load(bundle, threads=1)
    # No languages named: the bundle's training languages (its manifest records none: English).
    routed = HarmClassifier.load(bundle, threads=1, policy=_policy_file(tmp_path, {"action": "annotate"}))
    assert routed.policy.out_of_scope is not None and routed.policy.out_of_scope.languages == ("en",)
    results = routed.scan(texts)
    assert [r.language for r in results] == ["fr"] * 3 + ["de"] * 3 + ["en"] * 3
    assert [r.decision for r in results[:6]] == ["annotate"] * 6
    english = [r.decision for r in results[6:]]
    assert english == [d.decision for d in HarmClassifier.load(bundle, threads=1, policy=_policy_file(
        tmp_path, {"action": "annotate", "languages": ["en", "fr", "de"]})).scan(ENGLISH)]
    assert "annotate" not in english  # English is in scope: its decision comes from its scores alone

    # Listing French makes French in scope; German still gets the (stronger) review.
    both = HarmClassifier.load(bundle, threads=1, policy=_policy_file(tmp_path, {"languages": ["en", "fr"]}))
    decisions = [r.decision for r in both.scan(texts)]
    assert decisions[3:6] == ["review"] * 3 and "review" not in decisions[:3] + decisions[6:]

    # Language identification sits beside the model: scores are identical with and without routing.
    np.testing.assert_array_equal(
        np.array([[r.scores[k] for k in plain.labels] for r in plain.scan(texts)]),
        np.array([[r.scores[k] for k in plain.labels] for r in results]),
    )
    # The threshold-only bundle policy annotates the language without routing on it.
    assert {r.decision for r in plain.scan(texts)} <= {"flag", "allow"}


def test_scan_output_rows_carry_the_language(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from classifier_helpers import violence_bundle

    from harmscan.classifiers import HarmClassifier
    from harmscan.classifiers.scan import scan_file

    bundle = violence_bundle(tmp_path_factory)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(FRENCH[:1] + GERMAN[:1] + ["ok"])))
    out = tmp_path / "out.jsonl"
    scan_file(src, out, HarmClassifier.load(bundle, threads=1), progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["language"] for r in rows] == ["fr", "de", UNDETERMINED]


def test_language_identification_is_cheap() -> None:
    texts = (FRENCH + GERMAN + ENGLISH) * 30
    detect(texts[0])  # loads the identifier once
    start = time.perf_counter()
    for text in texts:
        detect(text)
    per_text = (time.perf_counter() - start) / len(texts)
    # ~130 µs measured on the 2-core machine; 2 ms leaves room for a loaded CI box.
    assert per_text < 2e-3, f"language identification took {per_text * 1e6:.0f} µs a text"
