"""Each public-benchmark loader reads its published format and maps rows to harmscan's heads as documented.

The fixtures in tests/fixtures/benchmarks are invented rows in the published formats; the real data sets
are held out and never read here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from harmscan.errors import InputError
from harmscan.eval.public_benchmarks import UNKNOWN, evaluate_benchmark, load_benchmark, wilson

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
LABELS = ["toxicity", "violence", "illegal_advice"]
U = UNKNOWN


def test_openai_moderation_maps_keys_and_keeps_missing_keys_unknown():
    b = load_benchmark("openai_moderation", FIXTURES / "samples-1680.jsonl.gz", LABELS)
    assert len(b) == 8 and b.texts[0] == "Have a nice day, everyone."
    expected = [
        [0, 0, U],  # all keys 0
        [1, 0, U],  # H
        [0, 1, U],  # V2 (graphic violence) -> violence
        [0, 0, U],  # S only: no head for sexual content
        [U, U, U],  # only S present: every mapped key missing
        [1, U, U],  # HR=1 is enough for toxicity; V2 missing keeps violence unknown
        [1, 1, U],  # H, H2 and V
        [U, 0, U],  # H2 missing: toxicity not fully known
    ]
    np.testing.assert_array_equal(b.labels, np.array(expected, dtype=np.int8))
    np.testing.assert_array_equal(b.harmful, [0, 1, 1, 0, U, 1, 1, U])
    assert b.groups["positive only for S/SH/S3 (no head)"][3] == "yes"
    assert b.groups["positive only for S/SH/S3 (no head)"][1] == "no"


def test_openai_moderation_accepts_uncompressed_jsonl_and_rejects_bad_values(tmp_path: Path):
    plain = tmp_path / "samples.jsonl"
    plain.write_bytes(gzip.decompress((FIXTURES / "samples-1680.jsonl.gz").read_bytes()))
    assert len(load_benchmark("openai", plain, LABELS)) == 8
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "H": 2}\n')
    with pytest.raises(InputError, match=r"bad.jsonl line 1 key H: expected 0 or 1"):
        load_benchmark("openai_moderation", bad, LABELS)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "x"}\n{not json\n')
    with pytest.raises(InputError, match=r"broken.jsonl line 2 is not JSON"):
        load_benchmark("openai_moderation", broken, LABELS)


def test_xstest_safe_and_unsafe_with_types():
    b = load_benchmark("xstest", FIXTURES / "xstest_prompts.csv", LABELS)
    np.testing.assert_array_equal(b.harmful, [0, 0, 1, 0, 1, 0, 1])
    assert (b.labels == U).all()  # XSTest says safe/unsafe, not which head
    assert b.groups["type"][:3] == ["homonyms", "homonyms", "contrast_homonyms"]
    assert b.texts[3] == "What's the best way to gut a fish, quickly?"  # quoted comma survives


def test_hatecheck_maps_label_gold_to_toxicity_and_decides_on_toxicity_only():
    b = load_benchmark("hatecheck", FIXTURES / "test_suite_cases.csv", LABELS)
    np.testing.assert_array_equal(b.labels[:, 0], [1, 1, 0, 0, 0])
    assert (b.labels[:, 1:] == U).all()
    assert b.decision_heads == ("toxicity",)
    assert b.groups["functionality"][0] == "derog_neg_emote_h"
    assert b.groups["target_ident"][4] == "(none)"
    assert b.texts[4] == 'Saying "I hate [IDENTITY]" shows how little you know.'


def test_harmbench_semantic_categories_to_heads_and_context_prepended():
    b = load_benchmark("harmbench", FIXTURES / "harmbench_behaviors_text_all.csv", LABELS)
    expected = [
        [U, U, 1],  # chemical_biological -> illegal_advice
        [1, U, U],  # harassment_bullying -> toxicity
        [U, U, 1],  # illegal
        [U, U, 1],  # cybercrime_intrusion
        [U, U, U],  # misinformation: out of scope
        [U, U, U],  # copyright: out of scope
        [U, U, U],  # harmful: any head
        [U, U, 1],  # contextual cybercrime
    ]
    np.testing.assert_array_equal(b.labels, np.array(expected, dtype=np.int8))
    np.testing.assert_array_equal(b.harmful, [1, 1, 1, 1, U, U, 1, 1])
    assert b.texts[7].startswith("LOG: user=admin, uid=0\nkernel 5.4\n\nGiven this server log")
    assert b.groups["FunctionalCategory"][7] == "contextual"


def test_simplesafetytests_harm_areas_to_heads():
    b = load_benchmark("sst", FIXTURES / "sst_test_cases.csv", LABELS)
    expected = [[U, U, U], [U, 1, U], [U, U, 1], [U, U, 1], [U, U, 1]]
    np.testing.assert_array_equal(b.labels, np.array(expected, dtype=np.int8))
    np.testing.assert_array_equal(b.harmful, [U, 1, 1, 1, 1])  # self-harm: no harmscan head


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("xstest", "prompt,label\nhi,safe\n", "lacks column(s) type"),
        ("xstest", "prompt,type,label\nhi,homonyms,maybe\n", "label must be safe or unsafe"),
        ("hatecheck", "functionality,test_case,label_gold\nf,t,unsure\n", "label_gold must be hateful"),
        ("harmbench", "Behavior,SemanticCategory\nx,illegal\n", "lacks column(s) FunctionalCategory"),
        ("simplesafetytests", "prompts_final,harm_area\nx,Gardening\n", "unknown harm_area 'Gardening'"),
        ("xstest", "prompt,type,label\n", "has no rows"),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(tmp_path: Path, name: str, content: str, needle: str):
    path = tmp_path / "bench.csv"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_benchmark(name, path, LABELS)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_unknown_benchmark_and_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match="unknown benchmark 'toxichat'.*xstest"):
        load_benchmark("toxichat", tmp_path / "x.csv", LABELS)
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark("xstest", tmp_path / "missing.csv", LABELS)


def test_xstest_figures_use_any_head_under_the_thresholds():
    b = load_benchmark("xstest", FIXTURES / "xstest_prompts.csv", LABELS)
    # harmful = [0, 0, 1, 0, 1, 0, 1]; flag rows 0 (safe, via violence) and 2, 4 (unsafe) but not 6
    probs = np.full((7, 3), 0.1)
    probs[0, 1] = 0.8
    probs[2, 0] = 0.9
    probs[4, 2] = 0.55
    probs[6, 2] = 0.45
    out = evaluate_benchmark(b, probs, LABELS, {"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.5}, n_boot=50)
    assert out["overall"]["fpr_safe"]["value"] == pytest.approx(1 / 4)
    assert out["overall"]["recall_unsafe"]["value"] == pytest.approx(2 / 3)
    assert out["groups"]["type"]["homonyms"]["fpr"]["value"] == pytest.approx(0.5)
    # a stricter illegal_advice threshold drops row 4 from the unsafe hits
    strict = evaluate_benchmark(b, probs, LABELS, {"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.6}, n_boot=50)
    assert strict["overall"]["recall_unsafe"]["value"] == pytest.approx(1 / 3)


def test_hatecheck_accuracy_per_functionality_ignores_other_heads():
    b = load_benchmark("hatecheck", FIXTURES / "test_suite_cases.csv", LABELS)
    probs = np.full((5, 3), 0.1)
    probs[0, 0] = 0.9  # hateful, caught
    probs[2, 1] = 0.9  # non-hateful flagged for violence only: still correct for HateCheck
    probs[4, 0] = 0.7  # counter-speech quoting hate, flagged: wrong
    out = evaluate_benchmark(b, probs, LABELS, dict.fromkeys(LABELS, 0.5), n_boot=50)
    funcs = out["groups"]["functionality"]
    assert funcs["derog_neg_emote_h"]["accuracy"]["value"] == pytest.approx(0.5)
    assert funcs["ident_neutral_nh"]["accuracy"]["value"] == pytest.approx(1.0)
    assert funcs["counter_quote_nh"]["accuracy"]["value"] == pytest.approx(0.0)
    assert out["overall"]["accuracy"]["value"] == pytest.approx(3 / 5)
    assert out["per_label"]["toxicity"]["n"] == 5 and "violence" not in out["per_label"]


def test_harmbench_headline_recall_excludes_out_of_scope_categories():
    b = load_benchmark("harmbench", FIXTURES / "harmbench_behaviors_text_all.csv", LABELS)
    probs = np.full((8, 3), 0.1)
    probs[[0, 2, 3], 2] = 0.9  # three in-scope behaviours caught
    probs[4, 0] = 0.9  # a misinformation row flagged: no effect on in-scope recall
    out = evaluate_benchmark(b, probs, LABELS, dict.fromkeys(LABELS, 0.5), n_boot=50)
    assert out["overall"]["in_scope"] == 6
    assert out["overall"]["recall_unsafe"]["value"] == pytest.approx(3 / 6)
    assert out["groups"]["SemanticCategory"]["cybercrime_intrusion"]["recall"]["value"] == pytest.approx(0.5)


def test_wilson_interval_brackets_the_rate_and_handles_extremes():
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = wilson(10, 20)
    assert lo < 0.5 < hi
    assert wilson(0, 0) == [None, None]
