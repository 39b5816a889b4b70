"""calibrate -> thresholds -> eval on a tiny exported bundle, as `harmscan quickstart` runs them, and the
report a person reads: every section present, every image decodes, one threshold set everywhere."""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harmscan.classifiers.calibration import apply_calibration, sigmoid
from harmscan.errors import HarmscanError, InputError
from harmscan.eval.render_report import SECTIONS

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
SUBJECTS = ["the cat", "my neighbour", "the committee", "this recipe", "our team", "the weather", "that film",
            "the council", "a stranger", "the river", "my cousin", "the teacher"]
VERBS = ["likes", "hates", "will visit", "talks about", "ignores", "describes", "criticises", "helps", "watches",
         "sells", "paints", "remembers"]
OBJECTS = ["the garden", "old cars", "the city", "fresh bread", "the election", "music", "the market", "poetry",
           "a bicycle", "the harbour", "winter", "the library"]


@pytest.fixture(scope="module")
def workspace(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny fp32 bundle and a built-format dataset whose labels depend on the model's own logits.

    The random 2-layer model is not a harm detector, so labels are drawn from its standardised logits
    (P(y=1) = sigmoid(2.5 z - 1.5)): scores then carry signal, and the raw sigmoid is miscalibrated.
    """
    datasets = pytest.importorskip("datasets")
    from harmscan.classifiers import HarmClassifier
    from harmscan.labels import default_taxonomy
    from harmscan.training.export import export_bundle

    root = tmp_path_factory.mktemp("eval_ws")
    bundle = export_bundle(tiny_model_dir, root / "bundle", variants=("fp32",), progress=False)
    rng = np.random.default_rng(0)
    texts = sorted({f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} on day {i}"
                    for i in range(1800)})
    clf = HarmClassifier.load(bundle, threads=1)
    z = clf.predict_logits(texts).astype(np.float64)
    zs = (z - z.mean(axis=0)) / z.std(axis=0)
    labels = (rng.random(z.shape) < sigmoid(2.5 * zs - 1.5)).astype(np.float32)
    mask = (rng.random(z.shape) > 0.1).astype(np.float32)
    sources = rng.choice(["forum", "tweets", "requests"], len(texts))
    order = rng.permutation(len(texts))
    parts = {"train": order[:300], "validation": order[300:1050], "test": order[1050:]}
    names = default_taxonomy().names
    features = datasets.Features({
        "text": datasets.Value("string"),
        "labels": datasets.Sequence(datasets.Value("float32"), length=len(names)),
        "label_mask": datasets.Sequence(datasets.Value("float32"), length=len(names)),
        "source": datasets.Value("string"),
        "weight": datasets.Value("float32"),
    })
    dd = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({
            "text": [texts[i] for i in idx], "labels": (labels[idx] * mask[idx]).tolist(),
            "label_mask": mask[idx].tolist(), "source": sources[idx].tolist(), "weight": [1.0] * len(idx),
        }, features=features)
        for split, idx in parts.items()
    })
    data = root / "data"
    dd.save_to_disk(str(data))
    (data / "harmscan_data.json").write_text(json.dumps({"labels": default_taxonomy().to_list()}))
    return {"root": root, "bundle": bundle, "data": data}


@pytest.fixture(scope="module")
def calibrated(workspace: dict[str, Path]) -> dict:
    from harmscan.eval import calibrate_bundle

    return calibrate_bundle(workspace["bundle"], workspace["data"], threads=1, progress=False)


@pytest.fixture(scope="module")
def tuned(workspace: dict[str, Path], calibrated: dict) -> dict:
    from harmscan.eval import tune_thresholds

    return tune_thresholds(workspace["bundle"], workspace["data"], "precision>=0.8,violence=f1", n_boot=300,
                           threads=1, progress=False)


def test_score_dataset_returns_aligned_arrays_and_reuses_cached_logits(workspace, monkeypatch):
    from harmscan.classifiers import HarmClassifier
    from harmscan.eval import score_dataset, scores

    clf = HarmClassifier.load(workspace["bundle"], threads=1)
    probs, labels, mask, sources, logits = score_dataset(clf, workspace["data"], "validation", progress=False)
    assert probs.shape == labels.shape == mask.shape == logits.shape == (750, 3) and len(sources) == 750
    np.testing.assert_allclose(probs, apply_calibration(logits, clf.bundle.calibration, clf.labels), rtol=1e-6)
    assert list((workspace["data"] / scores.CACHE_DIRNAME).glob("validation-*.npy"))

    def no_scoring(texts):  # a second call must not rescore: eval, calibrate and thresholds share the logits
        raise AssertionError("rescored")

    monkeypatch.setattr(scores, "_MEMO", {})  # force the on-disk cache
    monkeypatch.setattr(clf, "predict_logits", no_scoring)
    again = score_dataset(clf, workspace["data"], "validation", progress=False)
    np.testing.assert_array_equal(again.logits, logits)


def test_calibration_lowers_test_ece_for_every_label_and_every_front_applies_it(workspace, calibrated):
    from harmscan.classifiers import Bundle, HarmClassifier

    for name, f in calibrated["test"].items():
        assert f["ece_after"] < f["ece_before"], (name, f)
        assert f["ece_after"] <= 0.08, (name, f)  # 650 test rows: some binning noise
    manifest = Bundle.load(workspace["bundle"]).manifest
    assert manifest["calibration"]["method"] == "temperature"
    assert set(manifest["calibration"]["per_label"]) == {"toxicity", "violence", "illegal_advice"}
    clf = HarmClassifier.load(workspace["bundle"], threads=1)
    texts = ["the cat likes the garden on day 3", "a stranger hates poetry on day 9"]
    logits = clf.predict_logits(texts)
    np.testing.assert_allclose(clf.predict_proba(texts), apply_calibration(logits, manifest["calibration"],
                                                                           clf.labels), rtol=1e-5)
    assert not np.allclose(clf.predict_proba(texts), sigmoid(logits), atol=1e-3)


def test_thresholds_go_into_the_bundle_and_scan_uses_them(workspace, tuned):
    from harmscan.classifiers import Bundle, HarmClassifier

    policy = Bundle.load(workspace["bundle"]).policy
    assert policy.thresholds == pytest.approx(tuned["thresholds"])
    assert policy.meta["objective"] == {"toxicity": "precision>=0.8", "violence": "f1",
                                        "illegal_advice": "precision>=0.8"}
    assert policy.meta["chosen_on"] == "validation"
    for name in ("toxicity", "illegal_advice"):
        assert tuned["validation"][name]["precision"] >= 0.8
        lo, hi = tuned["test"][name]["precision"]["ci95"]
        assert lo <= tuned["test"][name]["precision"]["value"] <= hi
    clf = HarmClassifier.load(workspace["bundle"], threads=1)
    texts = [f"{s} {v} {o} on day {i}" for i, (s, v, o) in enumerate(zip(SUBJECTS, VERBS, OBJECTS, strict=True))]
    probs = clf.predict_proba(texts)
    for result, row in zip(clf.scan(texts), probs, strict=True):
        expected = [n for n, p in zip(clf.labels, row, strict=True) if p >= tuned["thresholds"][n]]
        assert result.flagged == expected


def test_policy_file_instead_of_the_bundle(workspace, tuned, tmp_path):
    from harmscan.classifiers import Bundle, HarmClassifier, Policy
    from harmscan.eval import tune_thresholds

    before = Bundle.load(workspace["bundle"]).manifest["thresholds"]
    out = tmp_path / "strict.json"
    result = tune_thresholds(workspace["bundle"], workspace["data"], "fpr<=0.01", prevalence="0.05",
                             policy_out=out, n_boot=100, threads=1, progress=False)
    assert Bundle.load(workspace["bundle"]).manifest["thresholds"] == before  # bundle untouched
    policy = Policy.from_file(out, ["toxicity", "violence", "illegal_advice"])
    assert policy.thresholds == pytest.approx(result["thresholds"])
    assert policy.meta["prevalence"] == dict.fromkeys(["toxicity", "violence", "illegal_advice"], 0.05)
    clf = HarmClassifier.load(workspace["bundle"], threads=1, policy=out)
    assert clf.policy.thresholds == pytest.approx(result["thresholds"])


@pytest.fixture(scope="module")
def report(workspace, tuned, tmp_path_factory) -> dict:
    from harmscan.eval import evaluate_bundle

    out = tmp_path_factory.mktemp("report")
    result = evaluate_bundle(
        workspace["bundle"], workspace["data"], out_dir=out, suite=True,
        benchmark=["xstest", "openai_moderation"],
        benchmark_path=[FIXTURES / "xstest_prompts.csv", FIXTURES / "samples-1680.jsonl.gz"],
        data_dir=workspace["root"],  # no toxigen there: the audit section says why it did not run
        n_boot=200, threads=1, progress=False,
    )
    return {"result": result, "out": out}


def test_report_files_and_headline_figures(report, tuned):
    paths = report["result"]["paths"]
    for kind in ("json", "markdown", "html"):
        assert Path(paths[kind]).is_file()
    data = json.loads(Path(paths["json"]).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["policy"]["thresholds"] == pytest.approx(tuned["thresholds"])
    assert data["bundle"]["calibration_method"] == "temperature"
    for name in ("toxicity", "violence", "illegal_advice"):
        fig = data["summary"][name]
        lo, hi = fig["roc_auc"]["ci95"]
        assert 0.7 < fig["roc_auc"]["value"] and lo <= fig["roc_auc"]["value"] <= hi  # labels follow the logits
        assert set(data["per_source"][name]) == {"(all)", "forum", "tweets", "requests"}
        # the per-source rows partition the label's known rows
        assert sum(data["per_source"][name][s]["n"] for s in ("forum", "tweets", "requests")) == fig["n"]
    assert [b["name"] for b in data["benchmarks"]] == ["xstest", "openai_moderation"]
    assert data["benchmarks"][0]["overall"]["fpr_safe"]["n"] == 4
    assert "toxigen_demonstrations" in data["skipped"]["identity-audit"]
    assert data["suite"]["overall"]["n"] > 0
    assert report["result"]["headline"]["toxicity"]["roc_auc"] == data["summary"]["toxicity"]["roc_auc"]["value"]


def test_html_is_self_contained_with_every_section_and_decodable_images(report):
    html = Path(report["result"]["paths"]["html"]).read_text()
    md = Path(report["result"]["paths"]["markdown"]).read_text()
    for sid, heading in SECTIONS:
        assert f'<section id="{sid}"><h2>{heading}</h2>' in html, heading
        assert f"## {heading}" in md, heading
    assert not re.search(r"<(img|script|link)[^>]+(src|href)=\"(?!data:)", html)  # nothing fetched from outside
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4 * 3  # PR+ROC, reliability, histogram, threshold curves per label
    image_mod = pytest.importorskip("matplotlib.image")
    for b64 in images:
        pixels = image_mod.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.01  # not blank
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium:  # a real render when a browser is installed
        shot = report["out"] / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1200,4000", Path(report["result"]["paths"]["html"]).as_uri()],
                       check=True, capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000


def test_markdown_and_html_say_why_a_section_did_not_run(tmp_path):
    from harmscan.eval.render_report import render_html, render_markdown, write_report

    minimal = {"title": "t", "bundle": {}, "policy": {"thresholds": {"toxicity": 0.5}},
               "skipped": {sid: "no dataset given (--data)" for sid, _ in SECTIONS}, "summary": {"x": float("nan")}}
    assert render_markdown(minimal).count("Not run: no dataset given") == len(SECTIONS)
    assert render_html(minimal, {}).count("Not run: no dataset given") == len(SECTIONS)
    paths = write_report(minimal, {}, tmp_path)
    assert json.loads(Path(paths["json"]).read_text())["summary"]["x"] is None  # NaN -> null: strict JSON


def test_identity_audit_section_from_the_data_registry(workspace, tuned, data_dir, tmp_path):
    from harmscan.eval import evaluate_bundle

    result = evaluate_bundle(workspace["bundle"], None, out_dir=tmp_path, data_dir=data_dir, n_boot=50, threads=1,
                             progress=False)
    data = json.loads(Path(result["paths"]["json"]).read_text())
    audit = data["identity_audit"]
    assert len(audit["groups"]) >= 10 and audit["n_neutral"] > 200
    flagged = sum(e["held_out"]["fpr_any"]["value"] * e["held_out"]["fpr_any"]["n"] for e in audit["groups"].values())
    assert flagged == pytest.approx(audit["overall_held_out"]["fpr_any"]["value"] * audit["n_neutral"])
    assert "Identity-term audit" in Path(result["paths"]["html"]).read_text()


# -- CLI -------------------------------------------------------------------------------------------------
def run_cli(*argv: str) -> int:
    """The eval area's commands, dispatched and error-handled as harmscan.cli.main does."""
    from harmscan.eval import cli

    parser = argparse.ArgumentParser(prog="harmscan")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_cli_thresholds_and_eval_print_where_things_went(workspace, tuned, tmp_path, capsys):
    assert run_cli("thresholds", "--bundle", str(workspace["bundle"]), "--data", str(workspace["data"]),
                   "--objective", "recall>=0.5", "--policy-out", str(tmp_path / "p.json"), "--bootstrap", "50",
                   "--threads", "1", "--no-progress") == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "p.json") in out and "recall>=0.5" in out
    assert run_cli("eval", "--bundle", str(workspace["bundle"]), "--benchmark", "hatecheck", "--path",
                   str(FIXTURES / "test_suite_cases.csv"), "--policy", str(tmp_path / "p.json"), "-o",
                   str(tmp_path / "r"), "--threads", "1", "--no-progress") == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "r" / "report.html") in out
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["policy"]["source"] == str(tmp_path / "p.json")
    assert data["benchmarks"][0]["decision"].startswith("flag if toxicity")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["thresholds", "--objective", "precision>0.9"], "is not one of"),
        (["thresholds", "--prevalence", "2"], "strictly between 0 and 1"),
        (["eval", "--benchmark", "xstest"], "one --path per --benchmark"),
        (["eval"], "nothing to evaluate"),
        (["eval", "--benchmark", "toxichat", "--path", "x.csv"], "unknown benchmark 'toxichat'"),
        (["calibrate", "--data", "/nonexistent/data"], "/nonexistent/data"),
    ],
)
def test_cli_user_errors_are_one_line_harmscan_errors(workspace, argv, needle):
    full = [argv[0], "--bundle", str(workspace["bundle"]), "--threads", "1", "--no-progress", *argv[1:]]
    if argv[0] == "thresholds":
        full += ["--data", str(workspace["data"])]
    with pytest.raises(HarmscanError) as err:
        run_cli(*full)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_thresholds_threshold_override_parsing():
    from harmscan.eval.evaluate import parse_threshold_overrides

    assert parse_threshold_overrides("toxicity=0.7, violence=0.4") == {"toxicity": 0.7, "violence": 0.4}
    with pytest.raises(InputError, match="label=probability"):
        parse_threshold_overrides("toxicity:0.7")



def test_identity_audit_counts_false_positives_per_group_and_sets_training_sentences_apart():
    from harmscan.eval.identity_audit import audit_from_probs
    from harmscan.text import dedup_key

    examples = [
        ("muslims pray five times a day", "muslim", "neutral"),
        ("many muslims live in indonesia", "muslim", "neutral"),
        ("jewish holidays follow a lunar calendar", "jewish", "neutral"),
        ("jewish families gather at passover", "jewish", "neutral"),
        ("[fixture: a hateful sentence]", "jewish", "hate"),
    ]
    probs = np.array([[0.9, 0.1, 0.1], [0.2, 0.1, 0.1], [0.1, 0.7, 0.1], [0.1, 0.1, 0.1], [0.8, 0.1, 0.1]])
    thresholds = {"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.5}
    audit = audit_from_probs(examples, probs, ["toxicity", "violence", "illegal_advice"], thresholds,
                             train_keys={dedup_key("muslims pray five times a day")})
    muslim, jewish = audit["groups"]["muslim"], audit["groups"]["jewish"]
    assert muslim["all"]["fpr_any"]["value"] == 0.5 and muslim["all"]["fpr_toxicity"]["value"] == 0.5
    assert muslim["held_out"]["fpr_any"]["n"] == 1 and muslim["held_out"]["fpr_any"]["value"] == 0.0
    assert jewish["all"]["fpr_any"]["value"] == 0.5  # flagged for violence: still a false positive
    assert jewish["all"]["fpr_toxicity"]["value"] == 0.0
    assert jewish["all"]["toxicity_recall_on_hate"]["value"] == 1.0
    assert audit["n_neutral"] == 4 and audit["n_neutral_in_train"] == 1
    assert audit["overall_all"]["fpr_any"]["value"] == 0.5
