"""The audit table behind its own small interface: one row per audit entry, numbered 1, 2, 3... without gaps.

An entry is appended inside the transaction of the change it describes (`Catalog.transaction()` joins them), so
the two commit together or not at all. Each row keeps the entry's exact JSON line (what `audit.jsonl` mirrors)
plus the columns the log is searched by, and `hash`: sha256 of the previous row's hash and this line, so every
row vouches for all before it (`chain_hash`). Rows may only be appended: UPDATE and DELETE on the table are
refused by triggers (migration 14), and `audit_verify` finds a row edited, inserted or removed behind them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from vsearch.catalog.engine import Db, SqlEngine

GENESIS = ""  # the hash before the first entry
_VERIFY_PAGE = 5000


def audit_line(seq: int, record: dict[str, Any]) -> str:
    """The entry's JSON line: the record, stamped with the UTC time (unless it has one) and its sequence number."""
    stamped = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record, "seq": seq}
    return json.dumps(stamped, sort_keys=True, default=str)


def chain_hash(previous: str, line: str) -> str:
    """The hash of an entry: sha256 over the previous entry's hash, a newline and the entry's line (hex)."""
    return hashlib.sha256(f"{previous}\n{line}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list: by key name (`user`), case, action and a time range (ISO 8601 UTC text, as logged)."""

    user: str | None = None
    case_id: int | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class ChainProblem:
    """One place where the audit table is not the chain it was written as."""

    seq: int
    problem: str


class AuditBook(SqlEngine):
    """The audit log's rows, over the catalog's SQL engine."""

    def append_audit(self, record: dict[str, Any]) -> str:
        """Append one entry (in the caller's transaction, if one is open); returns its line."""
        with self._tx() as db:
            self._order_audit(db)
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, previous = (int(last[0]) + 1, last[1] or GENESIS) if last else (1, GENESIS)
            line = audit_line(seq, record)
            case_id, sha = record.get("case_id"), record.get("query_sha256")
            db.execute(
                "INSERT INTO audit (seq, time, action, key_name, case_id, query_sha256, line, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, str(json.loads(line)["time"]), _text(record.get("action")), _text(record.get("key_name")),
                 case_id if isinstance(case_id, int) and abs(case_id) < 2**63 else None, _text(sha), line,
                 chain_hash(previous, line)),
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


    def audit_find(self, where: AuditFilter, limit: int = 1000, before_seq: int | None = None) -> list[str]:
        """Lines of the entries that match `where`, newest first, at most `limit`, older than `before_seq` if given
        (the next page starts before the last seq of this one)."""
        conds = ["seq < ?"]
        args: list[object] = [before_seq if before_seq is not None else 2**62]
        for column, value in (("key_name", where.user), ("case_id", where.case_id), ("action", where.action)):
            if value is not None:
                conds.append(f"{column} = ?")
                args.append(value)
        if where.since is not None:
            conds.append("time >= ?")
            args.append(where.since)
        if where.until is not None:
            conds.append("time < ?")
            args.append(where.until)
        sql = f"SELECT line FROM audit WHERE {' AND '.join(conds)} ORDER BY seq DESC LIMIT ?"
        return [r[0] for r in self._q(sql, (*args, limit))]

    def audit_chain(self) -> Iterator[tuple[int, str, str | None]]:
        """(seq, line, hash) of every entry, oldest first, a page at a time."""
        seq = 0
        while rows := self._q("SELECT seq, line, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, _VERIFY_PAGE)):
            yield from ((int(r[0]), r[1], r[2]) for r in rows)
            seq = int(rows[-1][0])

    def audit_verify(self) -> tuple[list[ChainProblem], int, str]:
        """Check the chain: every entry's number follows the one before (a gap: entries removed), its line holds its
        own number (a line moved or inserted) and its hash is that of the previous hash and its line (the line was
        edited, or an entry before it was removed, inserted or re-hashed). Returns the problems, the last seq and
        its hash (the head: kept elsewhere, it proves later that nothing was cut off the end)."""
        problems: list[ChainProblem] = []
        expected, previous = 1, GENESIS
        for seq, line, stored in self.audit_chain():
            if seq != expected:
                gone = f"entry {expected}" if seq == expected + 1 else f"entries {expected} to {seq - 1}"
                problems.append(ChainProblem(seq, f"{gone} removed (the log jumps from {expected - 1} to {seq})"))
            try:
                own = json.loads(line).get("seq")
            except (ValueError, AttributeError):
                own = None
            if own != seq:
                problems.append(ChainProblem(seq, f"entry {seq}: its line says seq {own} (a line inserted, moved or rewritten)"))
            if stored != chain_hash(previous, line):
                problems.append(ChainProblem(seq, f"entry {seq}: its hash does not match its line and the entry before"
                                                  " (the line was edited, or an entry before it removed, inserted or re-hashed)"))  # fmt: skip
            expected, previous = seq + 1, stored or GENESIS
        return problems, expected - 1, previous

    def _chain_audit(self, db: Db) -> None:
        """Migration 14: chain the entries written before it (once, in seq order), then make the table append-only."""
        previous, seq = GENESIS, 0
        while rows := db.execute("SELECT seq, line FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, _VERIFY_PAGE)).fetchall():
            for s, line in rows:
                previous = chain_hash(previous, line)
                db.execute("UPDATE audit SET hash = ? WHERE seq = ?", (previous, s))
            seq = int(rows[-1][0])
        for stmt in self.dialect.append_only("audit"):
            db.execute(stmt)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
