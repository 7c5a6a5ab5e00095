"""Append-only audit log of searches (JSON lines, fsync'd): who searched for whom, when, and what came back."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any


class AuditLog:
    """The audit log file: one JSON object per line, appended and fsync'd under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

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
        """Records newest first, skipping `offset`; memory bounded by offset + limit lines."""
        if not self.path.exists():
            return []
        with self._lock, open(self.path, encoding="utf-8") as f:
            lines = deque(f, maxlen=offset + limit)
        return [json.loads(line) for line in reversed(lines)][offset:]
