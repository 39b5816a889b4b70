"""Build a Bento (BentoML's deployable archive) of the service, the harmscan wheel and one bundle, offline.

`bentoml build` reads bentofile.yaml at the repository root; this module stages a separate build context so
that nothing is copied into the checkout: the bentofile, the bundle under build/bento/bundle and a wheel of
this harmscan under build/bento/. The same layout can be made by hand (see bentofile.yaml's header).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from harmscan.errors import HarmscanError, InputError

REPO = Path(__file__).resolve().parents[1]
STAGE_DIR = Path("build/bento")


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise HarmscanError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def stage(bundle: str | os.PathLike[str], context: str | os.PathLike[str], repo: Path = REPO) -> Path:
    """Lay out a `bentoml build` context in `context`; returns it."""
    from harmscan.classifiers.bundle import Bundle

    Bundle.load(bundle)  # refuse a tampered or incomplete bundle before packing it
    bentofile = repo / "bentofile.yaml"
    if not bentofile.is_file() or not (repo / "pyproject.toml").is_file():
        raise InputError(f"{repo} is not a harmscan source checkout (no bentofile.yaml / pyproject.toml): "
                         "build a Bento from a clone of the repository")
    ctx = Path(context)
    stage_dir = ctx / STAGE_DIR
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copytree(bundle, stage_dir / "bundle")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(stage_dir), str(repo)], "building the harmscan wheel")
    wheels = sorted(stage_dir.glob("harmscan-*.whl"))
    if len(wheels) != 1:
        raise HarmscanError(f"expected one harmscan wheel in {stage_dir}, found {len(wheels)}")
    config = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
    # The checked-in bentofile names the wheel of the current version; follow the one really built.
    config.setdefault("python", {})["wheels"] = [(STAGE_DIR / wheels[0].name).as_posix()]
    (ctx / "bentofile.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return ctx


def build(bundle: str | os.PathLike[str], *, version: str | None = None, repo: Path = REPO) -> str:
    """Stage and run `bentoml build` (offline: `lock_packages: false`); returns the Bento tag."""
    with tempfile.TemporaryDirectory(prefix="harmscan-bento-") as tmp:
        ctx = stage(bundle, tmp, repo)
        cmd = [sys.executable, "-m", "bentoml", "build", str(ctx), "--output", "tag"]
        if version:
            cmd += ["--version", version]
        out = _run(cmd, "bentoml build", cwd=ctx)
    # `-o tag` prints "__tag__:name:version" as its last line.
    for line in reversed(out.strip().splitlines()):
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise HarmscanError(f"bentoml build did not report a tag: {out.strip()[-300:]}")
