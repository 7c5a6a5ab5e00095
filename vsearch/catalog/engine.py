"""What the catalog's SQL needs from an engine: transactions, queries, id lists, inserted ids, the log's order.

SQLite (sqlite.py) and PostgreSQL (postgres.py) implement it; everything above it (base.py, cases.py, marks.py)
is written once, with `?` placeholders that the engine's `Dialect` restyles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from vsearch.catalog.dialect import Dialect


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
        """One write transaction; its statements are written with `?` placeholders."""
        raise NotImplementedError

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

    def _order_log(self, db: Db) -> None:
        """Called in a transaction before it appends to the change log: log sequence numbers must become visible
        in order (a follower that has read sequence n never later finds a smaller one)."""
