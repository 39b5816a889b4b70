"""Optional audit log for governance reviews (HARMSCAN_AUDIT_LOG=path.jsonl).

One JSON line per scored text: time, request id, endpoint, index in the request, sha256 of the text (never
the text itself), scores, flagged labels, decision, and the bundle fingerprint, so a reviewer can show which
model and thresholds made a decision on a given (hashed) text.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harmscan.errors import InputError


def text_sha256(text: str) -> str:
    # surrogatepass: a str can hold lone surrogates; hashing must not fail on them.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditLog:
    def __init__(self, path: str | os.PathLike[str], bundle_fingerprint: str) -> None:
        self.path = Path(path)
        self.bundle = bundle_fingerprint
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: several server workers may share one file; each line is one write() call.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise InputError(f"cannot open the audit log {self.path}: {exc.strerror}; "
                             "point HARMSCAN_AUDIT_LOG at a writable file") from None

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

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            view = memoryview(data)
            while view:  # a regular file takes it in one write() unless the disk fills
                view = view[os.write(self._fd, view):]

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
