"""HarmClassifier: torch-free inference, parity with PyTorch, batching, long texts and spans, devices."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from classifier_helpers import BENIGN, NOISY, REPO, tiny_bundle, violence_bundle

from harmscan.classifiers import HarmClassifier, Policy, ScanResult
from harmscan.classifiers.runtime import DeviceError
from harmscan.classifiers.textmap import normalize_with_offsets
from harmscan.errors import BundleError, InputError
from harmscan.text import normalize_text


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return tiny_bundle(tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def clf(bundle_dir: Path) -> HarmClassifier:
    return HarmClassifier.load(bundle_dir, variant="fp32", threads=1)


def test_loading_and_scanning_never_import_torch_or_transformers(bundle_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "hello"}\n{"id": 2, "text": "I will hurt you"}\n')
    code = f"""
import json, sys
from harmscan import HarmClassifier
from harmscan.classifiers.scan import scan_file
import harmscan.cli
harmscan.cli.build_parser()  # what `harmscan scan` imports: every area's CLI module
clf = HarmClassifier.load({str(bundle_dir)!r}, threads=1)
clf.scan(["hello", "x " * 600], return_spans=True)
scan_file({str(tmp_path / "in.jsonl")!r}, {str(tmp_path / "out.jsonl")!r}, clf, progress=False)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum"))))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_scores_match_pytorch_with_the_hf_tokenizer(clf: HarmClassifier, tiny_model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    texts = ["Hello there!", "You are an idiot", "ｋｉｌｌ  @bob https://x.co/y", "", "a " * 50]
    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        enc = tok([normalize_text(t) for t in texts], padding=True, return_tensors="pt")
        expected = model(**enc).logits.numpy()
    np.testing.assert_allclose(clf.predict_logits(texts), expected, atol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(texts), 1 / (1 + np.exp(-expected)), atol=1e-5)


def test_caller_order_is_restored_across_length_sorted_batches(bundle_dir: Path) -> None:
    rng = random.Random(0)
    texts = [" ".join(rng.choice(BENIGN).split()[: rng.randint(1, 9)]) * rng.randint(1, 4) for _ in range(37)]
    small = HarmClassifier.load(bundle_dir, variant="fp32", threads=1, batch_size=4)
    one_by_one = np.vstack([small.predict_logits([t]) for t in texts])
    np.testing.assert_allclose(small.predict_logits(texts), one_by_one, atol=1e-5)
    big = HarmClassifier.load(bundle_dir, variant="fp32", threads=1, batch_size=64, max_batch_tokens=None)
    np.testing.assert_allclose(big.predict_logits(texts), one_by_one, atol=1e-5)
    token_capped = HarmClassifier.load(bundle_dir, variant="fp32", threads=1, max_batch_tokens=30)
    np.testing.assert_allclose(token_capped.predict_logits(texts), one_by_one, atol=1e-5)


def test_scan_results_policy_and_threshold_overrides(clf: HarmClassifier, tmp_path: Path) -> None:
    results = clf.scan(["hello", "you idiot"])
    assert [type(r) for r in results] == [ScanResult, ScanResult]
    probs = clf.predict_proba(["hello", "you idiot"])
    for r, p in zip(results, probs, strict=True):
        assert r.scores == pytest.approx(dict(zip(clf.labels, p.tolist(), strict=True)))
        assert r.flagged == [n for n, q in zip(clf.labels, p, strict=True) if q >= 0.5]
        assert r.decision == ("flag" if r.flagged else "allow")
        assert r.windows == 1 and r.span is None
        assert set(r.to_dict()) == {"scores", "flagged", "decision", "span", "windows", "language",
                                      "language_confidence"}
    everything = clf.scan(["hello"], thresholds={"toxicity": 0.0, "violence": 0.0, "illegal_advice": 0.0})[0]
    assert everything.flagged == clf.labels and everything.decision == "flag"
    nothing = clf.scan(["hello"], thresholds={"toxicity": 1.0, "violence": 1.0, "illegal_advice": 1.0})[0]
    assert nothing.flagged == [] and nothing.decision == "allow"
    with pytest.raises(InputError, match="unknown label 'hate'"):
        clf.scan(["hello"], thresholds={"hate": 0.5})
    policy_file = tmp_path / "policy.json"
    Policy({"toxicity": 0.0, "violence": 1.0, "illegal_advice": 1.0}).save(policy_file)
    strict = HarmClassifier.load(clf.bundle, variant="fp32", threads=1, policy=policy_file)
    assert strict.scan(["hello"])[0].flagged == ["toxicity"]


def test_bundle_calibration_is_applied(bundle_dir: Path, tmp_path: Path) -> None:
    from harmscan.classifiers.bundle import Bundle

    calibrated = tmp_path / "calibrated"
    shutil.copytree(bundle_dir, calibrated)
    Bundle.load(calibrated).update(
        calibration={"method": "temperature", "per_label": {"violence": {"temperature": 0.05, "bias": 1.0}}}
    )
    c = HarmClassifier.load(calibrated, variant="fp32", threads=1)
    logits = c.predict_logits(["hello", "you idiot"])
    probs = c.predict_proba(["hello", "you idiot"])
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-(logits[:, 1] / 0.05 + 1.0))), rtol=1e-5)
    np.testing.assert_allclose(probs[:, 0], 1 / (1 + np.exp(-logits[:, 0])), rtol=1e-5)


def test_inputs_edge_cases(clf: HarmClassifier) -> None:
    assert clf.predict_proba([]).shape == (0, 3)
    assert clf.scan([]) == []
    empty = clf.scan([""])[0]
    assert all(0.0 < s < 1.0 for s in empty.scores.values())
    assert clf.predict_proba("one text").shape == (1, 3)  # a bare string is one text, not 8 characters
    with pytest.raises(InputError, match=r"text #1 is a int, not a str"):
        clf.scan(["fine", 42])  # type: ignore[list-item]
    with pytest.raises(InputError, match="text #0 is a NoneType"):
        clf.predict_proba([None])  # type: ignore[list-item]


def test_long_text_is_windowed_not_truncated(clf: HarmClassifier) -> None:
    text = " ".join(f"word{i}" for i in range(600))  # ~1,800 tokens with a 128-token window
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(clf.bundle.tokenizer_path))
    tok.no_truncation()
    n_tokens = len(tok.encode(normalize_text(text), add_special_tokens=False).ids)
    body, overlap = 128 - 2, 32
    expected = 1 + -(-(n_tokens - body) // (body - overlap))
    result = clf.scan([text])[0]
    assert result.windows == expected > 10
    assert result.span is not None and result.span["label"] in clf.labels
    # the score is the max over windows: at least the score of the opening window alone
    first_window = clf.predict_logits([text[:200]])[0]
    assert np.all(clf.predict_logits([text])[0] >= first_window - 1e-4)


def test_windows_cover_every_token_whatever_the_tokenizers_version(clf: HarmClassifier) -> None:
    # tokenizers 0.23 returns a single overflow window where 0.22 returned all: harmscan cuts the windows
    # itself, so a long text is covered to its last token with either.
    from tokenizers import Tokenizer

    wt = clf._tokenizer
    text = " ".join(f"token{i} is here." for i in range(400))
    whole = Tokenizer.from_file(str(clf.bundle.tokenizer_path))
    whole.no_truncation()
    tokens = whole.encode(text, add_special_tokens=False).ids
    win = wt.encode([text, "short one"], with_spans=True)
    counts = win.counts.tolist()
    assert counts[1] == 1 and counts[0] == len(wt.window_bounds(len(tokens))) > 5
    bodies = [ids[len(wt.prefix) : len(ids) - len(wt.suffix)] for ids in win.ids[: counts[0]]]
    assert all(len(ids) <= wt.max_length for ids in win.ids)
    assert bodies[0] == tokens[: wt.body] and bodies[-1] == tokens[-len(bodies[-1]) :]
    for prev, nxt in zip(bodies[:-1], bodies[1:], strict=True):
        assert prev[-wt.overlap :] == nxt[: wt.overlap]  # each window overlaps the previous one
    stitched = bodies[0] + [t for b in bodies[1:] for t in b[wt.overlap :]]
    assert stitched == tokens
    assert win.char_spans[0] == (0, win.char_spans[0][1]) and win.char_spans[counts[0] - 1][1] == len(text)
    # the same windows as the tokenizer's own overflow, where the installed version returns all of it
    ref = Tokenizer.from_file(str(clf.bundle.tokenizer_path))
    ref.no_padding()
    ref.enable_truncation(max_length=wt.max_length, stride=wt.overlap)
    enc = ref.encode(text)
    if len(enc.overflowing) + 1 == counts[0]:
        assert [enc.ids, *(o.ids for o in enc.overflowing)] == win.ids[: counts[0]]


def test_violent_sentence_near_the_end_of_5000_words_is_flagged_and_located(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    vclf = HarmClassifier.load(violence_bundle(tmp_path_factory), threads=1)
    rng = random.Random(1)
    sentence = "I will stab him with a knife tonight and watch him bleed."
    parts = [sentence]
    while len("  ".join(parts).split()) < 5000:
        parts.insert(0, rng.choice(BENIGN + NOISY))  # noisy sentences make normalisation shift offsets
    parts += BENIGN[1:5]
    text = "  ".join(parts)
    assert 5000 <= len(text.split()) < 5100
    start = text.index(sentence)
    assert start / len(text) > 0.95

    long_result, benign_result, opening = vclf.scan(
        [text, text.replace(sentence, BENIGN[0]), text[:3000]], return_spans=True
    )
    assert "violence" in long_result.flagged and long_result.decision == "flag"
    assert long_result.windows > 100
    span = long_result.span
    assert span is not None and span["label"] == "violence"
    assert span["start"] <= start and span["end"] >= start + len(sentence)
    assert span["end"] - span["start"] < 600  # one window, not the whole text
    assert sentence in text[span["start"] : span["end"]]
    # Without the sentence nothing fires; a scanner that kept only the opening would have missed it.
    assert "violence" not in benign_result.flagged
    assert "violence" not in opening.flagged


def test_offset_map_agrees_with_the_normaliser() -> None:
    rng = random.Random(0)
    alphabet = list("ab cD\t\n\r@:/.wh") + ["\u200b", "ｋ", "і", "é", "e\u0301", "ﬁ", "\x01", "http://", "www.",
                                              "\u00a0", "😀", "①", "\u3000", "한"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        mapped = normalize_with_offsets(text)
        assert mapped.text == normalize_text(text) and mapped.exact
        assert all(0 <= s < e <= len(text) for s, e in zip(mapped.starts, mapped.ends, strict=True))
    original = "  Hi @bob   ｋｉｌｌ https://t.co/x  end"
    mapped = normalize_with_offsets(original)
    assert mapped.text == "Hi @user kill http end"
    for norm, orig in [("@user", "@bob"), ("kill", "ｋｉｌｌ"), ("http", "https://t.co/x"), ("end", "end")]:
        i = mapped.text.index(norm)
        s, e = mapped.original_span(i, i + len(norm))
        assert original[s:e] == orig


def test_variant_choice_and_reported_providers(bundle_dir: Path) -> None:
    auto = HarmClassifier.load(bundle_dir, threads=1)
    assert auto.variant == "int8" and auto.providers == ["CPUExecutionProvider"] and auto.device == "cpu"
    with pytest.raises(BundleError, match=r"has no fp16 variant \(it has: fp32, int8\)"):
        HarmClassifier.load(bundle_dir, variant="fp16", threads=1)
    with pytest.raises(InputError, match="unknown variant 'int4'"):
        HarmClassifier.load(bundle_dir, variant="int4", threads=1)


def test_cuda_is_never_a_silent_cpu_fallback(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: see benchmarks/gpu_check.py")
    with pytest.raises(DeviceError, match="no CUDA provider .* onnxruntime-gpu"):
        HarmClassifier.load(bundle_dir, device="cuda", threads=1)
    # An onnxruntime that lists CUDA but cannot start it (missing CUDA libraries) runs on the CPU:
    # 'cuda' must fail, 'auto' must warn and use the CPU variant.
    available = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *available])
    with pytest.raises(DeviceError, match="CUDA was requested but onnxruntime runs .* on CPUExecutionProvider"):
        HarmClassifier.load(bundle_dir, device="cuda", threads=1)
    with pytest.warns(RuntimeWarning, match="continuing on the CPU"):
        fallback = HarmClassifier.load(bundle_dir, device="auto", threads=1)
    assert fallback.providers == ["CPUExecutionProvider"] and fallback.variant == "int8"
    assert fallback.batch_size == 32  # the CPU default, not the GPU one


def test_io_binding_path_gives_the_same_scores(bundle_dir: Path, clf: HarmClassifier) -> None:
    bound = HarmClassifier.load(bundle_dir, variant="fp32", threads=1, io_binding=True)
    texts = ["hello", "you idiot", "x " * 300]
    np.testing.assert_allclose(bound.predict_logits(texts), clf.predict_logits(texts), atol=1e-6)


def test_gpu_width_padding_leaves_scores_unchanged(clf: HarmClassifier) -> None:
    # The CUDA path pads each batch to a multiple of 8 tokens; padded positions must not move a score.
    from harmscan.classifiers.encoding import forward_windows

    texts = ["hello", "you idiot", "a b c d e f g", "x " * 300, "I will hurt you tomorrow, count on it"]
    win = clf._tokenizer.encode(texts)
    assert {len(ids) % 8 for ids in win.ids} != {0}  # some widths really get padded
    exact = forward_windows(win, clf._runner, 4, clf._tokenizer.pad_id, len(clf.labels))
    padded = forward_windows(win, clf._runner, 4, clf._tokenizer.pad_id, len(clf.labels), pad_multiple=8)
    np.testing.assert_allclose(padded, exact, atol=1e-5)
