"""Optional audit log for governance reviews (HARMSCAN_AUDIT_LOG=path.jsonl).

One JSON line per scored text: time, request id, endpoint, index in the request, sha256 of the text (never
the text itself), scores, flagged labels, decision, and the bundle fingerprint, so a reviewer can show which
model and thresholds made a decision on a given (hashed) text.

What makes the log trustworthy (docs/serving.md#logs-privacy-and-the-audit-log):
- checked at start-up: `harmscan serve` refuses to start when the path cannot be opened for appending;
- whole lines: all records of a request go out in one O_APPEND write(); a write cut short (disk full) is a
  failure, and the next write starts on a fresh line, so a torn record never merges with the next one;
- rotation: before each write the path is compared with the open file (device, inode); when logrotate or
  a person renamed or deleted it, the path is opened again instead of writing into the old file;
- fail closed: when records cannot be written, `record` raises AuditUnavailable (HTTP 503) so no decision
  leaves the server unaudited, and `ready()` stays False until a retry finds the log writable again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harmscan.errors import InputError
from harmscan.serving.errors import SERVER_ERROR, RequestError

log = logging.getLogger("harmscan.serving")

# After a failed write, readiness stays false this long before the log is tried again (reopened, and the
# device checked for free space): long enough for a load balancer to drain the replica.
RETRY_AFTER_S = 5.0
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class AuditUnavailable(RequestError):
    def __init__(self) -> None:
        super().__init__(
            "the audit log cannot be written, so no decision is returned (the server fails closed): retry "
            "later; the operator must check HARMSCAN_AUDIT_LOG (disk full or not writable)",
            status=503, type=SERVER_ERROR, code="audit_unavailable",
            headers={"Retry-After": str(int(RETRY_AFTER_S))})


def text_sha256(text: str) -> str:
    # surrogatepass: a str can hold lone surrogates; hashing must not fail on them.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def open_audit_file(path: str | os.PathLike[str]) -> int:
    """An O_APPEND descriptor on `path` (its folder created), or an InputError in one line."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: several server workers may share one file; each request's lines are one write() call.
        return os.open(p, _FLAGS, 0o640)
    except OSError as exc:
        raise InputError(f"cannot open the audit log {p}: {exc.strerror}; "
                         "point HARMSCAN_AUDIT_LOG (--audit-log) at a writable file") from None


def check_audit_path(path: str | os.PathLike[str]) -> None:
    """Start-up check: refuse to serve when the audit log cannot be opened for appending."""
    os.close(open_audit_file(path))


class AuditLog:
    def __init__(self, path: str | os.PathLike[str], bundle_fingerprint: str) -> None:
        self.path = Path(path)
        self.bundle = bundle_fingerprint
        self._lock = threading.Lock()
        self._fd = open_audit_file(self.path)
        self._torn = False  # the last write stopped mid-line: the next one starts with a line break
        self._failed_at: float | None = None

    def record(self, request_id: str, endpoint: str, texts: Sequence[str],
               results: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        lines = []
        for i, (text, res) in enumerate(zip(texts, results, strict=True)):
            lines.append(json.dumps({
                "time": now, "request_id": request_id, "endpoint": endpoint, "index": i,
                "sha256": text_sha256(text), "scores": res["scores"], "flagged": res["flagged"],
                "decision": res["decision"], "bundle": self.bundle,
            }, separators=(",", ":")))
        self._append(lines)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Append ready-made records (the gateway's interventions, harmscan.classifiers.guard)."""
        self._append([json.dumps({**r, "bundle": r.get("bundle") or self.bundle}, separators=(",", ":"))
                      for r in records])

    def ready(self) -> bool:
        """False while records cannot be written. RETRY_AFTER_S after a failure the log is reopened and its
        device checked for free space; when both succeed the server is ready again."""
        with self._lock:
            if self._failed_at is None:
                return True
            if time.monotonic() - self._failed_at < RETRY_AFTER_S:
                return False
            try:
                self._reopen()
                if os.fstatvfs(self._fd).f_bavail == 0:
                    raise OSError("no space left on the device")
            except (OSError, InputError):
                self._failed_at = time.monotonic()
                return False
            self._failed_at = None
            log.warning("audit log %s is writable again: serving resumes", self.path)
            return True

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            if self._failed_at is not None:
                raise AuditUnavailable()  # fail closed until ready() finds the log writable
            data = (("\n" if self._torn else "") + "\n".join(lines) + "\n").encode("utf-8")
            try:
                written = os.write(self._current_fd(), data)
            except (OSError, InputError) as exc:
                self._fail(getattr(exc, "strerror", None) or str(exc))
                raise AuditUnavailable() from None
            if written != len(data):
                # A regular file takes a write whole unless its disk fills: the record is torn. Refuse the
                # request; the next write starts on a new line so the fragment cannot corrupt it.
                self._torn = written > 0 or self._torn
                self._fail(f"short write ({written} of {len(data)} bytes)")
                raise AuditUnavailable()
            self._torn = False

    def _current_fd(self) -> int:
        """The descriptor to write to: the open file, unless the path now names another file or none."""
        try:
            on_disk = os.stat(self.path)
            opened = os.fstat(self._fd)
            if (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino):
                return self._fd
        except FileNotFoundError:
            pass
        log.info("audit log %s was rotated or removed: reopening it", self.path)
        self._reopen()
        return self._fd

    def _reopen(self) -> None:
        fd = open_audit_file(self.path)
        old, self._fd = self._fd, fd
        try:
            before, now = os.fstat(old), os.fstat(fd)
            if (before.st_dev, before.st_ino) != (now.st_dev, now.st_ino):
                self._torn = False  # another file: its end is not a fragment this process wrote
            os.close(old)
        except OSError:
            self._torn = False

    def _fail(self, why: str) -> None:
        if self._failed_at is None:
            log.error("audit log %s cannot be written (%s): refusing requests and reporting not ready",
                      self.path, why)
        self._failed_at = time.monotonic()

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
