"""A user's own labelled file, for `harmscan thresholds --labels` and `harmscan calibrate --labels`.

CSV / TSV / JSONL / Parquet with a text column and one 0/1 column per label, named as the bundle names its
labels. Empty (or null, or a missing JSONL key) means unknown for that row; a label with no column is
unknown for every row, so it is neither tuned nor counted. A scan output joined with labels works too: its
`scores` (a JSONL object or Parquet struct; in CSV, columns `scores.<label>`) are used as they are, so no
model has to run.

Everything is read into memory (a labelled set is thousands of rows, not a corpus) and checked before any
scoring, so that a bad file costs one line naming the file, the column and the row, not a scoring run.
Pure numpy and the standard library (pyarrow for Parquet): it runs on the base install.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.classifiers.records import detect_input_format
from harmscan.errors import InputError, require

SCORES = "scores"
_TRUE, _FALSE = {"1", "1.0", "true"}, {"0", "0.0", "false"}


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    names: list[str]  # label order of the arrays
    present: list[str]  # labels with a column in the file
    texts: list[str] | None  # None when the file has no text column (its scores are then used)
    scores: np.ndarray | None  # [n, L] probabilities from a scan output, None when the file has none
    labels: np.ndarray  # [n, L] int8, 0 where unknown
    mask: np.ndarray  # [n, L] bool, True where known

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def read_labelled(
    path: str | Path, label_names: Sequence[str] | None = None, *, text_field: str = "text", need_text: bool = False,
    require_both_classes: bool = True,
) -> LabelledFile:
    """Read and check `path`. `label_names`: the bundle's labels (None: the labels of the file's scores).
    `need_text`: the texts must be there even when scores are (calibration needs the model's raw logits).
    `require_both_classes`: every label column needs a 0 and a 1 row (tuning does; `redteam` only attacks
    the positives)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cannot read labels file {path}: no such file")
    fmt = detect_input_format(path)
    if fmt == "text":
        raise InputError(f"{path}: a labels file needs columns (CSV, TSV, JSONL or Parquet), not plain text")
    columns, rows = _read_rows(path, fmt)
    flat_scores = sorted(c[len(SCORES) + 1 :] for c in columns if c.startswith(SCORES + "."))
    has_scores = SCORES in columns or bool(flat_scores)
    if label_names is None:
        if not has_scores:
            raise InputError(f"{path} has no '{SCORES}' (a scan output's): pass --bundle to score its texts")
        label_names = flat_scores or _score_keys(path, rows)
    names = list(label_names)
    present = [n for n in names if n in columns]
    if not present:
        raise InputError(
            f"{path} has no label column: expected a 0/1 column named after one of the labels "
            f"{', '.join(names)} (columns: {', '.join(sorted(columns)[:20])})"
        )
    use_text = need_text or not has_scores
    if use_text and text_field not in columns:
        raise InputError(
            f"{path} has no column '{text_field}' (columns: {', '.join(sorted(columns)[:20])}): pass --text-field"
        )
    n, n_labels = len(rows), len(names)
    labels = np.zeros((n, n_labels), dtype=np.int8)
    mask = np.zeros((n, n_labels), dtype=bool)
    texts: list[str] | None = [] if use_text else None
    scores = np.zeros((n, n_labels), dtype=np.float64) if has_scores and not use_text else None
    for i, (where, row) in enumerate(rows):
        if texts is not None:
            text = row.get(text_field)
            if not isinstance(text, str) or not text.strip():
                kind = "empty" if text is None or isinstance(text, str) else f"{type(text).__name__}, not text"
                raise InputError(f"{path} {where}, column '{text_field}': the text is {kind}")
            texts.append(text)
        for j, name in enumerate(names):
            value = _label(row.get(name), path, where, name)
            if value is not None:
                labels[i, j], mask[i, j] = value, True
        if scores is not None:
            scores[i] = [_score(row, name, path, where) for name in names]
    for name in present:
        j = names.index(name)
        known = mask[:, j]
        pos = int(labels[known, j].sum())
        if require_both_classes and (pos == 0 or pos == int(known.sum())):
            missing = "positive (1)" if pos == 0 else "negative (0)"
            raise InputError(
                f"{path}, column '{name}': no {missing} row among its {int(known.sum())} known rows, so no "
                "threshold or calibration can be chosen for it: add such rows, or drop the column (then it is unknown)"
            )
    return LabelledFile(path, names, present, texts, scores, labels, mask)


def _label(value: Any, path: Path, where: str, column: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return None  # pandas writes unknown as NaN
        if value in (0, 1):
            return int(value)
    elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return int(value.strip().lower() in _TRUE)
    raise InputError(f"{path} {where}, column '{column}': {value!r} is not 0, 1 or empty (unknown)")


def _score(row: dict[str, Any], name: str, path: Path, where: str) -> float:
    nested = row.get(SCORES)
    value = nested.get(name) if isinstance(nested, dict) else row.get(f"{SCORES}.{name}")
    try:
        p = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        p = math.nan
    if not 0.0 <= p <= 1.0:
        raise InputError(f"{path} {where}, column '{SCORES}.{name}': {value!r} is not a probability in [0, 1]")
    return p


def _score_keys(path: Path, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    for where, row in rows:
        nested = row.get(SCORES)
        if isinstance(nested, dict) and nested:
            return [str(k) for k in nested]
        if nested is not None:
            raise InputError(f"{path} {where}, column '{SCORES}': not a mapping of label -> probability")
    raise InputError(f"{path}: column '{SCORES}' is empty on every row")


# -- readers: (columns, [(where, row)]) -------------------------------------------------------------------
def _read_rows(path: Path, fmt: str) -> tuple[set[str], list[tuple[str, dict[str, Any]]]]:
    if fmt == "parquet":
        return _parquet(path)
    if fmt == "jsonl":
        rows = list(_jsonl(path))
        columns: set[str] = set()
        for _, row in rows:
            columns.update(row)
        return columns, rows
    return _csv(path, "\t" if fmt == "tsv" else ",")


def _csv(path: Path, delimiter: str) -> tuple[set[str], list[tuple[str, dict[str, Any]]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            rows = [(f"line {reader.line_num}", dict(row)) for row in reader]
            header = reader.fieldnames or []
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (undecodable byte at offset {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{path} is not valid CSV: {exc}") from None
    return set(header), rows


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError(f"{path} line {number}: not UTF-8") from None
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path} line {number}: not a JSON object")
            yield f"line {number}", obj


def _parquet(path: Path) -> tuple[set[str], list[tuple[str, dict[str, Any]]]]:
    pq = require("pyarrow.parquet", "parquet")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid & co for a bad file
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from None
    return set(table.column_names), [(f"row {i}", row) for i, row in enumerate(table.to_pylist(), 1)]
