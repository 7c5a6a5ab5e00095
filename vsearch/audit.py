"""Append-only audit log (JSON lines, fsync'd): searches (who searched for whom, when, what came back), case
changes and evidence exports. One writer for the API and the CLI: both append to `audit.jsonl` in the data dir."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per file, shared by every AuditLog of this process on it (the API's and the service's)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())


class AuditLog:
    """The audit log file: one JSON object per line, appended (one write, O_APPEND) and fsync'd under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = _lock_for(path)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record, stamped with the UTC time, and fsync it before returning."""
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}, sort_keys=True)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())

    def read(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Records newest first, skipping `offset`; two passes over the file, memory bounded by `limit` lines."""
        if not self.path.exists():
            return []
        with self._lock, open(self.path, encoding="utf-8") as f:
            total = sum(1 for _ in f)
            stop = total - offset  # the page is lines [start, stop) counted from the oldest
            if stop <= 0:
                return []
            start = max(0, stop - limit)
            f.seek(0)
            lines = list(itertools.islice(f, start, stop))
        return [json.loads(line) for line in reversed(lines)]

    def matching(self, key: str, values: set[str]) -> list[dict[str, Any]]:
        """Records whose `key` is one of `values`, oldest first (reads the whole file: for exports, not queries)."""
        if not self.path.exists() or not values:
            return []
        with self._lock, open(self.path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        return [r for r in records if r.get(key) in values]
