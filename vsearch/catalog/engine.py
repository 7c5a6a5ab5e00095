"""What the catalog's SQL needs from an engine: transactions, queries, id lists, inserted ids, the log's order.

SQLite (sqlite.py) and PostgreSQL (postgres.py) implement it; everything above it (base.py, cases.py, marks.py)
is written once, with `?` placeholders that the engine's `Dialect` restyles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from vsearch.catalog.dialect import Dialect
from vsearch.catalog.schema import MIGRATIONS, SCHEMA_VERSION, STEPS
from vsearch.errors import IndexStateError


def window_conditions(
    from_ts_s: float | None, to_ts_s: float | None, cameras: Sequence[str] | None
) -> tuple[list[str], list[object]]:
    """SQL conditions (on columns `ts` and `camera_id`) and their arguments for a time window and cameras."""
    where: list[str] = []
    args: list[object] = []
    if from_ts_s is not None:
        where.append("ts >= ?")
        args.append(from_ts_s)
    if to_ts_s is not None:
        where.append("ts <= ?")
        args.append(to_ts_s)
    if cameras:
        where.append(f"camera_id IN ({','.join('?' * len(cameras))})")
        args.extend(cameras)
    return where, args


class Db(Protocol):
    """The part of a DB-API connection the catalog uses inside a transaction."""

    def execute(self, sql: str, args: Sequence = ()) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Sequence]) -> Any: ...


class SqlEngine:
    """One SQL engine under the catalog; subclasses implement the methods that raise NotImplementedError."""

    dialect: Dialect

    def close(self) -> None:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Db]:
        """One write transaction; its statements are written with `?` placeholders. Opened inside `transaction()`
        (on the same thread), it joins that one instead."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Db]:
        """One transaction that every catalog call made inside it on this thread joins: its reads see its writes,
        and its changes commit together at the end, or none of them (an exception rolls all back)."""
        return self._tx()

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        """The rows of one statement run alone."""
        raise NotImplementedError

    def _select_ids(self, sql: str, column: str, ids: Sequence[int], before: Sequence = ()) -> list[tuple]:
        """Rows of `sql`, whose `{}` stands for the condition "`column` is one of `ids`" (`before`: the values of
        the placeholders before it)."""
        raise NotImplementedError

    def _insert_id(self, db: Db, sql: str, args: Sequence) -> int:
        """Run an INSERT of one row; its new id."""
        raise NotImplementedError

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction: the migrations after the catalog's version, in
        order, each recorded as it is applied. A catalog of a newer vsearch is refused, untouched."""
        with self._tx() as db:
            version = self._schema_version_for_migration(db)
            if version > SCHEMA_VERSION:
                raise IndexStateError(
                    f"catalog {self._where} has schema version {version}, newer than this vsearch knows"
                    f" ({SCHEMA_VERSION}): upgrade vsearch"
                )
            for v, what, sql in MIGRATIONS:
                if v > version:
                    for stmt in self.dialect.ddl(sql):
                        db.execute(stmt)
                    if v in STEPS:
                        getattr(self, STEPS[v])(db)
                    self._record_migration(db, v, what)

    @property
    def _where(self) -> str:
        """The catalog's location for messages (no password)."""
        raise NotImplementedError

    def _schema_version_for_migration(self, db: Db) -> int:
        """The schema version, read inside the migration's transaction (and whatever the engine needs first to
        migrate alone)."""
        raise NotImplementedError

    def _record_migration(self, db: Db, version: int, what: str) -> None:
        raise NotImplementedError

    def _partition_by_day(self, db: Db) -> None:
        """Migration 19's step: the large tables partitioned by day (PostgreSQL, catalog/partitions.py); none on
        SQLite."""

    def _ensure_days(self, days: set[int]) -> None:
        """Before rows of these UTC days are written: their partitions exist (PostgreSQL); nothing on SQLite."""

    def _day_partitions(self, table: str) -> list[int]:
        """The UTC days `table` has a partition of (PostgreSQL); none on SQLite."""
        return []

    def _drop_day_partition(self, db: Db, table: str, day: int) -> bool:
        """Drop `table`'s partition of `day` in the transaction `db`; False when there is none."""
        return False

    def _order_log(self, db: Db) -> None:
        """Called in a transaction before it appends to the change log: log sequence numbers must become visible
        in order (a follower that has read sequence n never later finds a smaller one)."""

    def _order_audit(self, db: Db) -> None:
        """Called in a transaction before it appends to the audit table: entries are numbered and become visible in
        order, without gaps (a reader that has read entry n never later finds a smaller one)."""

    def _order_alerts(self, db: Db) -> None:
        """Called in a transaction before it appends to the alert log: events are numbered and become visible in
        order, without gaps (an API node that has streamed event n never later finds a smaller one)."""
