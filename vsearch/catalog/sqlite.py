"""The embedded catalog: one SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vsearch.catalog.base import Catalog
from vsearch.catalog.dialect import SQLITE
from vsearch.catalog.engine import Db
from vsearch.errors import StorageError


class SqliteCatalog(Catalog):
    """The embedded catalog: one SQLite file in WAL mode; safe to share between threads (one connection, serialised
    by a lock) and between processes (SQLite's file locks; writers take the write lock at BEGIN IMMEDIATE, so
    SQLite commits, and the change log, are in one order)."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=60)
        self._lock = threading.RLock()
        self._in_tx = False  # a transaction is open (on the thread that holds the lock)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._q("PRAGMA user_version")[0][0])

    @property
    def _where(self) -> str:
        return str(self.path)

    def _schema_version_for_migration(self, db: Db) -> int:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        return self._adopt_unversioned(db) if version == 0 else version

    def _record_migration(self, db: Db, version: int, what: str) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    @staticmethod
    def _adopt_unversioned(db: Db) -> int:
        """Catalogs written before schema versions: tell which migrations their tables already have."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        if "sightings" not in tables:
            return 0
        cols = {r[1] for r in db.execute("PRAGMA table_info(sightings)").fetchall()}
        return 2 if "upper_color" in cols else 1

    @contextmanager
    def _tx(self) -> Iterator[Db]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so reads inside it are current);
        inside another on this thread (the lock is reentrant), it joins it."""
        with self._lock:
            if self._in_tx:
                yield _SqliteTx(self._db)
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield _SqliteTx(self._db)
                self._db.execute("COMMIT")
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.OperationalError) and "full" in str(e):
                    raise StorageError(f"{self.path}: no space left to write the catalog ({e}); nothing was stored") from e
                raise
            finally:
                self._in_tx = False

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _select_ids(self, sql: str, column: str, ids: Sequence[int], before: Sequence = ()) -> list[tuple]:
        rows: list[tuple] = []
        for i in range(0, len(ids), 900):  # SQLite takes at most 999 parameters
            chunk = ids[i : i + 900]
            rows += self._q(sql.format(f"{column} IN ({','.join('?' * len(chunk))})"), (*before, *chunk))
        return rows

    def _insert_id(self, db: Db, sql: str, args: Sequence) -> int:
        return int(db.execute(sql, args).lastrowid or 0)


class _SqliteTx:
    """SQLite's connection as a `Db` (its `?` placeholders are the catalog's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> sqlite3.Cursor:
        return self._db.executemany(sql, rows)
