"""The CLI tells the truth: exit codes that say whether anything was scored, empty inputs, `-o -`, missing
extras named in one line, and bundles that another user can read."""

from __future__ import annotations

import argparse
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from classifier_helpers import harmscan_cmd, run_harmscan, tiny_bundle

from harmscan.errors import MissingExtraError, missing_extra

TEXTS = ["hello world", "you are an idiot", "lovely weather today"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return tiny_bundle(tmp_path_factory, tiny_model_dir)


def _snippet_cmd(modules: tuple[str, ...], blocked: tuple[str, ...], *args: str) -> list[str]:
    """`harmscan ARGS` in a fresh interpreter where importing each of `blocked` fails, as it does when the
    extra is not installed."""
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import harmscan.cli as c\n"
        f"c.COMMAND_MODULES = {modules!r}\n"
        "sys.exit(c.main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", code, *args]


def _one_error_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harmscan: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _scan(bundle: Path, src: Path | str, out: Path | str, *extra: str, cwd: Path | None = None,
          input: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ("scan", str(src), "-o", str(out), "--bundle", str(bundle), "--variant", "fp32", "--threads", "1", *extra)
    if cwd is None:
        return run_harmscan(*args, input=input)
    return subprocess.run(harmscan_cmd(*args), capture_output=True, text=True, timeout=120, cwd=cwd, input=input)


# -- exit codes ----------------------------------------------------------------------------------------
def test_wrong_text_field_exits_1_with_a_one_line_summary(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"body": t}) + "\n" for t in TEXTS))
    proc = _scan(bundle_dir, src, tmp_path / "out.jsonl")
    line = _one_error_line(proc, 1, "no row could be scored", "all 3 rows", "missing field 'text'", "--text-field")
    assert "out.errors.jsonl" in line
    assert len((tmp_path / "out.errors.jsonl").read_text().splitlines()) == 3


def test_binary_file_exits_1(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "blob.jsonl"
    src.write_bytes(bytes(range(256)) * 8 + b"\n\xff\xfe\x00garbage\n")
    _one_error_line(_scan(bundle_dir, src, tmp_path / "out.jsonl"), 1, "no row could be scored")


def test_max_errors_stops_at_the_first_bad_row_past_the_limit(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = []
    for i in range(12):
        rows.append({"id": i, "text": TEXTS[i % 3]} if i % 2 == 0 else {"id": i, "body": "no text"})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = _scan(bundle_dir, src, tmp_path / "out.jsonl", "--max-errors", "2")
    _one_error_line(proc, 1, "--max-errors 2", "3 bad rows", "line 2:")
    assert [json.loads(x)["id"] for x in (tmp_path / "out.errors.jsonl").read_text().splitlines()] == [1, 3, 5]
    assert [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == [0, 2, 4]
    # under the limit: a normal, successful scan that reports its bad rows
    proc = _scan(bundle_dir, src, tmp_path / "ok.jsonl", "--max-errors", "6")
    assert proc.returncode == 0, proc.stderr
    assert "6 bad rows" in proc.stderr


def test_some_bad_rows_still_exit_0(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "hello"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    proc = _scan(bundle_dir, src, tmp_path / "out.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert "1 bad rows" in proc.stderr


def test_a_text_past_the_window_bound_is_that_rows_error_and_the_scan_goes_on(bundle_dir: Path, tmp_path: Path) -> None:
    """One pathological row (U+FDFA expands 18-fold under NFKC) must not stop a million-row scan: it becomes an
    error row naming the limit, and the rows around it are scored."""
    src = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "hello"}, {"id": "b", "text": "\ufdfa" * 35000}, {"id": "c", "text": "bye"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = _scan(bundle_dir, src, tmp_path / "out.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == ["a", "c"]
    (bad,) = [json.loads(x) for x in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert bad["id"] == "b" and "token windows after normalisation" in bad["error"]


# -- empty inputs -----------------------------------------------------------------------------------------
def _empty_inputs(tmp_path: Path) -> dict[str, Path]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    paths = {"jsonl": tmp_path / "e.jsonl", "csv": tmp_path / "e.csv", "txt": tmp_path / "e.txt",
             "parquet": tmp_path / "e.parquet"}
    paths["jsonl"].write_text("")
    paths["csv"].write_text("id,text\n")
    paths["txt"].write_text("")
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), paths["parquet"])
    return paths


def test_empty_input_of_every_format_gives_an_empty_valid_output(bundle_dir: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    for fmt, src in _empty_inputs(tmp_path).items():
        out = tmp_path / f"out-{fmt}.jsonl"
        proc = _scan(bundle_dir, src, out)
        assert proc.returncode == 0, (fmt, proc.stderr)
        assert out.is_file() and out.read_bytes() == b"", fmt
        assert "0 rows" in proc.stderr
        pout = tmp_path / f"out-{fmt}.parquet"
        proc = _scan(bundle_dir, src, pout)
        assert proc.returncode == 0, (fmt, proc.stderr)
        table = pq.read_table(pout)
        assert table.num_rows == 0
        assert table.column_names == ["id", "scores", "flagged", "decision", "language"]
        assert [f.name for f in table.schema.field("scores").type] == ["toxicity", "violence", "illegal_advice"]


# -- stdout -----------------------------------------------------------------------------------------------
def test_dash_output_writes_jsonl_to_stdout_and_logs_to_stderr(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)) + '{"body": 1}\n')
    proc = _scan(bundle_dir, src, "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert set(rows[0]["scores"]) == {"toxicity", "violence", "illegal_advice"}
    assert not (tmp_path / "-").exists() and not list(tmp_path.glob("-*"))
    assert "line 4: missing field 'text'" in proc.stderr and "rows in stdout" in proc.stderr


def test_dash_output_with_stdin_and_resume(bundle_dir: Path, tmp_path: Path) -> None:
    proc = _scan(bundle_dir, "-", "-", input="first text\nsecond text\n", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [1, 2]
    _one_error_line(_scan(bundle_dir, "-", "-", "--resume", input="x\n", cwd=tmp_path), 2, "--resume")


def test_no_progress_bar_when_stderr_is_not_a_terminal(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    proc = _scan(bundle_dir, src, tmp_path / "out.jsonl")  # stderr is a pipe here, and no --no-progress
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "|" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("scan finished: 3 rows"), proc.stderr


# -- missing extras -----------------------------------------------------------------------------------------
SERVE_MODULES = ("harmscan.serving.cli",)
SCAN_MODULES = ("harmscan.classifiers.cli",)


@pytest.mark.parametrize("command", ["serve", "bento"])
def test_serve_and_bento_without_bentoml(bundle_dir: Path, command: str) -> None:
    proc = subprocess.run(_snippet_cmd(SERVE_MODULES, ("bentoml",), command, "--bundle", str(bundle_dir)),
                          capture_output=True, text=True, timeout=120)
    _one_error_line(proc, 2, "bentoml", "pip install 'harmscan[serve]'")


def test_ray_engine_without_ray(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "hi"}) + "\n")
    args = ("scan", str(src), "-o", str(tmp_path / "o.jsonl"), "--bundle", str(bundle_dir), "--engine", "ray")
    proc = subprocess.run(_snippet_cmd(SCAN_MODULES, ("ray",), *args), capture_output=True, text=True, timeout=120)
    _one_error_line(proc, 2, "ray", "pip install 'harmscan[ray]'")


def test_parquet_without_pyarrow(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "hi"}) + "\n")
    args = ("scan", str(src), "-o", str(tmp_path / "o.parquet"), "--bundle", str(bundle_dir))
    proc = subprocess.run(_snippet_cmd(SCAN_MODULES, ("pyarrow",), *args), capture_output=True, text=True, timeout=120)
    _one_error_line(proc, 2, "pyarrow", "pip install 'harmscan[parquet]'")


def test_a_deep_import_error_of_an_optional_module_is_named_but_a_real_bug_is_not_hidden() -> None:
    try:
        import bentoml_is_not_a_module  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as exc:
        assert missing_extra(exc) is None  # not an optional dependency: the traceback is the right answer
    err = ModuleNotFoundError("No module named 'ray.data'", name="ray.data")
    known = missing_extra(err)
    assert isinstance(known, MissingExtraError) and "harmscan[ray]" in str(known)


# -- every option says what it does -------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_option_of_these_commands_has_help() -> None:
    import harmscan.cli as c

    commands = _subparsers(c.build_parser())
    for name in ("scan", "export", "thresholds", "calibrate", "serve", "bento"):
        for action in commands[name]._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"harmscan {name} {action.option_strings[0]} has no help"


# -- bundle modes ---------------------------------------------------------------------------------------------
def _modes(root: Path) -> tuple[set[int], set[int]]:
    paths = [root, *root.rglob("*")]
    dirs = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_dir()}
    files = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_file()}
    return dirs, files


def test_exported_bundle_is_readable_by_other_users(bundle_dir: Path, tmp_path: Path) -> None:
    assert _modes(bundle_dir) == ({0o755}, {0o644})
    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    from harmscan.classifiers.bundle import Bundle

    Bundle.load(copy).update(metrics={"note": "rewritten"})  # what calibrate / thresholds do
    assert stat.S_IMODE((copy / "harmscan.json").stat().st_mode) == 0o644


def test_private_export_keeps_the_bundle_to_its_owner(tiny_model_dir: Path, tmp_path: Path) -> None:
    from harmscan.classifiers.bundle import Bundle
    from harmscan.training.export import export_bundle

    out = export_bundle(tiny_model_dir, tmp_path / "private", variants=("fp32",), progress=False, private=True)
    assert _modes(out) == ({0o700}, {0o600})
    Bundle.load(out).update(metrics={"note": "rewritten"})
    assert stat.S_IMODE((out / "harmscan.json").stat().st_mode) == 0o600  # stays private after calibrate
