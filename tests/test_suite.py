"""The behavioural suite: size, coverage of the issue's failure families, disjoint splits, valid labels,
determinism, and pass counts that match what a classifier's flags say."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harmscan.classifiers.policy import Policy
from harmscan.errors import DataError, InputError
from harmscan.eval.suite import (
    SuiteCase,
    evaluate_suite,
    format_functionality_table,
    format_suite_table,
    functionalities,
    held_out_keys,
    leaked_cases,
    load_suite,
    run_suite_cli,
    training_examples,
)
from harmscan.eval.suite.generator import generate, load_definitions
from harmscan.labels import default_taxonomy
from harmscan.text import dedup_key, normalize_text

HEADS = default_taxonomy().names
# The failure families the issue names, each of which must have at least one functionality.
ISSUE_FAMILIES = {
    "direct_threat", "implicit_threat", "incitement", "violent_request", "insult", "hate", "slur",
    "howto_crime", "polite_indirect", "obfuscated", "figurative", "safe_target", "safe_context", "homonym",
    "counter_speech", "reclaimed", "negation", "identity_neutral", "benign", "benign_request", "edgy_question",
}


# -- size and coverage -----------------------------------------------------------------------------------
def test_suite_is_big_enough_for_per_functionality_rates() -> None:
    funcs = functionalities()
    assert len(funcs) >= 30
    train, test = load_suite("train"), load_suite("test")
    assert len(train) + len(test) >= 3000 and len(test) >= 2000
    per = Counter((c.functionality, c.split) for c in train + test)
    for f in funcs:
        assert per[(f["name"], "test")] >= 30, f["name"]  # a pass rate on fewer cases is noise
        assert per[(f["name"], "train")] >= 20, f["name"]
        assert f["templates"]["train"] >= 5 and f["templates"]["test"] >= 5, f["name"]
    assert load_suite() == train + test


def test_issue_failure_families_and_both_polarities_of_every_head_are_covered() -> None:
    funcs = functionalities()
    assert ISSUE_FAMILIES <= {f["family"] for f in funcs}
    for head in HEADS:
        assert any(f["labels"][head] == 1 for f in funcs), f"no functionality where {head} should flag"
        assert sum(f["labels"][head] == 0 and f["polarity"] == "benign" for f in funcs) >= 10, head
    # Obfuscated positives for every head, with every method in the test split.
    obf = [c for c in load_suite("test") if c.obfuscation]
    assert {c.obfuscation for c in obf} == {"leet", "spacing", "zero_width", "homoglyph", "misspelling"}
    for head in HEADS:
        assert sum(c.labels[head] == 1 for c in obf) >= 40, head


def test_functionalities_describe_themselves() -> None:
    for f in functionalities():
        assert f["description"] and f["family"] and f["heads"]
        assert set(f["heads"]) <= set(HEADS)
        assert f["polarity"] in ("harmful", "benign")
        # The heads a functionality is about have a known gold label.
        assert all(f["labels"][h] is not None for h in f["heads"]), f["name"]
    table = format_functionality_table()
    assert all(f"| {f['name']} |" in table for f in functionalities())


# -- labels and splits -----------------------------------------------------------------------------------
def test_labels_are_valid_for_the_default_taxonomy() -> None:
    for case in load_suite():
        assert set(case.labels) == set(HEADS), case
        assert all(v in (0, 1, None) for v in case.labels.values()), case
        assert any(v is not None for v in case.labels.values()), case
        assert case.split in ("train", "test")
        assert case.template_id.startswith(f"{case.functionality}/{case.split}/")
        assert case.text == case.text.strip() and "{" not in case.text and "}" not in case.text


def test_train_and_test_are_disjoint_by_dedup_key_and_by_template() -> None:
    train, test = load_suite("train"), load_suite("test")
    train_keys = {dedup_key(c.text) for c in train} | {dedup_key(c.plain_text) for c in train if c.plain_text}
    clashes = [c.text for c in test if dedup_key(c.text) in train_keys
               or (c.plain_text and dedup_key(c.plain_text) in train_keys)]
    assert clashes == []
    # The sentence frames themselves differ (not only the fillers).
    funcs, _ = load_definitions()
    frames = {split: {dedup_key(t.text) for f in funcs for t in f.templates[split]} for split in ("train", "test")}
    assert frames["train"].isdisjoint(frames["test"])


def test_no_duplicates_within_a_split() -> None:
    for split in ("train", "test"):
        keys = [dedup_key(c.text) for c in load_suite(split)]
        assert len(keys) == len(set(keys)), split


def test_obfuscated_cases_keep_their_plain_form() -> None:
    for case in load_suite():
        if case.obfuscation is None:
            assert case.plain_text is None
            continue
        assert case.plain_text and case.text != case.plain_text
        if case.obfuscation in ("zero_width", "homoglyph"):
            assert normalize_text(case.text) == normalize_text(case.plain_text), case
        else:
            assert dedup_key(case.text) != dedup_key(case.plain_text), case


def test_generation_is_deterministic_across_processes() -> None:
    funcs, shared = load_definitions()
    again = generate(funcs, shared, "test", seed=0)
    assert again == load_suite("test")
    assert generate(funcs, shared, "train", seed=1) != load_suite("train")  # the seed matters...
    # ...and nothing depends on Python's per-process hash randomisation.
    code = (
        "import hashlib; from harmscan.eval.suite import load_suite; "
        "print(hashlib.sha256('\\n'.join(c.text for c in load_suite()).encode()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_importing_the_suite_stays_light() -> None:
    # The CLI and the eval report import it on every call: yaml and the standard library only.
    code = (
        "import sys, harmscan.eval.suite, harmscan.eval.obfuscate; "
        "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'sklearn', 'datasets', 'onnxruntime', 'tqdm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_split_is_a_user_error() -> None:
    with pytest.raises(InputError, match="unknown suite split 'dev'"):
        load_suite("dev")


# -- training examples -----------------------------------------------------------------------------------
def test_training_examples_come_from_train_templates_only() -> None:
    examples = training_examples()
    assert len(examples) >= 1000
    held_out = held_out_keys()
    train_tids = {c.template_id for c in load_suite("train")}
    for ex in examples:
        assert ex.source == "suite_train"
        assert ex.meta["template_id"] in train_tids and "/train/" in ex.meta["template_id"]
        assert dedup_key(ex.text) not in held_out
        assert set(ex.labels) == set(HEADS)
    assert leaked_cases(ex.text for ex in examples) == []
    # Another seed draws other filler combinations from the same templates; more per template when asked.
    other = training_examples(seed=13)
    assert {e.text for e in other} != {e.text for e in examples}
    assert {e.meta["template_id"] for e in other} <= train_tids
    assert leaked_cases(ex.text for ex in other) == []
    assert len(training_examples(seed=13, per_template=20)) > len(other)


def test_leaked_cases_finds_a_test_case_in_training_texts() -> None:
    case = load_suite("test")[5]
    texts = ["unrelated text", "  " + case.text.upper() + "!!"]  # case, spacing and punctuation do not hide it
    assert leaked_cases(texts) == [case]


# -- scoring ---------------------------------------------------------------------------------------------
class FakeClassifier:
    """A HarmClassifier look-alike: probabilities come from a function of the text."""

    def __init__(self, score: Any, labels: list[str] | None = None, thresholds: dict[str, float] | None = None):
        self.labels = labels or list(HEADS)
        self.policy = Policy({h: (thresholds or {}).get(h, 0.5) for h in self.labels})
        self._score = score
        self.calls = 0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.asarray([[self._score(t, h) for h in self.labels] for t in texts], dtype=np.float32)


def _gold() -> dict[str, dict[str, int | None]]:
    gold = {}
    for c in load_suite("test"):
        gold[c.text] = c.labels
        if c.plain_text:
            gold[c.plain_text] = c.labels
    return gold


def test_an_oracle_passes_every_case() -> None:
    gold = _gold()
    clf = FakeClassifier(lambda t, h: 0.9 if gold[t][h] == 1 else 0.1)
    result = evaluate_suite(clf, progress=False, batch_size=500)
    n_test = len(load_suite("test"))
    assert result["overall"] == {"n": n_test, "passed": n_test, "pass_rate": 1.0}
    assert all(f["pass_rate"] == 1.0 and f["failed_examples"] == [] for f in result["functionalities"])
    assert [f["name"] for f in result["functionalities"]] == [f["name"] for f in functionalities()]
    assert result["obfuscation"]["plain_recall"] == result["obfuscation"]["obfuscated_recall"] == 1.0
    assert all(result["checks"].values())
    assert clf.calls > 1  # scored in batches
    json.dumps(result)  # the eval report stores it as JSON


def test_flag_everything_passes_exactly_the_all_positive_cases() -> None:
    result = evaluate_suite(FakeClassifier(lambda t, h: 1.0), progress=False)
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in load_suite("test"):
        expected[c.functionality][0] += 1
        expected[c.functionality][1] += all(v == 1 for v in c.labels.values() if v is not None)
    got = {f["name"]: [f["n"], f["passed"]] for f in result["functionalities"]}
    assert got == dict(expected)
    assert got["figurative_violence"][1] == 0 and got["violent_request"] == [got["violent_request"][0]] * 2
    assert result["obfuscation"]["gap"] == 0.0
    assert not result["checks"]["overall_pass_rate>=0.90"]


def test_thresholds_come_from_the_policy_and_unknown_heads_are_ignored() -> None:
    gold = _gold()
    # Scores of 0.6 for every positive: a violence threshold of 0.7 misses them all, the others catch them.
    clf = FakeClassifier(lambda t, h: 0.6 if gold[t][h] == 1 else 0.1, thresholds={"violence": 0.7})
    result = evaluate_suite(clf, progress=False)
    by_name = {f["name"]: f for f in result["functionalities"]}
    assert by_name["threat_direct"]["pass_rate"] == 0.0
    assert by_name["insult_direct"]["pass_rate"] == 1.0  # violence gold is 0 there: a miss is a pass
    assert by_name["howto_drugs"]["pass_rate"] == 1.0
    assert result["obfuscation"]["per_head"]["violence"]["obfuscated_recall"] == 0.0
    assert result["thresholds"]["violence"] == pytest.approx(0.7)
    assert "**0.0%**" in format_suite_table(result)
    # A toxicity-only classifier is judged on toxicity alone; cases without a toxicity label drop out.
    tox_only = evaluate_suite(FakeClassifier(lambda t, h: 0.9 if gold[t][h] == 1 else 0.1, labels=["toxicity"]),
                              progress=False)
    n_known = sum(c.labels["toxicity"] is not None for c in load_suite("test"))
    assert tox_only["overall"] == {"n": n_known, "passed": n_known, "pass_rate": 1.0}
    assert "threat_direct" not in {f["name"] for f in tox_only["functionalities"]}  # toxicity unknown there


def test_obfuscation_recall_compares_with_the_plain_forms() -> None:
    gold = _gold()
    plain = {c.plain_text for c in load_suite("test") if c.plain_text}
    obfuscated = {c.text for c in load_suite("test") if c.obfuscation}
    # A model that reads plain text perfectly and misses every leetspeak case.
    leet = {c.text for c in load_suite("test") if c.obfuscation == "leet"}
    clf = FakeClassifier(lambda t, h: 0.0 if t in leet else (0.9 if gold[t][h] == 1 else 0.1))
    obf = evaluate_suite(clf, progress=False)["obfuscation"]
    assert obf["plain_recall"] == 1.0
    assert obf["per_method"]["leet"]["obfuscated_recall"] == 0.0
    assert all(v["obfuscated_recall"] == 1.0 for m, v in obf["per_method"].items() if m != "leet")
    n_leet = obf["per_method"]["leet"]["n"]
    assert obf["obfuscated_recall"] == pytest.approx(1 - n_leet / obf["n"])
    assert obf["gap"] == pytest.approx(n_leet / obf["n"])
    assert plain and obfuscated and plain.isdisjoint(obfuscated)


def test_custom_cases_and_failed_examples() -> None:
    cases = [
        SuiteCase("mine", "you idiot", {"toxicity": 1, "violence": 0, "illegal_advice": None}, "test", "mine/test/00",
                  None, None),
        SuiteCase("mine", "lovely day", {"toxicity": 0, "violence": 0, "illegal_advice": None}, "test",
                  "mine/test/01", None, None),
    ]
    result = evaluate_suite(FakeClassifier(lambda t, h: 0.2), cases=cases, progress=False)
    (entry,) = result["functionalities"]
    assert (entry["n"], entry["passed"], entry["pass_rate"]) == (2, 1, 0.5)
    assert entry["failed_examples"][0]["text"] == "you idiot"
    assert entry["failed_examples"][0]["expected"] == "toxicity=1, violence=0"
    assert result["obfuscation"]["n"] == 0 and result["obfuscation"]["plain_recall"] is None


# -- the standalone entry point on a real (tiny, untrained) bundle ---------------------------------------
@pytest.fixture(scope="module")
def tiny_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    out = tmp_path_factory.mktemp("suite_bundle") / "bundle"
    return export_bundle(tiny_model_dir, out, variants=("fp32",), optimize=False,
                         validation=["hello there", "I will hurt you"], progress=False)


def test_run_suite_cli_prints_and_saves_the_table(tiny_bundle: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "suite.json"
    assert run_suite_cli(tiny_bundle, out=out) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["overall"]["n"] == len(load_suite("test"))
    assert f"{saved['overall']['passed']:,} / {saved['overall']['n']:,} cases passed" in printed
    for f in functionalities():
        assert f"| {f['name']} |" in printed
    md = tmp_path / "suite.md"
    assert run_suite_cli(tiny_bundle, out=md) == 0 and md.read_text() == capsys.readouterr().out


def test_module_entry_point_errors_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harmscan.eval.suite", "--bundle", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("harmscan: error: bundle") and "Traceback" not in proc.stderr


# -- definitions a user writes ---------------------------------------------------------------------------
def _write_suite(folder: Path, body: str) -> Path:
    folder.mkdir()
    (folder / "slots.yaml").write_text("slots:\n  name: [Ann, Bob]\n")
    (folder / "mine.yaml").write_text(body)
    return folder


GOOD = """
functionalities:
  - name: mine
    family: insult
    head: toxicity
    description: test
    labels: {toxicity: 1, violence: 0}
    train: ["you fool, {name}"]
    test: ["{Name} is a fool", {text: "{name} is lovely", labels: {toxicity: 0}}]
"""


def test_a_custom_taxonomy_adds_suite_cases_for_its_own_head(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Suite heads come from the taxonomy: a head added by $HARMSCAN_LABELS may be labelled, an unknown one not.
    body = GOOD.replace("labels: {toxicity: 1, violence: 0}", "labels: {toxicity: 0, self_harm: 1}")
    folder = _write_suite(tmp_path / "s", body)
    with pytest.raises(DataError, match="unknown head 'self_harm'"):
        load_definitions(folder)
    cfg = tmp_path / "labels.yaml"
    cfg.write_text("labels:\n" + "".join(f"  - {{name: {h}, definition: x}}\n" for h in [*HEADS, "self_harm"]))
    monkeypatch.setenv("HARMSCAN_LABELS", str(cfg))
    cases = generate(*load_definitions(folder), "test")
    assert {c.text: c.labels["self_harm"] for c in cases}["Ann is a fool"] == 1
    assert set(cases[0].labels) == {*HEADS, "self_harm"}
    # The packaged suite still loads under the custom taxonomy; its cases leave the new head unknown.
    assert all(c.labels["self_harm"] is None for c in generate(*load_definitions(), "test"))


def test_a_user_suite_folder_loads(tmp_path: Path) -> None:
    funcs, shared = load_definitions(_write_suite(tmp_path / "s", GOOD))
    cases = generate(funcs, shared, "test")
    assert sorted(c.text for c in cases) == ["Ann is a fool", "Ann is lovely", "Bob is a fool", "Bob is lovely"]
    assert {c.text: c.labels["toxicity"] for c in cases}["Bob is lovely"] == 0
    assert all(c.labels["illegal_advice"] is None for c in cases)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{Name} is a fool", "{nobody} is a fool"), r"mine/test/00 uses slot \{nobody\}"),
        (("toxicity: 1, violence: 0", "toxicity: 2"), "must be 1, 0 or null"),
        (("head: toxicity", "head: spam"), "unknown head 'spam'"),
        (("train: [\"you fool, {name}\"]", "train: []"), "'train' must be a non-empty list"),
        (("    family: insult\n", ""), "lacks family"),
        (("labels:", "labels: [oops\n    x:"), "not valid YAML"),
    ],
)
def test_mistakes_in_a_suite_file_name_the_file_and_the_fix(tmp_path: Path, change: tuple[str, str],
                                                            message: str) -> None:
    folder = _write_suite(tmp_path / "s", GOOD.replace(*change))
    with pytest.raises(DataError, match=message) as err:
        load_definitions(folder)
    assert "suite/mine.yaml" in str(err.value) and "\n" not in str(err.value)
