"""The progress record of a file scan (OUTPUT's name + ".progress.json"), shared by both engines: what a
scan must match to be resumed, how the record is started, checked, saved and summarised. The commit
protocol that writes it is `scan.ScanCheckpoint`'s.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmscan.errors import InputError

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


def scan_identity(
    source: str | Path, fmt_in: str, text_field: str, id_field: str, *, bundle_fingerprint: str, variant: str,
    thresholds: dict[str, float], fmt_out: str, spans: bool,
) -> dict[str, Any]:
    """What a resumed scan must share with the one it continues, else its output would mix two scans.
    `source` '-' is stdin (no file to stat)."""
    ident: dict[str, Any] = {"path": "-", "format": fmt_in, "text_field": text_field, "id_field": id_field}
    if str(source) != "-":
        path = Path(source)
        try:
            st = path.stat()
        except OSError as exc:
            raise InputError(f"cannot read input {path}: {exc.strerror}") from None
        ident.update(path=str(path.resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
    return {
        "input": ident,
        "bundle": bundle_fingerprint,
        "variant": variant,
        "thresholds": dict(thresholds),
        "output_format": fmt_out,
        "spans": spans,
    }


def first_error(errors_file: Path) -> str | None:
    try:
        with open(errors_file, encoding="utf-8") as fh:
            row = json.loads(fh.readline())
        return f"line {row['line']}: {row['error']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- progress record -------------------------------------------------------------------------------------
def start_state(
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
    return {
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


def _check_same_scan(ppath: Path, saved: dict[str, Any], identity: dict[str, Any]) -> None:
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


def save_state(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    state = {**state, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ppath = progress_path(out)
    tmp = ppath.with_name(f".{ppath.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, ppath)
    return state
