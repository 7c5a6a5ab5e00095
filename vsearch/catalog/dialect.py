"""What differs between the catalog's SQL engines, in one small value per engine.

The catalog writes each statement once, with `?` placeholders; `Dialect.sql` puts it in the engine's parameter
style. Row locks are spelled by the dialect (`lock_rows`), never stripped from a statement afterwards, and the
schema's column types are filled in from `types` (schema.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Dialect:
    """One SQL engine's spelling of the catalog's statements."""

    name: str
    paramstyle: str  # the engine's placeholder for `?`
    lock_rows: str  # appended to a SELECT whose rows the transaction then updates
    key: str  # an auto-increment integer primary key
    integer: str
    real: str
    blob: str

    def sql(self, statement: str) -> str:
        """`statement` (written with `?` placeholders) in this engine's parameter style."""
        return statement if self.paramstyle == "?" else _restyle(statement, self.paramstyle)

    def ddl(self, migration: str) -> list[str]:
        """A migration's statements with this engine's column types."""
        sql = migration.format(key=self.key, int=self.integer, real=self.real, blob=self.blob)
        return [s for s in sql.split(";") if s.strip()]


@cache
def _restyle(statement: str, paramstyle: str) -> str:
    """`?` -> `paramstyle` outside string literals (a literal `%` is doubled for the `%s` style)."""
    parts = statement.split("'")
    for i in range(0, len(parts), 2):  # the even parts are outside quotes
        parts[i] = parts[i].replace("%", "%%").replace("?", paramstyle)
    return "'".join(parts)


SQLITE = Dialect("sqlite", "?", "", "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL", "BLOB")
# BEGIN IMMEDIATE already holds SQLite's database-wide write lock, so it needs no row locks
POSTGRES = Dialect("postgresql", "%s", " FOR UPDATE", "BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION", "BYTEA")
