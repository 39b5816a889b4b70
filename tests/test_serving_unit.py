"""harmscan.serving without a server: request validation, the OpenAI mapping, settings, API keys, the audit
log, `harmscan serve` argument handling, and adaptive batching on a real (tiny) bundle."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bentoml")

from harmscan.errors import InputError  # noqa: E402
from harmscan.labels import Taxonomy, default_taxonomy  # noqa: E402
from harmscan.serving.audit import AuditLog  # noqa: E402
from harmscan.serving.config import ServeConfig  # noqa: E402
from harmscan.serving.errors import RequestError  # noqa: E402
from harmscan.serving.middleware import KeyChecker, check_limits  # noqa: E402
from harmscan.serving.openai_compat import OPENAI_CATEGORIES, CategoryMap  # noqa: E402
from harmscan.serving.schemas import ModerationRequest, ScanRequest, parse_body  # noqa: E402

CANARY = "zebra-canary-7f3a"


# -- request validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"", None, "empty_body"),
        (b"{texts: 1}", None, "invalid_json"),
        (b'{"texts": ["\xff"]}', None, "invalid_encoding"),
        (b"null", None, "invalid_body"),
        (b'{"thresholds": {}}', "texts", "missing_field"),
        (b'{"texts": "one string"}', "texts", "invalid_type"),
        (b'{"texts": ["ok", ["nested"]]}', "texts[1]", "invalid_type"),
        (b'{"texts": ["ok"], "thresholds": {"toxicity": 1.5}}', "thresholds.toxicity", "invalid_value"),
        (b'{"texts": ["ok"], "return_spans": "yes"}', "return_spans", "invalid_type"),
        (b'{"texts": ["ok"], "text": "typo"}', "text", "unknown_field"),
    ],
)
def test_scan_request_errors_name_the_field(body: bytes, param: str | None, code: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_body(ScanRequest, body)
    assert (err.value.status, err.value.param, err.value.code) == (400, param, code)
    assert err.value.body()["error"]["type"] == "invalid_request_error"


def test_validation_messages_never_quote_the_input() -> None:
    for body in ({"texts": [CANARY, 5]}, {"texts": CANARY}, {"texts": [CANARY], "thresholds": {"x": CANARY}},
                 [CANARY], {"input": {"text": CANARY}}):
        for model in (ScanRequest, ModerationRequest):
            with pytest.raises(RequestError) as err:
                parse_body(model, json.dumps(body).encode())
            assert CANARY not in err.value.message


def test_moderation_input_forms() -> None:
    assert parse_body(ModerationRequest, b'{"input": "one"}').texts() == ["one"]
    assert parse_body(ModerationRequest, b'{"input": ["a", "b"], "model": "x"}').texts() == ["a", "b"]
    parts = b'{"input": [{"type": "text", "text": "a"}], "unknown_openai_field": 1}'
    assert parse_body(ModerationRequest, parts).texts() == ["a"]
    with pytest.raises(RequestError) as err:
        parse_body(ModerationRequest, b'{"input": [{"type": "image_url", "image_url": {"url": "u"}}]}')
    assert err.value.param == "input"


def test_limits_name_the_offending_text() -> None:
    config = ServeConfig(max_texts=3, max_chars=10, max_request_chars=25)
    check_limits(ScanRequest(texts=["a"] * 3), config)
    with pytest.raises(RequestError) as err:
        check_limits(ScanRequest(texts=["a"] * 4), config)
    assert (err.value.param, err.value.code) == ("texts", "too_many_texts")
    with pytest.raises(RequestError) as err:
        check_limits(ScanRequest(texts=["short", "x" * 11]), config)
    assert (err.value.param, err.value.code) == ("texts[1]", "text_too_long")
    with pytest.raises(RequestError) as err:
        check_limits(ModerationRequest(input="x" * 11), config)
    assert err.value.param == "input"
    with pytest.raises(RequestError) as err:
        check_limits(ScanRequest(texts=["x" * 9] * 3), config)
    assert (err.value.param, err.value.code) == ("texts", "request_too_long")


# -- OpenAI mapping ----------------------------------------------------------------------------------------
def test_openai_mapping_comes_from_the_taxonomy() -> None:
    cmap = CategoryMap.from_taxonomy(default_taxonomy())
    assert cmap.direct == {"harassment": ("toxicity",), "hate": ("toxicity",), "violence": ("violence",),
                           "illicit": ("illegal_advice",)}
    assert set(cmap.derived) == {"harassment/threatening", "hate/threatening", "illicit/violent"}
    scores = {"toxicity": 0.2, "violence": 0.9, "illegal_advice": 0.7}
    out = cmap.result(scores, flagged=["violence", "illegal_advice"])
    assert out["flagged"] is True
    assert set(OPENAI_CATEGORIES) | set(scores) == set(out["categories"]) == set(out["category_scores"])
    assert out["category_scores"]["harassment"] == out["category_scores"]["hate"] == pytest.approx(0.2)
    assert out["category_scores"]["illicit/violent"] == pytest.approx(0.7)  # min(violence, illegal_advice)
    assert out["categories"]["illicit/violent"] is True
    assert out["categories"]["harassment/threatening"] is False
    assert out["category_scores"]["self-harm"] == 0.0 and out["categories"]["self-harm"] is False
    assert out["category_applied_input_types"]["self-harm"] == []
    assert out["category_applied_input_types"]["violence"] == ["text"]


def test_openai_mapping_follows_a_custom_taxonomy() -> None:
    tax = Taxonomy.from_list([{"name": "self_harm", "definition": "d", "openai_categories": ["self-harm"]},
                              {"name": "toxicity", "definition": "d", "openai_categories": ["harassment"]}])
    cmap = CategoryMap.from_taxonomy(tax)
    assert "self-harm" not in cmap.unmodelled() and "violence" in cmap.unmodelled()
    assert not cmap.derived  # no violence label: nothing "also includes violence"
    out = cmap.result({"self_harm": 0.8, "toxicity": 0.1}, flagged=["self_harm"])
    assert out["category_scores"]["self-harm"] == pytest.approx(0.8) and out["categories"]["self-harm"]


# -- settings, keys, audit log -------------------------------------------------------------------------------
def test_config_defaults_and_bad_values() -> None:
    config = ServeConfig.from_env({})
    assert (config.max_texts, config.max_chars, config.max_body_bytes, config.batching) == (
        256, 100_000, 2 * 1024 * 1024, True)
    config = ServeConfig.from_env({"HARMSCAN_BATCHING": "0", "HARMSCAN_API_KEYS": "a, b"})
    assert config.api_keys == ("a", "b") and config.batching is False
    with pytest.raises(InputError, match="HARMSCAN_MAX_TEXTS"):
        ServeConfig.from_env({"HARMSCAN_MAX_TEXTS": "lots"})
    with pytest.raises(InputError, match="HARMSCAN_BATCHING"):
        ServeConfig.from_env({"HARMSCAN_BATCHING": "maybe"})
    with pytest.raises(InputError, match="HARMSCAN_BUNDLE"):
        ServeConfig().require_bundle()


def test_api_keys() -> None:
    keys = KeyChecker(("key-one", "key-two"))
    keys.check("Bearer key-two")
    keys.check("bearer key-one")
    for header, code in ((None, "missing_api_key"), ("Bearer nope", "invalid_api_key"),
                         ("Basic key-one", "invalid_api_key"), ("Bearer key-on", "invalid_api_key")):
        with pytest.raises(RequestError) as err:
            keys.check(header)
        assert (err.value.status, err.value.code) == (401, code)
        assert "key-one" not in err.value.message


def test_audit_log_holds_hashes_not_text(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "a.jsonl", "fp123")
    results = [{"scores": {"toxicity": 0.9}, "flagged": ["toxicity"], "decision": "flag"},
               {"scores": {"toxicity": 0.1}, "flagged": [], "decision": "allow"}]
    log.record("req-1", "scan", [CANARY, "other"], results)
    log.close()
    text = (tmp_path / "audit" / "a.jsonl").read_text()
    assert CANARY not in text
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["sha256"] == hashlib.sha256(CANARY.encode()).hexdigest()
    assert rows[0]["decision"] == "flag" and rows[0]["bundle"] == "fp123" and rows[0]["request_id"] == "req-1"


# -- `harmscan serve` ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    return Path(export_bundle(tiny_model_dir, tmp_path_factory.mktemp("serving_unit") / "bundle"))


def _serve_args(bundle: Path, *argv: str) -> argparse.Namespace:
    from harmscan.cli import build_parser

    return build_parser().parse_args(["serve", "--bundle", str(bundle), *argv])


def test_serve_command_binds_loopback_and_passes_settings(bundle: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from harmscan.serving.cli import serve_command

    cmd, env = serve_command(_serve_args(bundle, "--port", "3999", "--max-texts", "10", "--no-batching",
                                         "--api-keys-env", "MY_KEYS"), {"MY_KEYS": "k1,k2"})
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "3999"]
    assert env["HARMSCAN_BUNDLE"] == str(bundle.resolve())
    assert env["HARMSCAN_API_KEYS"] == "k1,k2" and "k1" not in " ".join(cmd)
    assert (env["HARMSCAN_MAX_TEXTS"], env["HARMSCAN_BATCHING"]) == ("10", "0")
    assert capsys.readouterr().err == ""
    serve_command(_serve_args(bundle, "--host", "0.0.0.0"), {})
    assert "without API keys" in capsys.readouterr().err


def test_serve_refuses_bad_setup_in_one_line(bundle: Path, tmp_path: Path) -> None:
    from harmscan.errors import HarmscanError
    from harmscan.serving.cli import serve_command

    with pytest.raises(HarmscanError, match="does not exist"):
        serve_command(_serve_args(tmp_path / "missing"), {})
    with pytest.raises(InputError, match="MY_KEYS"):
        serve_command(_serve_args(bundle, "--api-keys-env", "MY_KEYS"), {})
    bad_policy = tmp_path / "policy.json"
    bad_policy.write_text('{"thresholds": {"toxicity": 7}}')
    with pytest.raises(HarmscanError, match="within"):
        serve_command(_serve_args(bundle, "--policy", str(bad_policy)), {})


# -- adaptive batching on a real classifier -----------------------------------------------------------------
class CountingClassifier:
    """The real classifier, recording how many texts each model call received."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def scan(self, texts: list[str], thresholds: Any = None, return_spans: bool = False, *, policy: Any = None) -> Any:
        self.calls.append(len(texts))
        return self.inner.scan(texts, thresholds=thresholds, return_spans=return_spans, policy=policy)


def _concurrent(engine: Any, texts: list[str], thresholds: list[Any]) -> list[Any]:
    async def run() -> list[Any]:
        return await asyncio.gather(*[engine.scan([t], th) for t, th in zip(texts, thresholds, strict=True)])

    return asyncio.run(run())


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_merge_and_keep_their_own_thresholds(bundle: Path, batching: bool) -> None:
    from harmscan.classifiers import HarmClassifier
    from harmscan.serving.engine import Engine

    # fp32: its scores do not depend on batch-mates (int8 quantises activations per batch), so merged and
    # single-request results can be compared to 1e-6.
    clf = HarmClassifier.load(bundle, variant="fp32", threads=1)
    spy = CountingClassifier(clf)
    engine = Engine(spy, batching=batching, max_batch_size=64, max_latency_ms=30_000)  # type: ignore[arg-type]
    texts = [f"message number {i} " + "more words " * (i % 4) for i in range(12)]
    # Every other request lowers all thresholds to 0: its texts must be flagged, the others' not forced.
    low = {name: 0.0 for name in clf.labels}
    thresholds = [low if i % 2 else None for i in range(12)]
    results = _concurrent(engine, texts, thresholds)
    if batching:
        assert len(spy.calls) < len(texts) and max(spy.calls) > 1  # requests shared model calls
    else:
        assert spy.calls == [1] * len(texts)
    for text, th, (res,) in zip(texts, thresholds, results, strict=True):
        expected = clf.scan([text], thresholds=th)[0]
        assert res.flagged == expected.flagged
        assert res.scores == pytest.approx(expected.scores, abs=1e-6)
    assert all(res.flagged == clf.labels for (res,) in results[1::2])
    assert asyncio.run(engine.scan([])) == []


def test_long_texts_are_not_merged_and_overload_is_a_503(bundle: Path) -> None:
    import anyio

    from harmscan.classifiers import HarmClassifier
    from harmscan.serving.engine import BATCHABLE_TEXT_CHARS, Engine, Overloaded

    spy = CountingClassifier(HarmClassifier.load(bundle, variant="fp32", threads=1))
    engine = Engine(spy, batching=True, max_batch_size=64, max_latency_ms=200)  # type: ignore[arg-type]
    long_text = "word " * (BATCHABLE_TEXT_CHARS // 4)
    texts = [f"short {i}" for i in range(6)] + [long_text]
    results = _concurrent(engine, texts, [None] * len(texts))
    assert len(results) == len(texts)
    assert 1 in spy.calls and len(spy.calls) < len(texts)  # the long text alone, the short ones merged

    async def busy_model() -> None:
        # Hold the model for longer than the server's queueing limit: the next request is refused.
        await engine.long_lane.run(engine.score_items, [("warm", None, False)])
        other_request = object()
        await engine.long_lane.limiter.acquire_on_behalf_of(other_request)
        try:
            with pytest.raises(Overloaded) as err:
                await engine.scan([long_text])
        finally:
            engine.long_lane.limiter.release_on_behalf_of(other_request)
        assert err.value.status == 503 and err.value.headers["Retry-After"] == "1"

    anyio.run(busy_model)


def test_the_service_never_imports_torch(bundle: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "from harmscan.serving.service import HarmscanService\n"
        "svc = HarmscanService.inner()\n"  # the class itself: loads the bundle as a server worker does
        "out = asyncio.run(svc.scan_texts(['hello']))\n"
        "assert len(out['results']) == 1\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))\n"
    )
    env = {**os.environ, "HARMSCAN_BUNDLE": str(bundle), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
