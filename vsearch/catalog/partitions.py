"""The PostgreSQL catalog's large tables partitioned by UTC day (declarative partitioning, managed here).

sightings by id (ids are time-ordered: a day is one id range, vsearch.ids.day_ids; the ids from before
time-ordered ids have a partition of their own), track_boxes by ts (the video's start + pts) and sighting_log by
`at` (when the entry was written). Each has a default partition, so an insert never fails for want of a day's
partition; the days are created ahead (today and the next AHEAD_DAYS, when the catalog opens) and on demand (each
checkpoint's days, before its rows are written), by ATTACH (which takes the parent's SHARE UPDATE EXCLUSIVE lock:
readers and writers go on). A day whose rows already sit in the default partition keeps them there (moving them
would cascade-delete their attribute rows); retention deletes those row by row. Retention drops a whole day with
`drop_day` (see catalog/retention.py for what it must hold first).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass

from vsearch.catalog.engine import Db
from vsearch.ids import DAY_S, FIRST_TIMED_ID, day_ids, day_of_ts

AHEAD_DAYS = 2
_PARTITION_LOCK = 7_311_005  # advisory lock id: one creator of partitions at a time


@dataclass(frozen=True)
class DayTable:
    """A table partitioned by day: its partition key and the primary key it gets (which must hold the key)."""

    name: str
    key: str
    primary_key: tuple[str, ...]

    def bounds(self, day: int) -> tuple[int, int] | tuple[float, float]:
        """[lo, hi) of the partition key in one day."""
        return day_ids(day) if self.key == "id" else (float(day * DAY_S), float((day + 1) * DAY_S))

    def partition(self, day: int) -> str:
        return f"{self.name}_d{dt.datetime.fromtimestamp(day * DAY_S, dt.UTC):%Y%m%d}"


SIGHTINGS = DayTable("sightings", "id", ("id",))
TRACK_BOXES = DayTable("track_boxes", "ts", ("video_id", "track_id", "pts", "ts"))
SIGHTING_LOG = DayTable("sighting_log", "at", ("seq", "at"))
TABLES = (SIGHTINGS, TRACK_BOXES, SIGHTING_LOG)
BY_NAME = {t.name: t for t in TABLES}


def today() -> int:
    return day_of_ts(time.time())


def convert(db: Db) -> None:
    """Migration 19 on PostgreSQL: each table becomes a partitioned one with the same columns, defaults, indexes,
    foreign keys (both ways) and sequence, its rows copied into their days' partitions (created for every day
    they hold, plus the days ahead) in the migration's transaction: nothing lost or duplicated, or nothing done."""
    db.execute("ALTER TABLE sighting_log ADD COLUMN at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now())")
    db.execute("ALTER TABLE track_boxes ALTER COLUMN ts SET NOT NULL")
    now = today()
    for t in TABLES:
        old_days = _days_in(db, t)
        _convert(db, t, sorted(set(old_days) | set(range(now, now + AHEAD_DAYS + 1))))


def _days_in(db: Db, t: DayTable) -> list[int]:
    if t.key == "id":
        per_day = DAY_S // 60
        sql = f"SELECT DISTINCT ((id >> 24) - 1) / {per_day} FROM sightings WHERE id >= {FIRST_TIMED_ID}"
    else:
        sql = f"SELECT DISTINCT floor({t.key} / {DAY_S})::bigint FROM {t.name}"
    return [int(r[0]) for r in db.execute(sql).fetchall()]


def _convert(db: Db, t: DayTable, days: list[int]) -> None:
    name, old = t.name, f"{t.name}_unpartitioned"
    oid = f"'{name}'::regclass"
    indexes = db.execute(
        f"SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        f" WHERE x.indrelid = {oid} AND NOT x.indisprimary ORDER BY i.relname"
    ).fetchall()
    pkey = db.execute(f"SELECT conname FROM pg_constraint WHERE conrelid = {oid} AND contype = 'p'").fetchone()
    fks_out = db.execute(
        f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid} AND contype = 'f'"
    ).fetchall()
    fks_in = db.execute(
        f"SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
        f" WHERE confrelid = {oid} AND contype = 'f'"
    ).fetchall()
    seqs = db.execute(  # serial columns: their sequence moves to the new table
        f"SELECT a.attname, pg_get_serial_sequence('{name}', a.attname) FROM pg_attribute a"
        f" WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped"
        f" AND pg_get_serial_sequence('{name}', a.attname) IS NOT NULL"
    ).fetchall()
    for conname, rel, _ in fks_in:
        db.execute(f"ALTER TABLE {rel} DROP CONSTRAINT {conname}")
    for _, seq in seqs:
        db.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    for idx, _ in indexes:
        db.execute(f"ALTER INDEX {idx} RENAME TO {idx}_unpartitioned")
    if pkey is not None:
        db.execute(f"ALTER TABLE {name} RENAME CONSTRAINT {pkey[0]} TO {pkey[0]}_unpartitioned")
    db.execute(f"ALTER TABLE {name} RENAME TO {old}")
    db.execute(f"CREATE TABLE {name} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ({t.key})")
    db.execute(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(t.primary_key)})")
    db.execute(f"CREATE TABLE {name}_default PARTITION OF {name} DEFAULT")
    if t.key == "id":  # the ids from before time-ordered ids (no day in them)
        db.execute(f"CREATE TABLE {name}_legacy PARTITION OF {name} FOR VALUES FROM (MINVALUE) TO ({FIRST_TIMED_ID})")
    for day in days:
        lo, hi = t.bounds(day)
        db.execute(f"CREATE TABLE {t.partition(day)} PARTITION OF {name} FOR VALUES FROM ({lo!r}) TO ({hi!r})")
    db.execute(f"INSERT INTO {name} SELECT * FROM {old}")
    db.execute(f"DROP TABLE {old}")
    for _, definition in indexes:  # as they were, on the new table (and so on each partition)
        db.execute(definition)
    for conname, definition in fks_out:
        db.execute(f"ALTER TABLE {name} ADD CONSTRAINT {conname} {definition}")
    for column, seq in seqs:
        db.execute(f"ALTER SEQUENCE {seq} OWNED BY {name}.{column}")
    for conname, rel, definition in fks_in:
        db.execute(f"ALTER TABLE {rel} ADD CONSTRAINT {conname} {definition}")


def existing_days(db: Db, table: str) -> list[int]:
    """The days `table` has a partition of, in order."""
    t = BY_NAME[table]
    rows = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = ?::regclass",
        (table,),
    ).fetchall()
    prefix = f"{t.name}_d"
    return sorted(
        int(dt.datetime.strptime(r[0][len(prefix):], "%Y%m%d").replace(tzinfo=dt.UTC).timestamp()) // DAY_S
        for r in rows if r[0].startswith(prefix) and r[0][len(prefix):].isdigit()
    )  # fmt: skip


def ensure_days(db: Db, days: Iterable[int]) -> set[int]:
    """Create every table's partitions of these days that are missing (one transaction, under an advisory lock so
    that two writers create a day once). Returns the days done; a day whose rows already sit in a default
    partition is left there (not done): its inserts keep going to the default partition."""
    db.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
    done = set()
    for day in sorted(set(days)):
        ok = True
        for t in TABLES:
            part = t.partition(day)
            if db.execute("SELECT to_regclass(?)", (part,)).fetchone()[0] is not None:
                continue
            lo, hi = t.bounds(day)
            if db.execute(f"SELECT 1 FROM {t.name}_default WHERE {t.key} >= ? AND {t.key} < ? LIMIT 1", (lo, hi)).fetchone():
                ok = False
                continue
            # a table of its own, then ATTACH: the parent's SHARE UPDATE EXCLUSIVE lock, not ACCESS EXCLUSIVE
            db.execute(f"CREATE TABLE {part} (LIKE {t.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            db.execute(f"ALTER TABLE {t.name} ATTACH PARTITION {part} FOR VALUES FROM ({lo!r}) TO ({hi!r})")
        if ok:
            done.add(day)
    return done


def drop_day(db: Db, table: str, day: int) -> bool:
    """Drop `table`'s partition of `day` with its rows; False when it has none (its rows, if any, are in the
    default partition)."""
    part = BY_NAME[table].partition(day)
    if db.execute("SELECT to_regclass(?)", (part,)).fetchone()[0] is None:
        return False
    # detached first: a foreign key into the table (sighting_attributes) is checked then, and the table is its own
    db.execute(f"ALTER TABLE {table} DETACH PARTITION {part}")
    db.execute(f"DROP TABLE {part}")
    return True
