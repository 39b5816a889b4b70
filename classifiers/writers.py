"""Output rows and resumable writers for `harmscan scan` (and the Ray engine).

Row schema (the one the evaluation tools read):
    {"id": ..., "scores": {label: probability}, "flagged": [labels], "decision": "flag" | "allow",
     "language": ISO 639-1 code | "und"}
plus "span" and "windows" when spans are asked for.

Writers append rows and make them durable on `commit()`, which returns a small state dict. Saving that state
after each commit (see scan.py) is what makes a resumed scan exact: reopening a writer with the last saved
state throws away whatever was written after it, so no row is lost or written twice, whatever the moment
the process was killed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from harmscan.errors import InputError, require

if TYPE_CHECKING:  # the row functions need no onnxruntime
    from harmscan.classifiers.classifier import ScanResult

OUTPUT_FORMATS = ("jsonl", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
SCORE_DIGITS = 6  # probabilities to 1e-6: far below any threshold's resolution, and a third of the bytes


def result_row(rid: Any, result: ScanResult, spans: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": rid,
        "scores": {name: round(p, SCORE_DIGITS) for name, p in result.scores.items()},
        "flagged": list(result.flagged),
        "decision": result.decision,
        "language": result.language,
    }
    if spans:
        row["span"] = result.span
        row["windows"] = result.windows
    return row


def error_row(line: int, rid: Any, error: str) -> dict[str, Any]:
    return {"line": line, "id": rid, "error": error}


def detect_output_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in OUTPUT_FORMATS:
            raise InputError(f"unknown output format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            f"cannot tell the output format of {path} from its suffix {suffix or '(none)'}: "
            "name it .jsonl or .parquet, or pass --output-format"
        )
    return _SUFFIXES[suffix]


class RowWriter(Protocol):
    rows: int

    def write(self, rows: list[dict[str, Any]]) -> None: ...
    def commit(self) -> dict[str, Any]: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class JsonlWriter:
    """JSON lines, appended; `commit()` fsyncs and returns {"bytes", "rows"}. The file is created on the first
    row, so an errors file only appears when there are errors; `keep_empty` makes `finish()` leave an empty
    file when there were none (a scan's output: an empty input gives an empty, valid JSONL file)."""

    def __init__(self, path: Path, state: dict[str, Any] | None = None, keep_empty: bool = False) -> None:
        self.path = path
        self.keep_empty = keep_empty
        self.rows = int(state["rows"]) if state else 0
        self._offset = int(state["bytes"]) if state else 0
        self._fh: Any = None
        if state is None:
            path.unlink(missing_ok=True)
        elif self._offset or path.exists():
            size = path.stat().st_size if path.exists() else -1
            if size < self._offset:
                raise InputError(
                    f"{path} is shorter than the {self._offset} bytes the interrupted scan committed: it was "
                    "modified, so the scan cannot be resumed exactly; rerun with --overwrite"
                )
            self._open().truncate(self._offset)  # drop rows written after the last commit

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "r+b" if self.path.exists() else "w+b")  # noqa: SIM115 - closed in close()
        self._fh.seek(self._offset)
        return self._fh

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._fh is None:
            self._open()
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
        self._fh.write(data.encode("utf-8"))
        self.rows += len(rows)

    def commit(self) -> dict[str, Any]:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._offset = self._fh.tell()
        return {"bytes": self._offset, "rows": self.rows}

    def finish(self) -> None:
        self.close()
        if self.keep_empty and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class StreamWriter:
    """JSON lines to an open text stream (stdout for `-o -`). Nothing to resume: `commit()` only flushes,
    so a reader downstream of a pipe sees each chunk as soon as it is scored."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.stream.write("".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows))
        self.rows += len(rows)

    def commit(self) -> dict[str, Any]:
        self.stream.flush()
        return {"rows": self.rows}

    def finish(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        pass


class ParquetWriter:
    """Parquet, built from part files: a Parquet file is unreadable until its footer is written, so a scan
    killed midway could not keep a half-written one. Each commit writes a complete part file under
    OUTPUT.parts/ (written aside, then renamed into place); `finish()` merges the parts into OUTPUT, in row
    groups of about `ROW_GROUP` rows, and removes them. `commit()` returns {"parts", "rows"}."""

    ROW_GROUP = 65536

    def __init__(self, path: Path, labels: list[str], spans: bool, state: dict[str, Any] | None = None) -> None:
        self.pa = require("pyarrow", "parquet")
        self.pq = require("pyarrow.parquet", "parquet")
        self.path = path
        self.parts_dir = self.parts_of(path)
        self.parts = int(state["parts"]) if state else 0
        self.rows = int(state["rows"]) if state else 0
        self._pending: list[dict[str, Any]] = []
        self.schema = self._schema(labels, spans)
        shutil.rmtree(self._done_dir(), ignore_errors=True)
        if state is None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            path.unlink(missing_ok=True)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for part in self.parts_dir.iterdir():  # parts written after the last commit, or their temp files
            if not part.name.endswith(".parquet") or self._index(part) >= self.parts:
                part.unlink()
        missing = [i for i in range(self.parts) if not self._part(i).is_file()]
        if missing:
            raise InputError(f"{self.parts_dir} lacks committed part {missing[0]}: rerun with --overwrite")

    @staticmethod
    def parts_of(path: Path) -> Path:
        return path.with_name(path.name + ".parts")

    def _schema(self, labels: list[str], spans: bool) -> Any:
        pa = self.pa
        fields = [
            pa.field("id", pa.string()),  # ids of mixed types (numbers, strings) share one column as text
            pa.field("scores", pa.struct([pa.field(n, pa.float64()) for n in labels])),
            pa.field("flagged", pa.list_(pa.string())),
            pa.field("decision", pa.string()),
            pa.field("language", pa.string()),
        ]
        if spans:
            span = pa.struct([pa.field("start", pa.int64()), pa.field("end", pa.int64()), pa.field("label", pa.string())])
            fields += [pa.field("span", span), pa.field("windows", pa.int64())]
        return pa.schema(fields)

    def _part(self, index: int) -> Path:
        return self.parts_dir / f"part-{index:06d}.parquet"

    @staticmethod
    def _index(part: Path) -> int:
        try:
            return int(part.stem.split("-")[1])
        except (IndexError, ValueError):
            return 1 << 62

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._pending.append({**row, "id": None if row["id"] is None else str(row["id"])})

    def commit(self) -> dict[str, Any]:
        if self._pending:
            table = self.pa.Table.from_pylist(self._pending, schema=self.schema)
            tmp = self.parts_dir / f".tmp-{self.parts:06d}"
            self.pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self._part(self.parts))
            self.parts += 1
            self.rows += len(self._pending)
            self._pending = []
        return {"parts": self.parts, "rows": self.rows}

    def finish(self) -> None:
        """Merge the committed parts into the output file (streaming: about one row group in memory)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with self.pq.ParquetWriter(tmp, self.schema) as out:
            group: list[Any] = []
            for i in range(self.parts):
                group.append(self.pq.read_table(self._part(i), schema=self.schema))
                if sum(t.num_rows for t in group) >= self.ROW_GROUP or i == self.parts - 1:
                    out.write_table(self.pa.concat_tables(group), row_group_size=self.ROW_GROUP)
                    group = []
        os.replace(tmp, self.path)
        # Renamed away in one step, so that a kill during the removal never leaves a partial parts folder.
        os.replace(self.parts_dir, self._done_dir())
        shutil.rmtree(self._done_dir(), ignore_errors=True)

    def _done_dir(self) -> Path:
        return self.path.with_name(f".{self.path.name}.parts.done")

    def close(self) -> None:
        self._pending = []
