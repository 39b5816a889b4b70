"""Policy files with actions: every action in every direction, out-of-scope defaults, one-line errors naming
the key path, the file's sha256, threshold-only files unchanged, and the same decisions through `scan`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harmscan.classifiers.policy import ACTIONS, Policy
from harmscan.errors import HarmscanError

LABELS = ["toxicity", "violence", "illegal_advice"]


def _scores(tox: float = 0.0, vio: float = 0.0, ill: float = 0.0) -> dict[str, float]:
    return {"toxicity": tox, "violence": vio, "illegal_advice": ill}


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LADDER = """
version: 1
actions:
  {direction}:
    violence:
      - {{action: block, threshold: 0.9}}
{redact}      - {{action: review, threshold: 0.6}}
      - {{action: annotate, threshold: 0.4}}
      - {{action: allow, threshold: 0.0}}
"""


@pytest.mark.parametrize("direction", ["input", "output"])
def test_every_action_in_every_direction(tmp_path: Path, direction: str) -> None:
    redact = "      - {action: redact, threshold: 0.75}\n" if direction == "output" else ""
    policy = Policy.from_file(_write(tmp_path, LADDER.format(direction=direction, redact=redact)), LABELS)
    expected = {0.1: "allow", 0.5: "annotate", 0.65: "review", 0.95: "block"}
    if direction == "output":
        expected[0.8] = "redact"
    for score, action in expected.items():
        decision = policy.decide(_scores(vio=score), direction)
        assert decision.action == action
        assert decision.labels == (() if action == "allow" else ("violence",))
    other = "output" if direction == "input" else "input"
    assert policy.decide(_scores(vio=0.99), other).action == "allow"  # rules are per direction
    assert {a for a in expected.values()} == set(ACTIONS) - ({"redact"} if direction == "input" else set())


def test_strongest_action_wins_across_labels_and_names_its_labels(tmp_path: Path) -> None:
    policy = Policy.from_file(_write(tmp_path, """
version: 1
actions:
  input:
    toxicity: [{action: review, threshold: 0.5}]
    violence: [{action: block, threshold: 0.7}, {action: review, threshold: 0.5}]
    illegal_advice: [{action: review, threshold: 0.5}]
"""), LABELS)
    assert policy.decide(_scores(0.6, 0.6, 0.6)).labels == ("toxicity", "violence", "illegal_advice")
    d = policy.decide(_scores(0.6, 0.8, 0.6))
    assert (d.action, d.labels) == ("block", ("violence",))
    # `flagged` thresholds default to each label's lowest action threshold
    assert policy.thresholds == {"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.5}


def test_out_of_scope_texts_get_the_default_unless_a_stronger_action_fires(tmp_path: Path) -> None:
    policy = Policy.from_file(_write(tmp_path, """
version: 1
actions:
  input: {violence: [{action: block, threshold: 0.9}]}
  output: {violence: [{action: annotate, threshold: 0.5}]}
out_of_scope: {max_chars: 100, languages: [en], action: {input: review, output: block}}
"""), LABELS)
    assert policy.decide(_scores(), "input", chars=100).action == "allow"
    d = policy.decide(_scores(), "input", chars=101)
    assert (d.action, d.reason) == ("review", "too_long")
    assert policy.decide(_scores(), "output", chars=101).action == "block"
    assert policy.decide(_scores(vio=0.95), "input", chars=101).action == "block"
    assert policy.decide(_scores(), "input", language="fr").reason == "language"
    assert policy.decide(_scores(), "input", language="en-GB").action == "allow"
    assert policy.decide(_scores(), "input", language=None).action == "allow"  # unknown language: in scope


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("version: 2\nactions: {input: {violence: [{action: block, threshold: 0.5}]}}", "version"),
        ("version: 1\nactions: {inbound: {}}", "actions.inbound"),
        ("version: 1\nactions: {input: {violense: [{action: block, threshold: 0.5}]}}", "actions.input.violense"),
        ("version: 1\nactions: {input: {violence: [{action: stop, threshold: 0.5}]}}",
         "actions.input.violence[0].action"),
        ("version: 1\nactions: {input: {violence: [{action: redact, threshold: 0.5}]}}",
         "actions.input.violence[0].action"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 1.5}]}}",
         "actions.input.violence[0].threshold"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: '0.5'}]}}",
         "actions.input.violence[0].threshold"),
        ("version: 1\nactions: {input: {violence: [{action: block, treshold: 0.5}]}}",
         "actions.input.violence[0].treshold"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 0.5}, "
         "{action: review, threshold: 0.7}]}}", "actions.input.violence"),
        ("version: 1\nactions: {input: {violence: {action: block}}}", "actions.input.violence"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 0.5}]}}\nout_of_scope: "
         "{max_chars: -3}", "out_of_scope.max_chars"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 0.5}]}}\nout_of_scope: "
         "{action: redact}", "out_of_scope.action"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 0.5}]}}\nthreshold: {}",
         "threshold"),
        ("version: 1\nactions: {input: {violence: [{action: block, threshold: 0.5}]}}\nthresholds: "
         "{violence: 2}", "thresholds"),
        ("version: 1\n", "actions"),
        ("version: 1\nactions: [\n", "not valid JSON/YAML"),
    ],
)
def test_malformed_files_fail_in_one_line_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(HarmscanError) as err:
        Policy.from_file(_write(tmp_path, text), LABELS)
    message = str(err.value)
    assert "\n" not in message
    assert key in message and str(tmp_path / "policy.yaml") in message


def test_malformed_file_stops_the_cli_with_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from classifier_helpers import REPO

    bad = _write(tmp_path, "version: 1\nactions: {input: {violence: [{action: stop, threshold: 0.5}]}}")
    cmd = [sys.executable, "-c", "import sys, harmscan.cli as c; c.COMMAND_MODULES = ('harmscan.serving.cli',); "
           "sys.exit(c.main(sys.argv[1:]))", "gateway", "--upstream", "http://127.0.0.1:9/v1", "--policy",
           str(bad), "--bundle", str(tmp_path / "no-bundle")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("harmscan: error:")


def test_sha256_is_the_files_bytes_and_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path, LADDER.format(direction="output", redact=""))
    policy = Policy.from_file(path, LABELS)
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    saved = tmp_path / "saved.json"
    policy.save(saved)
    again = Policy.from_file(saved, LABELS)
    assert again.actions == policy.actions and again.thresholds == policy.thresholds
    assert again.sha256 == hashlib.sha256(saved.read_bytes()).hexdigest() != policy.sha256
    assert policy.with_overrides({"violence": 0.2}, LABELS).actions == policy.actions


def test_threshold_only_files_load_and_decide_as_before(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"thresholds": {"toxicity": 0.3, "violence": 0.6}, "objective": "f1"}))
    policy = Policy.from_file(path, LABELS)
    assert policy.thresholds == {"toxicity": 0.3, "violence": 0.6, "illegal_advice": 0.5}
    assert policy.meta == {"objective": "f1"} and not policy.has_actions
    assert policy.to_dict() == {"thresholds": policy.thresholds, "objective": "f1"}
    assert [d.action for d in policy.decisions(np.array([[0.4, 0.1, 0.1], [0.1, 0.1, 0.1]]), LABELS)] == \
        ["flag", "allow"]
    assert policy.decide(_scores(0.4, 0.7)).labels == ("toxicity", "violence")
    bare = _write(tmp_path, "toxicity: 0.2\n", "bare.yaml")
    assert Policy.from_file(bare, LABELS).thresholds["toxicity"] == 0.2


def test_scan_results_carry_the_action_as_their_decision(tmp_path_factory: pytest.TempPathFactory,
                                                         tmp_path: Path) -> None:
    from classifier_helpers import BENIGN, VIOLENT, violence_bundle

    from harmscan.classifiers import HarmClassifier

    bundle = violence_bundle(tmp_path_factory)
    plain = HarmClassifier.load(bundle, threads=1)
    benign, violent = plain.predict_proba(BENIGN[:3])[:, 1], plain.predict_proba(VIOLENT[:3])[:, 1]
    cut = float(benign.max() + violent.min()) / 2
    path = _write(tmp_path, f"""
version: 1
actions:
  input: {{violence: [{{action: block, threshold: {cut}}}, {{action: annotate, threshold: {benign.min() / 2}}}]}}
out_of_scope: {{max_chars: 300, action: review}}
""")
    clf = HarmClassifier.load(bundle, threads=1, policy=path)
    results = clf.scan(BENIGN[:3] + VIOLENT[:3] + [BENIGN[0] + " " + "and more words " * 30])
    assert [r.decision for r in results] == ["annotate"] * 3 + ["block"] * 3 + ["review"]
    assert results[3].flagged == ["violence"]
