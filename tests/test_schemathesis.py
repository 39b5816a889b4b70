"""Property-based API tests (issue 22): schemathesis reads the live server's own OpenAPI spec (/docs.json) and
sends generated requests, valid and invalid, to every operation; every answer must be a documented status
with a body matching the documented schema, and never a 5xx. Bounded and derandomised (the same cases on
every run): about 25 generated cases per operation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) is not installed")
pytest.importorskip("bentoml")
httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")

from classifier_helpers import free_port, wait_until_ready  # noqa: E402

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def server_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from harmscan.training.export import export_bundle

    tmp = tmp_path_factory.mktemp("schemathesis")
    bundle = export_bundle(tiny_model_dir, tmp / "bundle")
    port = free_port()
    log = tmp / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(tmp / "bentoml_home"),
           "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "harmscan.cli", "serve", "--bundle", str(bundle), "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url, log)
        yield url
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_every_operation_conforms_to_the_spec(server_url: str) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(server_url + "/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /v1/scan", "POST /v1/moderations"} <= labels, sorted(labels)
    failures: list[str] = []
    for operation in operations:
        @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: object) -> None:
            case.call_and_validate(base_url=server_url, timeout=60)  # type: ignore[attr-defined]

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
