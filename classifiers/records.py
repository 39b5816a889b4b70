"""Readers for `harmscan scan` (and the Ray engine): JSONL, CSV/TSV, Parquet, plain text, stdin.

Every reader streams: it holds one line (or one Parquet batch) at a time, so memory does not grow with the
file. It yields one `Record` per input row, in input order; a row that cannot be scanned (missing field,
non-string value, undecodable bytes, invalid JSON) is yielded with `error` set instead of `text`, so the
caller can log it and go on.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

from harmscan.errors import InputError, require

INPUT_FORMATS = ("jsonl", "csv", "tsv", "parquet", "text")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
}
_PARQUET_BATCH = 4096


class Record(NamedTuple):
    line: int  # 1-based line of the row in the input (row number for Parquet)
    id: Any  # the row's id field, else its line number
    text: str | None  # None when the row is bad
    error: str | None = None


def detect_input_format(source: str | Path, fmt: str | None = None) -> str:
    """The input format: `fmt` if given, else from the suffix; stdin ('-') is sniffed (JSONL or text)."""
    if fmt:
        if fmt not in INPUT_FORMATS:
            raise InputError(f"unknown input format {fmt!r}: use one of {', '.join(INPUT_FORMATS)}")
        return fmt
    if str(source) == "-":
        head = sys.stdin.buffer.peek(64)[:64] if hasattr(sys.stdin.buffer, "peek") else b""
        return "jsonl" if head.lstrip().startswith(b"{") else "text"
    suffix = Path(source).suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            f"cannot tell the format of {source} from its suffix {suffix or '(none)'}: "
            f"pass --input-format ({', '.join(INPUT_FORMATS)})"
        )
    return _SUFFIXES[suffix]


def iter_records(
    source: str | Path, fmt: str | None = None, text_field: str = "text", id_field: str = "id"
) -> Iterator[Record]:
    """Stream the records of `source` (a path, or '-' for stdin). Fails (InputError) only for problems
    with the whole input: a missing file, a CSV/Parquet without the text column, an unknown format."""
    fmt = detect_input_format(source, fmt)
    if fmt == "parquet":
        yield from _parquet(Path(source), text_field, id_field)
        return
    with _open_binary(source) as fh:
        if fmt == "text":
            yield from _text_lines(fh)
        elif fmt == "jsonl":
            yield from _jsonl(fh, text_field, id_field)
        else:
            yield from _csv(fh, str(source), text_field, id_field, "\t" if fmt == "tsv" else ",")


@contextmanager
def _open_binary(source: str | Path) -> Iterator[IO[bytes]]:
    if str(source) == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot read input {source}: {exc.strerror}") from None
    with fh:
        yield fh


def _ok(line: int, rid: Any, text: str) -> Record:
    """A record for `text`, or an error record when it cannot be tokenised (lone surrogates, which come
    from undecodable bytes kept by surrogateescape or from JSON escapes such as "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return Record(line, rid, None, "undecodable bytes or unpaired surrogates (the text is not valid UTF-8)")
    return Record(line, rid, text)


def _decode(raw: bytes, line: int) -> tuple[str | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"undecodable bytes at byte {exc.start} (the line is not UTF-8)"
    if line == 1 and text.startswith("\ufeff"):  # a byte-order mark is not part of the first text
        text = text[1:]
    return text, None


def _text_lines(fh: IO[bytes]) -> Iterator[Record]:
    for line, raw in enumerate(fh, 1):
        text, error = _decode(raw.rstrip(b"\r\n"), line)
        if error:
            yield Record(line, line, None, error)
        elif text is not None and text.strip():  # blank lines are not texts
            yield _ok(line, line, text)


_JSON_TYPES = {dict: "an object", list: "an array", int: "a number", float: "a number", bool: "a boolean"}


def _jsonl(fh: IO[bytes], text_field: str, id_field: str) -> Iterator[Record]:
    for line, raw in enumerate(fh, 1):
        if not raw.strip():
            continue
        decoded, error = _decode(raw, line)
        if error or decoded is None:
            yield Record(line, line, None, error)
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as exc:
            yield Record(line, line, None, f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            yield Record(line, line, None, f"not a JSON object but {_JSON_TYPES.get(type(obj), 'a string')}")
            continue
        rid = obj.get(id_field)
        rid = line if rid is None else rid
        if text_field not in obj:
            yield Record(line, rid, None, f"missing field '{text_field}'")
            continue
        text = obj[text_field]
        if not isinstance(text, str):
            kind = "null" if text is None else _JSON_TYPES.get(type(text), type(text).__name__)
            yield Record(line, rid, None, f"field '{text_field}' is {kind}, not a string")
            continue
        yield _ok(line, rid, text)


def _csv(fh: IO[bytes], name: str, text_field: str, id_field: str, delimiter: str) -> Iterator[Record]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row does not stop the file:
    # `_ok` then reports that row.
    wrapper = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(wrapper, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        if text_field not in header:
            shown = ", ".join(h.encode("utf-8", "replace").decode() for h in header[:20])
            raise InputError(f"{name} has no column '{text_field}' (columns: {shown}): pass --text-field")
        ti = header.index(text_field)
        ii = header.index(id_field) if id_field in header else None
        last = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(last + 1, last + 1, None, f"malformed CSV ({exc})")
                last = reader.line_num
                continue
            line, last = last + 1, reader.line_num
            if not row:
                continue
            rid: Any = row[ii] if ii is not None and ii < len(row) and row[ii] != "" else line
            if isinstance(rid, str):
                rid = rid.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if ti >= len(row):
                yield Record(line, rid, None, f"missing field '{text_field}' (the row has {len(row)} columns)")
                continue
            text = row[ti]
            yield _ok(line, rid, text)
    finally:
        wrapper.detach()  # the caller owns (and closes) the binary handle


def _parquet(path: Path, text_field: str, id_field: str) -> Iterator[Record]:
    if str(path) == "-":
        raise InputError("Parquet cannot be read from stdin: pass a file")
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"cannot read input {path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid & co for a bad file
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from None
    schema = pf.schema_arrow
    if text_field not in schema.names:
        raise InputError(f"{path} has no column '{text_field}' (columns: {', '.join(schema.names)}): pass --text-field")
    kind = schema.field(text_field).type
    is_text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if not (is_text or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        raise InputError(f"{path}: column '{text_field}' has type {kind}, not string: pass the text column")
    columns = [text_field] + ([id_field] if id_field in schema.names and id_field != text_field else [])
    row = 0
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=columns):
        texts = batch.column(text_field).to_pylist()
        ids = batch.column(id_field).to_pylist() if len(columns) > 1 else [None] * len(texts)
        for value, rid in zip(texts, ids, strict=True):
            row += 1
            rid = row if rid is None else rid
            if value is None:
                yield Record(row, rid, None, f"field '{text_field}' is null")
                continue
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield Record(row, rid, None, f"undecodable bytes at byte {exc.start} (not UTF-8)")
                    continue
            yield _ok(row, rid, value)
