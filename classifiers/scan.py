"""`harmscan scan`: score a file of texts in chunks, with constant memory, resumable after any crash.

Commit protocol (what makes `--resume` exact): after each chunk the rows are appended to the output and the
bad rows to the errors file, both are fsynced, and only then is the progress file (OUTPUT's name +
".progress.json") atomically replaced with the new counts and byte offsets. A resumed scan truncates both
files to the offsets of the last progress file and skips exactly that many input records, so a SIGKILL at
any instant loses nothing and duplicates nothing. The progress file stays after a finished scan as its
record (bundle fingerprint, thresholds, counts).

OUTPUT '-' streams JSONL to stdout instead: nothing to resume, so no progress file; bad rows go to
`errors_path` when given, else one line each on stderr. `max_errors` stops a scan (RowsFailedError) at the
first bad row past that many, after committing everything before it.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harmscan.classifiers.classifier import HarmClassifier
from harmscan.classifiers.encoding import TooManyWindowsError
from harmscan.classifiers.records import Record, detect_input_format, iter_records
from harmscan.classifiers.writers import (
    JsonlWriter,
    ParquetWriter,
    RowWriter,
    StreamWriter,
    detect_output_format,
    error_row,
    result_row,
)
from harmscan.errors import InputError, RowsFailedError

DEFAULT_CHUNK = 1024
PROGRESS_FORMAT = "harmscan-scan-progress"
PROGRESS_VERSION = 1


@dataclass(frozen=True)
class ScanSummary:
    output: Path
    errors_path: Path | None  # None when no row was bad
    records: int  # input records accounted for (rows + errors), including a resumed part
    rows: int  # rows in the output
    flagged: int  # rows flagged in this run
    errors: int  # bad rows in the errors file
    resumed_from: int  # records that an earlier, interrupted run had already committed
    seconds: float  # this run
    texts_per_s: float  # this run
    complete: bool
    first_error: str | None = None  # "line N: why" of the first bad row, for a one-line summary


def progress_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def default_errors_path(output: Path) -> Path:
    return output.with_name(output.stem + ".errors.jsonl")


def scan_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    classifier: HarmClassifier,
    *,
    text_field: str = "text",
    id_field: str = "id",
    input_format: str | None = None,
    output_format: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    errors_path: str | os.PathLike[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    spans: bool = False,
    max_errors: int | None = None,
) -> ScanSummary:
    """Scan `input` (a path or '-') into `output` (a path or '-' for stdout) under the classifier's policy;
    see the module doc."""
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_errors is not None and max_errors < 0:
        raise InputError(f"--max-errors must be >= 0, got {max_errors}")
    source = "-" if str(input) == "-" else Path(input)
    if str(output) == "-":
        return _scan_to_stdout(
            source, classifier, text_field=text_field, id_field=id_field, input_format=input_format,
            output_format=output_format, resume=resume, errors_path=errors_path, chunk_size=chunk_size,
            progress=progress, spans=spans, max_errors=max_errors,
        )
    out = Path(output)
    fmt_in = detect_input_format(source, input_format)
    fmt_out = detect_output_format(out, output_format)
    errors_file = Path(errors_path) if errors_path else default_errors_path(out)
    if errors_file.resolve() == out.resolve() or (source != "-" and Path(source).resolve() == out.resolve()):
        raise InputError(f"output {out} must differ from the input and from the errors file")
    identity = {
        "input": _input_identity(source, fmt_in, text_field, id_field),
        "bundle": classifier.bundle.fingerprint,
        "variant": classifier.variant,
        "thresholds": dict(classifier.policy.thresholds),
        "output_format": fmt_out,
        "spans": spans,
    }
    state = _start_state(out, errors_file, identity, resume, overwrite)
    if state.get("input_done") and fmt_out == "parquet" and out.exists() and not ParquetWriter.parts_of(out).exists():
        state = _save(out, {**state, "complete": True})  # killed after the merge, before recording it
    if state.get("complete"):
        return _summary(out, errors_file, state, 0, 0, 0.0, skip=int(state.get("records", 0)))

    writer: RowWriter
    if fmt_out == "parquet":
        writer = ParquetWriter(out, classifier.labels, spans, state.get("output"))
    else:
        writer = JsonlWriter(out, state.get("output"), keep_empty=True)
    errors = JsonlWriter(errors_file, state.get("errors"))
    skip = int(state.get("records", 0))
    start, flagged, scanned = time.perf_counter(), 0, 0
    bar = tqdm(desc="scan", unit="text", unit_scale=True, initial=skip, disable=not progress, smoothing=0.1)
    try:
        if not state.get("input_done"):
            records = itertools.islice(iter_records(source, fmt_in, text_field, id_field), skip, None)
            for chunk in _chunks(records, chunk_size):
                chunk, over = _cut_at_error_limit(chunk, errors.rows, max_errors)
                rows, bad = _score(chunk, classifier, spans)
                writer.write(rows)
                errors.write(bad)
                state = _commit(out, state, writer, errors, len(chunk))
                flagged += sum(r["decision"] == "flag" for r in rows)
                scanned += len(rows)
                bar.update(len(chunk))
                bar.set_postfix(errors=errors.rows, refresh=False)
                if over:
                    raise _too_many_errors(errors.rows, max_errors, _first_error(errors_file), str(errors_file),
                                           f"the {writer.rows} rows scored before it are committed in {out}")
            state = _commit(out, state, writer, errors, 0, input_done=True)
        writer.finish()
        errors.finish()
        state = _save(out, {**state, "complete": True})
    finally:
        bar.close()
        writer.close()
        errors.close()
    return _summary(out, errors_file, state, flagged, scanned, time.perf_counter() - start, skip)


def _scan_to_stdout(
    source: str | Path,
    classifier: HarmClassifier,
    *,
    text_field: str,
    id_field: str,
    input_format: str | None,
    output_format: str | None,
    resume: bool,
    errors_path: str | os.PathLike[str] | None,
    chunk_size: int,
    progress: bool,
    spans: bool,
    max_errors: int | None,
) -> ScanSummary:
    if resume:
        raise InputError("--resume needs an output file: a scan to stdout (-o -) cannot be resumed")
    if output_format not in (None, "jsonl"):
        raise InputError(f"-o - writes JSONL to stdout, not {output_format}: name an output file for {output_format}")
    fmt_in = detect_input_format(source, input_format)
    errors = JsonlWriter(Path(errors_path)) if errors_path else None
    writer = StreamWriter(sys.stdout)
    start, flagged, n_errors, records = time.perf_counter(), 0, 0, 0
    first: str | None = None
    bar = tqdm(desc="scan", unit="text", unit_scale=True, disable=not progress, smoothing=0.1)
    try:
        for chunk in _chunks(iter_records(source, fmt_in, text_field, id_field), chunk_size):
            chunk, over = _cut_at_error_limit(chunk, n_errors, max_errors)
            rows, bad = _score(chunk, classifier, spans)
            writer.write(rows)
            writer.commit()
            if errors is not None:
                errors.write(bad)
                errors.commit()
            else:
                for row in bad:
                    print(f"harmscan: bad row: line {row['line']}: {row['error']}", file=sys.stderr)
            first = first or (f"line {bad[0]['line']}: {bad[0]['error']}" if bad else None)
            n_errors += len(bad)
            records += len(chunk)
            flagged += sum(r["decision"] == "flag" for r in rows)
            bar.update(len(chunk))
            if over:
                where = str(errors_path) if errors_path else "stderr"
                raise _too_many_errors(n_errors, max_errors, first, where, f"{writer.rows} rows were written")
        writer.finish()
        if errors is not None:
            errors.finish()
    finally:
        bar.close()
        if errors is not None:
            errors.close()
    seconds = time.perf_counter() - start
    return ScanSummary(
        output=Path("-"), errors_path=Path(errors_path) if errors_path and n_errors else None, records=records,
        rows=writer.rows, flagged=flagged, errors=n_errors, resumed_from=0, seconds=seconds,
        texts_per_s=writer.rows / seconds if seconds > 0 else 0.0, complete=True, first_error=first,
    )


def _cut_at_error_limit(chunk: list[Record], so_far: int, max_errors: int | None) -> tuple[list[Record], bool]:
    """The chunk up to and including the bad row that passes `max_errors`, and whether it was reached: the
    scan then stops exactly there, whatever the chunk size."""
    if max_errors is None:
        return chunk, False
    allowed = max_errors - so_far
    for i, r in enumerate(chunk):
        if r.error is not None or r.text is None:
            if allowed == 0:
                return chunk[: i + 1], True
            allowed -= 1
    return chunk, False


def _too_many_errors(n: int, limit: int | None, first: str | None, where: str, kept: str) -> RowsFailedError:
    return RowsFailedError(
        f"scan stopped: {n} bad rows, more than --max-errors {limit} (first: {first}); bad rows in {where}; "
        f"{kept}. Fix the input (or --text-field) and rerun with --overwrite"
    )


def _first_error(errors_file: Path) -> str | None:
    try:
        with open(errors_file, encoding="utf-8") as fh:
            row = json.loads(fh.readline())
        return f"line {row['line']}: {row['error']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- chunks --------------------------------------------------------------------------------------------
def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _score(chunk: list[Record], classifier: HarmClassifier, spans: bool) -> tuple[list[dict], list[dict]]:
    """Output rows and error rows of one chunk, each in input order."""
    good = [r for r in chunk if r.error is None and r.text is not None]
    too_long: dict[int, str] = {}  # id(record) -> why: a text past the per-text window bound is that row's error
    while True:
        try:
            results = classifier.scan([r.text for r in good if r.text is not None], return_spans=spans) if good else []
            break
        except TooManyWindowsError as exc:  # raised while encoding, before any window is scored
            record = good.pop(exc.index)
            too_long[id(record)] = (
                f"the text becomes {exc.windows} token windows after normalisation, more than the limit of "
                f"{exc.limit} per text: split it into shorter texts"
            )
    rows = [result_row(r.id, res, spans) for r, res in zip(good, results, strict=True)]
    bad = [
        error_row(r.line, r.id, too_long.get(id(r)) or r.error or "no text")
        for r in chunk if r.error is not None or r.text is None or id(r) in too_long
    ]
    return rows, bad


# -- progress state ------------------------------------------------------------------------------------
def _input_identity(source: str | Path, fmt: str, text_field: str, id_field: str) -> dict[str, Any]:
    ident: dict[str, Any] = {"path": "-", "format": fmt, "text_field": text_field, "id_field": id_field}
    if source != "-":
        path = Path(source)
        try:
            st = path.stat()
        except OSError as exc:
            raise InputError(f"cannot read input {path}: {exc.strerror}") from None
        ident.update(path=str(path.resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
    return ident


def _start_state(
    out: Path, errors_file: Path, identity: dict[str, Any], resume: bool, overwrite: bool
) -> dict[str, Any]:
    ppath = progress_path(out)
    saved = _load(ppath) if ppath.exists() else None
    if resume and saved is not None:
        _check_same_scan(ppath, saved, identity)
        return saved
    if resume and out.exists():
        raise InputError(
            f"cannot resume: {out} exists but {ppath.name} (the progress record) does not; "
            "rerun with --overwrite to start again"
        )
    if not resume and not overwrite and (out.exists() or saved is not None):
        raise InputError(f"{out} exists: pass --resume to continue an interrupted scan, or --overwrite to replace it")
    ppath.unlink(missing_ok=True)
    fresh = {
        "format": PROGRESS_FORMAT,
        "version": PROGRESS_VERSION,
        **identity,
        "errors_path": str(errors_file),
        "records": 0,
        "output": None,
        "errors": None,
        "input_done": False,
        "complete": False,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return fresh


def _check_same_scan(ppath: Path, saved: dict[str, Any], identity: dict[str, Any]) -> None:
    """A resumed scan must continue the same input with the same model and thresholds, else its output
    would mix two scans."""
    what = {
        "input": "the input file (path, size or modification time) changed",
        "bundle": "the bundle (model files, calibration or thresholds) differs",
        "variant": "the model variant differs",
        "thresholds": "the thresholds differ",
        "output_format": "the output format differs",
        "spans": "--spans differs",
    }
    for key, reason in what.items():
        if saved.get(key) != identity[key]:
            raise InputError(
                f"cannot resume the scan recorded in {ppath}: {reason} since it started; "
                "rerun with the original settings, or with --overwrite to start again"
            )


def _load(ppath: Path) -> dict[str, Any]:
    try:
        data = json.loads(ppath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"progress file {ppath} is unreadable ({exc}): rerun with --overwrite") from None
    if not isinstance(data, dict) or data.get("format") != PROGRESS_FORMAT:
        raise InputError(f"{ppath} is not a harmscan scan progress file: rerun with --overwrite")
    return data


def _commit(
    out: Path, state: dict[str, Any], writer: RowWriter, errors: JsonlWriter, records: int, input_done: bool = False
) -> dict[str, Any]:
    # Order matters: data first (fsynced by commit), the progress record that points at it last.
    new = {
        **state,
        "output": writer.commit(),
        "errors": errors.commit(),
        "records": int(state.get("records", 0)) + records,
        "input_done": input_done,
    }
    return _save(out, new)


def _save(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    state = {**state, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ppath = progress_path(out)
    tmp = ppath.with_name(f".{ppath.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, ppath)
    return state


def _summary(
    out: Path, errors_file: Path, state: dict[str, Any], flagged: int, scanned: int, seconds: float, skip: int = 0
) -> ScanSummary:
    n_errors = int((state.get("errors") or {}).get("rows", 0))
    return ScanSummary(
        output=out,
        errors_path=errors_file if n_errors else None,
        records=int(state.get("records", 0)),
        rows=int((state.get("output") or {}).get("rows", 0)),
        flagged=flagged,
        errors=n_errors,
        resumed_from=skip,
        seconds=seconds,
        texts_per_s=scanned / seconds if seconds > 0 else 0.0,
        complete=bool(state.get("complete")),
        first_error=_first_error(errors_file) if n_errors else None,
    )
