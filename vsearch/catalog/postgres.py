"""The catalog on PostgreSQL: one database shared by many ingest workers and API nodes.

The same logic as the SQLite catalog (base.Catalog) over a psycopg 3 connection pool; migrations are the
same list with PostgreSQL's types (dialect.POSTGRES), recorded in `schema_migrations` and applied under an advisory lock so
that two nodes starting together migrate once. Writers to the change log take a transaction-level advisory lock
just before appending, so log sequence numbers become visible in commit order: a follower that has read sequence
n never later finds a smaller one (a plain sequence would let a slow transaction commit a smaller number late).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import vsearch.catalog.partitions as partitions
from vsearch.catalog.base import Catalog
from vsearch.catalog.dialect import POSTGRES
from vsearch.errors import InputError

log = logging.getLogger("vsearch.catalog")
_MIGRATION_LOCK = 7_311_001  # advisory lock ids (arbitrary, fixed)
_LOG_LOCK = 7_311_002
_AUDIT_LOCK = 7_311_003
_ALERT_LOCK = 7_311_004


class _PgTx:
    """A psycopg connection inside a transaction as the catalog's `Db` (statements in PostgreSQL's dialect)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence = ()) -> Any:
        return self._conn.execute(POSTGRES.sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> Any:
        rows = [tuple(r) for r in rows]
        with self._conn.cursor() as cur:
            if rows:
                cur.executemany(POSTGRES.sql(sql), rows)
            return cur


class PostgresCatalog(Catalog):
    """The shared catalog: `postgresql://user@host:port/db`."""

    dialect = POSTGRES
    _BOX_KEY = "video_id, track_id, pts, ts"  # track_boxes is partitioned by ts (catalog/partitions.py)

    def __init__(self, url: str, pool_size: int = 4) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise InputError(f"a PostgreSQL catalog needs psycopg[binary,pool]: {e}") from None
        self.url = url
        try:  # one direct attempt first: a refused connection or a wrong password is reported at once, with its reason
            psycopg.connect(url, connect_timeout=15).close()
        except psycopg.Error as e:
            reason = " ".join(str(e).split())  # one line: the driver's hint is on a second one
            raise InputError(f"cannot connect to the catalog at {_redact(url)}: {reason}") from None
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True})
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as e:
            self._pool.close()
            raise InputError(f"cannot connect to the catalog at {_redact(url)}: {e}") from None
        self._errors = psycopg.Error
        self._open = threading.local()  # .conn: this thread's connection while a transaction is open on it
        self._closed = threading.Event()
        self._days: set[int] = set()  # UTC days known to have their partitions (catalog/partitions.py)
        self._migrate()
        self._ensure_days(set(range(partitions.today(), partitions.today() + partitions.AHEAD_DAYS + 1)))

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    @property
    def schema_version(self) -> int:
        return int(self._q("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])

    @property
    def _where(self) -> str:
        return _redact(self.url)

    def _schema_version_for_migration(self, db: Any) -> int:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))  # two nodes starting together migrate once
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])

    def _record_migration(self, db: Any, version: int, what: str) -> None:
        db.execute("INSERT INTO schema_migrations (version, description) VALUES (?, ?)", (version, what))

    @contextmanager
    def _tx(self) -> Iterator[_PgTx]:
        """One transaction on a pooled connection; inside another on this thread, it joins it (same connection)."""
        if (conn := getattr(self._open, "conn", None)) is not None:
            yield _PgTx(conn)
            return
        with self._pool.connection() as conn:
            with conn.transaction():
                self._open.conn = conn
                try:
                    yield _PgTx(conn)
                finally:
                    self._open.conn = None

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        if (open_conn := getattr(self._open, "conn", None)) is not None:  # inside a transaction: see its writes
            return list(open_conn.execute(self.dialect.sql(sql), tuple(args)).fetchall())
        with self._pool.connection() as conn:
            return list(conn.execute(self.dialect.sql(sql), tuple(args)).fetchall())

    def _select_ids(self, sql: str, column: str, ids: Sequence[int], before: Sequence = ()) -> list[tuple]:
        if not ids:
            return []
        return self._q(sql.format(f"{column} = ANY(?)"), (*before, list(ids)))

    def _insert_id(self, db: Any, sql: str, args: Sequence) -> int:
        return int(db.execute(sql + " RETURNING id", args).fetchone()[0])

    def _partition_by_day(self, db: Any) -> None:
        partitions.convert(db)

    def _ensure_days(self, days: set[int]) -> None:
        """On a connection of its own, in a transaction of its own: never inside the caller's (whose locks it would
        hold until the caller commits); each day is looked up once per process."""
        if not (missing := days - self._days):
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                # a lock this waits for may be held by the caller's own open transaction: give up rather than wait
                conn.execute("SET LOCAL lock_timeout = '5s'")
                self._days |= partitions.ensure_days(_PgTx(conn), missing)
        except self._errors as e:  # the rows go to the default partition: an ingest never fails for want of a day
            log.warning("no partition made for days %s: %s", sorted(missing), " ".join(str(e).split()))

    def _day_partitions(self, table: str) -> list[int]:
        with self._tx() as db:
            return partitions.existing_days(db, table)

    def _drop_day_partition(self, db: Any, table: str, day: int) -> bool:
        self._days.discard(day)
        return partitions.drop_day(db, table, day)

    def _order_log(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_LOG_LOCK,))

    def _order_audit(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_AUDIT_LOCK,))

    def _order_alerts(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_ALERT_LOCK,))


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"
