"""The audit table behind its own small interface: one row per audit entry, numbered 1, 2, 3... without gaps.

An entry is appended inside the transaction of the change it describes (`Catalog.transaction()` joins them), so
the two commit together or not at all. Each row keeps the entry's exact JSON line (what `audit.jsonl` mirrors,
and what a hash chain over the log would hash) plus the columns the log is searched by.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from vsearch.catalog.engine import SqlEngine


def audit_line(seq: int, record: dict[str, Any]) -> str:
    """The entry's JSON line: the record, stamped with the UTC time (unless it has one) and its sequence number."""
    stamped = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record, "seq": seq}
    return json.dumps(stamped, sort_keys=True, default=str)


class AuditBook(SqlEngine):
    """The audit log's rows, over the catalog's SQL engine."""

    def append_audit(self, record: dict[str, Any]) -> str:
        """Append one entry (in the caller's transaction, if one is open); returns its line."""
        with self._tx() as db:
            self._order_audit(db)
            seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit").fetchone()[0])
            line = audit_line(seq, record)
            case_id, sha = record.get("case_id"), record.get("query_sha256")
            db.execute(
                "INSERT INTO audit (seq, time, action, key_name, case_id, query_sha256, line) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, str(json.loads(line)["time"]), _text(record.get("action")), _text(record.get("key_name")),
                 case_id if isinstance(case_id, int) and abs(case_id) < 2**63 else None, _text(sha), line),
            )  # fmt: skip
        return line

    def audit_after(self, seq: int, limit: int = 1000) -> list[tuple[int, str]]:
        """(seq, line) of the entries after `seq`, oldest first, at most `limit`."""
        return [(int(r[0]), r[1]) for r in self._q("SELECT seq, line FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))]

    def audit_last_seq(self) -> int:
        """The newest entry's number (0: none)."""
        return int(self._q("SELECT COALESCE(MAX(seq), 0) FROM audit")[0][0])

    def audit_page(self, limit: int, offset: int = 0) -> list[str]:
        """Lines newest first, skipping `offset`."""
        last = self.audit_last_seq()  # seq has no gaps: a page is a range of it (any offset, no OFFSET scan)
        hi, lo = last - min(offset, last), max(0, last - min(offset, last) - min(limit, last))
        return [r[0] for r in self._q("SELECT line FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq DESC", (lo, hi))]

    def audit_with_queries(self, query_sha256s: Collection[str]) -> list[str]:
        """Lines of the entries that name one of these query images, oldest first."""
        if not query_sha256s:
            return []
        marks = ",".join("?" * len(query_sha256s))
        return [r[0] for r in self._q(f"SELECT line FROM audit WHERE query_sha256 IN ({marks}) ORDER BY seq", tuple(query_sha256s))]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
