"""`harmscan bento` stages bentofile.yaml + wheel + bundle and runs `bentoml build` offline; the built Bento
serves (on 127.0.0.1, its bundle found inside the Bento without HARMSCAN_BUNDLE)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from classifier_helpers import free_port, wait_until_ready  # noqa: E402

pytest.importorskip("bentoml")
httpx = pytest.importorskip("httpx")


def test_bento_builds_offline_and_serves(tiny_model_dir: Path, tmp_path: Path) -> None:
    from harmscan.classifiers import Bundle
    from harmscan.serving.bento import build
    from harmscan.training.export import export_bundle

    bundle = Path(export_bundle(tiny_model_dir, tmp_path / "bundle"))
    tag = build(bundle, version="test1")
    assert tag == "harmscan:test1"
    home = Path(os.environ["BENTOML_HOME"])  # a temporary folder (tests/conftest.py)
    bento_dir = home / "bentos" / "harmscan" / "test1"
    assert (bento_dir / "src" / "build" / "bento" / "bundle" / "harmscan.json").is_file()
    assert list((bento_dir / "env" / "python" / "wheels").glob("harmscan-*.whl"))
    assert "lock" not in " ".join(p.name for p in (bento_dir / "env" / "python").iterdir())

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARMSCAN_")}
    env.update(OMP_NUM_THREADS="1", BENTOML_DO_NOT_TRACK="true")
    log = tmp_path / "bento.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, url, log, name="bentoml serve")
        info = httpx.get(url + "/v1/labels").json()
        assert info["model"]["bundle_fingerprint"] == Bundle.load(bundle).fingerprint
        resp = httpx.post(url + "/v1/scan", json={"texts": ["hello"]})
        assert resp.status_code == 200 and len(resp.json()["results"]) == 1
        assert "listening on http://127.0.0.1:" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
