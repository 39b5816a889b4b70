"""`harmscan scan`: score a file of texts in chunks, with constant memory, resumable after any crash.

Both engines (this module's `scan_file`, the Ray pool in `ray_engine.py`) only turn input records into
scored chunks (`score_chunk`); `ScanCheckpoint` is the one driver that writes them, and the progress record
is `scan_progress`'s, so a file scan started by either engine can be resumed by the other.

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
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harmscan.classifiers.classifier import HarmClassifier
from harmscan.classifiers.encoding import TooManyWindowsError
from harmscan.classifiers.records import Record, detect_input_format, iter_records
from harmscan.classifiers.scan_progress import (
    ScanSummary,
    default_errors_path,
    first_error,
    save_state,
    scan_identity,
    start_state,
)
from harmscan.classifiers.scan_progress import (
    progress_path as progress_path,  # the public name tests and docs use
)
from harmscan.classifiers.writers import (
    JsonlWriter,
    ParquetWriter,
    RowWriter,
    StreamWriter,
    detect_output_format,
    error_row,
    result_row,
)
from harmscan.errors import HarmscanError, InputError, RowsFailedError

DEFAULT_CHUNK = 1024

log = logging.getLogger(__name__)


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
    identity = scan_identity(
        source, fmt_in, text_field, id_field, bundle_fingerprint=classifier.bundle.fingerprint,
        variant=classifier.variant, thresholds=dict(classifier.policy.thresholds), fmt_out=fmt_out, spans=spans,
    )
    checkpoint = ScanCheckpoint.open(out, errors_file, identity, labels=classifier.labels, resume=resume,
                                     overwrite=overwrite)
    if checkpoint.complete:
        return checkpoint.summary()

    def chunks() -> Iterator[Chunk]:
        start, n_errors = checkpoint.skip, checkpoint.errors_so_far
        records = itertools.islice(iter_records(source, fmt_in, text_field, id_field), start, None)
        for chunk in _chunks(records, chunk_size):
            chunk, over = _cut_at_error_limit(chunk, n_errors, max_errors)
            rows, bad = score_chunk(chunk, classifier, spans)
            yield Chunk(start, len(chunk), rows, bad, stop=over)
            start, n_errors = start + len(chunk), n_errors + len(bad)

    return checkpoint.run(chunks, progress=progress, max_errors=max_errors)


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
            rows, bad = score_chunk(chunk, classifier, spans)
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
                raise too_many_errors(n_errors, max_errors, first, where, f"{writer.rows} rows were written")
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


@dataclass(frozen=True)
class Chunk:
    """What an engine hands the driver for `count` input records from record `start`: output rows and
    error rows in input order. `stop`: the scan must stop after this chunk (past --max-errors)."""

    start: int
    count: int
    rows: list[dict[str, Any]]
    bad: list[dict[str, Any]]
    stop: bool = False


class ScanCheckpoint:
    """One file scan's output, errors file and progress record. `open` starts it fresh or resumes it (and
    refuses what cannot be resumed); `run` commits an engine's chunks; `summary` describes it."""

    def __init__(self, out: Path, errors_file: Path, fmt_out: str, labels: Sequence[str], spans: bool,
                 state: dict[str, Any]) -> None:
        self.out, self.errors_file, self.fmt_out = out, errors_file, fmt_out
        self.labels, self.spans, self.state = list(labels), spans, state
        self.skip = int(state.get("records", 0))  # records committed before this run

    @classmethod
    def open(cls, out: Path, errors_file: Path, identity: dict[str, Any], *, labels: Sequence[str],
             resume: bool, overwrite: bool) -> ScanCheckpoint:
        source = identity["input"]["path"]
        if errors_file.resolve() == out.resolve() or (source != "-" and Path(source) == out.resolve()):
            raise InputError(f"output {out} must differ from the input and from the errors file")
        state = start_state(out, errors_file, identity, resume, overwrite)
        fmt_out = str(identity["output_format"])
        if (state.get("input_done") and fmt_out == "parquet" and out.exists()
                and not ParquetWriter.parts_of(out).exists()):
            state = save_state(out, {**state, "complete": True})  # killed after the merge, before recording it
        return cls(out, errors_file, fmt_out, labels, bool(identity["spans"]), state)

    @property
    def complete(self) -> bool:
        return bool(self.state.get("complete"))

    @property
    def errors_so_far(self) -> int:
        return int((self.state.get("errors") or {}).get("rows", 0))

    def run(self, chunks: Callable[[], Iterable[Chunk]], *, progress: bool = True, desc: str = "scan",
            max_errors: int | None = None, record: dict[str, Any] | None = None) -> ScanSummary:
        """Write `chunks()` (called only when input remains) in input order, committing after each; a chunk
        that starts before the next expected record (delivered twice) is dropped, one after it (records
        lost) stops the scan. `record`: extra fields for the finished progress record."""
        writer: RowWriter
        if self.fmt_out == "parquet":
            writer = ParquetWriter(self.out, self.labels, self.spans, self.state.get("output"))
        else:
            writer = JsonlWriter(self.out, self.state.get("output"), keep_empty=True)
        errors = JsonlWriter(self.errors_file, self.state.get("errors"))
        start, flagged, scanned, duplicates, expected = time.perf_counter(), 0, 0, 0, self.skip
        bar = tqdm(desc=desc, unit="text", unit_scale=True, initial=self.skip, disable=not progress, smoothing=0.1)
        try:
            if not self.state.get("input_done"):
                for chunk in chunks():
                    if chunk.start < expected:
                        duplicates += 1  # delivered twice (a worker re-ran it): already written
                        continue
                    if chunk.start > expected:
                        raise HarmscanError(
                            f"the scan lost input records {expected}..{chunk.start - 1} (a worker failure that "
                            f"was not recovered); the output is committed up to record "
                            f"{self.state.get('records', 0)}: rerun with --resume"
                        )
                    writer.write(chunk.rows)
                    errors.write(chunk.bad)
                    self._commit(writer, errors, chunk.count)
                    expected += chunk.count
                    flagged += sum(r["decision"] == "flag" for r in chunk.rows)
                    scanned += len(chunk.rows)
                    bar.update(chunk.count)
                    bar.set_postfix(errors=errors.rows, refresh=False)
                    if chunk.stop:
                        raise too_many_errors(errors.rows, max_errors, first_error(self.errors_file),
                                              str(self.errors_file),
                                              f"the {writer.rows} rows scored before it are committed in {self.out}")
                if duplicates:
                    log.warning("dropped %d chunks delivered twice after a worker failure", duplicates)
                self._commit(writer, errors, 0, input_done=True)
            writer.finish()
            errors.finish()
            self.state = save_state(self.out, {**self.state, "complete": True, **(record or {})})
        finally:
            bar.close()
            writer.close()
            errors.close()
        return self.summary(flagged, scanned, time.perf_counter() - start)

    def summary(self, flagged: int = 0, scanned: int = 0, seconds: float = 0.0) -> ScanSummary:
        n_errors = self.errors_so_far
        return ScanSummary(
            output=self.out,
            errors_path=self.errors_file if n_errors else None,
            records=int(self.state.get("records", 0)),
            rows=int((self.state.get("output") or {}).get("rows", 0)),
            flagged=flagged,
            errors=n_errors,
            resumed_from=self.skip,
            seconds=seconds,
            texts_per_s=scanned / seconds if seconds > 0 else 0.0,
            complete=self.complete,
            first_error=first_error(self.errors_file) if n_errors else None,
        )

    def _commit(self, writer: RowWriter, errors: JsonlWriter, records: int, input_done: bool = False) -> None:
        self.state = _commit(self.out, self.state, writer, errors, records, input_done)


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
    return save_state(out, new)


def too_many_errors(n: int, limit: int | None, first: str | None, where: str, kept: str) -> RowsFailedError:
    return RowsFailedError(
        f"scan stopped: {n} bad rows, more than --max-errors {limit} (first: {first}); bad rows in {where}; "
        f"{kept}. Fix the input (or --text-field) and rerun with --overwrite"
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


# -- chunks --------------------------------------------------------------------------------------------
def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def score_chunk(chunk: list[Record], classifier: HarmClassifier, spans: bool) -> tuple[list[dict], list[dict]]:
    """Output rows and error rows of one chunk, each in input order (the same in both engines)."""
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
