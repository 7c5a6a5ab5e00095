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

    def append_only(self, table: str) -> list[str]:
        """Statements that make `table` refuse UPDATE and DELETE (and TRUNCATE, on PostgreSQL): rows are appended only."""
        refusal = f"the {table} table is append-only"
        if self.name == "sqlite":
            return [f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}"
                    f" BEGIN SELECT RAISE(ABORT, '{refusal}'); END" for op in ("UPDATE", "DELETE")]  # fmt: skip
        return [
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{refusal}'; END $$",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()",
        ]


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
