"""PostgreSQL catalog by day: expiring one day by DELETE vs by dropping its partition, and a one-day window on the
partitioned sightings table vs the same rows in one plain table (issue 28 part 2, issue 25 part 3).

Rows are generated in the server (generate_series), not by the detector: `--sightings` rows over `--days` days
with ids as vsearch allocates them (vsearch.ids: minute in the high bits) and 1 KB embeddings, written to the
catalog's own partitioned `sightings` (migration 19) and copied to `sightings_flat` (same columns and indexes, no
partitions). Figures: wall time, WAL bytes (pg_current_wal_lsn), table sizes before/after, VACUUM after the
DELETE; the vsearch retention path (Catalog.drop_expired_day: removals logged, crops journaled, then the drop) on
a second day and its row path (batches of 2,000 rows deleted, logged and journaled) on a third; the window's median of `--runs` warm runs with its row count checked equal on both tables.

    python -m benchmarks.bench_partitions --url postgresql://vsearch@127.0.0.1:5432/bench --sightings 10000000
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.catalog import PostgresCatalog
from vsearch.ids import DAY_S, FIRST_TIMED_ID, day_ids

FIRST_DAY = 20_000  # 2024-10-04 (UTC)
SIZES = {"S": 20_000, "M": 2_000_000, "L": 10_000_000}


def _one(conn: Any, sql: str, args: tuple = ()) -> Any:
    return conn.execute(sql, args).fetchone()[0]


def _wal(conn: Any) -> int:
    return int(_one(conn, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


def _timed(conn: Any, statements: list[tuple[str, tuple]]) -> dict[str, float]:
    """Run statements in one transaction: wall seconds and WAL MB."""
    wal0, t0 = _wal(conn), time.perf_counter()
    with conn.transaction():
        for sql, args in statements:
            conn.execute(sql, args)
    return {"s": round(time.perf_counter() - t0, 3), "wal_mb": round((_wal(conn) - wal0) / 1e6, 1)}


def _size_mb(conn: Any, table: str) -> float:
    """Heap + indexes + TOAST of a table, or of all its partitions."""
    return round(float(_one(conn, "SELECT pg_total_relation_size(%s::regclass) + COALESCE((SELECT"
                            " SUM(pg_total_relation_size(relid)) FROM pg_partition_tree(%s) WHERE isleaf"
                            " AND relid <> %s::regclass), 0)", (table,) * 3)) / 1e6, 1)  # fmt: skip


def fill(url: str, n: int, days: int) -> None:
    """The catalog's schema, the days' partitions, n sightings spread evenly over the days, and the plain copy."""
    cat = PostgresCatalog(url)
    cat._ensure_days(set(range(FIRST_DAY, FIRST_DAY + days)))
    cat.close()
    import psycopg

    per_day = -(-n // days)
    per_minute = -(-per_day // 1440)
    if per_minute > 4096:
        raise SystemExit(f"{per_minute} sightings a minute: more than a camera slot holds (4096); use more days")
    with psycopg.connect(url, autocommit=True) as conn:
        # indexes built after the rows are in (as a bulk load would): the catalog's own, the same on the plain copy
        indexes = [r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'sightings' AND indexname <> 'sightings_pkey'")]  # fmt: skip
        for name in [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'sightings'"
                                                " AND indexname <> 'sightings_pkey'")]:  # fmt: skip
            conn.execute(f"DROP INDEX {name}")
        conn.execute("INSERT INTO cameras (id, created_at, slot) VALUES ('cam', 0, 1)")
        conn.execute("INSERT INTO videos (id, camera_id, path, sha256, start_ts, fps, frame_count, width, height, status,"
                     " embedder, added_at) VALUES (1, 'cam', '/v.mp4', 'x', 0, 10, 1, 1, 1, 'done', 'e', 0)")  # fmt: skip
        # row i: day d, minute m of the day, k-th of its minute; id as vsearch.ids allocates (camera slot 1)
        conn.execute(
            "INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence, quality,"
            " thumb_path, embedder, embedding)"
            f" SELECT ((m + 1) << 24) + (1 << 12) + k, 1, 'cam', i / 50, m * 60.0 + k * 60.0 / {per_minute}, 0, 0, 0, 1,"
            " 1, 0.9, 0.5, 'thumbs/' || i || '.jpg', 'e', e.b"
            f" FROM (SELECT i, ({FIRST_DAY}::bigint + i / {per_day}) * 1440 + (i % {per_day}) / {per_minute} AS m,"
            f"       (i % {per_day}) % {per_minute} AS k FROM generate_series(0::bigint, {n - 1}) AS i) AS g,"
            " (SELECT decode(repeat('3f', 1024), 'hex') AS b) AS e"
        )
        conn.execute("CREATE TABLE sightings_flat (LIKE sightings INCLUDING DEFAULTS)")
        conn.execute("INSERT INTO sightings_flat SELECT * FROM sightings")
        conn.execute("ALTER TABLE sightings_flat ADD PRIMARY KEY (id)")
        for definition in indexes:
            conn.execute(definition)
            flat = definition.replace(" ON public.sightings ", " ON public.sightings_flat ")
            conn.execute(flat.replace("INDEX sightings_", "INDEX flat_sightings_", 1))
        conn.execute("VACUUM ANALYZE sightings")
        conn.execute("VACUUM ANALYZE sightings_flat")
        conn.execute("CHECKPOINT")


def window(conn: Any, table: str, day: int, runs: int) -> dict[str, Any]:
    """A one-day window as vsearch states it (times and the id envelope): median ms of warm runs, rows."""
    lo, hi = day_ids(day)
    sql = (f"SELECT COUNT(*) FROM {table} WHERE embedder || '' = 'e' AND ts >= %s AND ts < %s"
           f" AND (id < {FIRST_TIMED_ID} OR (id >= %s AND id < %s))")  # fmt: skip
    args = (day * DAY_S, (day + 1) * DAY_S, lo, hi)
    rows = _one(conn, sql, args)  # warm-up
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        _one(conn, sql, args)
        ms.append((time.perf_counter() - t0) * 1e3)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, args))
    return {"rows": int(rows), "ms_p50": round(statistics.median(ms), 1),
            "partitions_read": plan.count(" on sightings_d")}  # fmt: skip


def bench(url: str, n: int, days: int, runs: int) -> dict[str, Any]:
    import psycopg

    t0 = time.perf_counter()
    fill(url, n, days)
    fill_s = time.perf_counter() - t0
    out: dict[str, Any] = {"sightings": n, "days": days, "fill_s": round(fill_s, 1)}
    with psycopg.connect(url, autocommit=True) as conn:
        mid = FIRST_DAY + days // 2
        out["window"] = {t: window(conn, t, mid, runs) for t in ("sightings", "sightings_flat")}
        assert out["window"]["sightings"]["rows"] == out["window"]["sightings_flat"]["rows"] > 0
        day = FIRST_DAY
        lo, hi = day_ids(day)
        rows = _one(conn, "SELECT COUNT(*) FROM sightings_flat WHERE id >= %s AND id < %s", (lo, hi))
        before = {t: _size_mb(conn, t) for t in ("sightings", "sightings_flat")}
        delete = _timed(conn, [("DELETE FROM sightings_flat WHERE id >= %s AND id < %s", (lo, hi))])
        after_delete = _size_mb(conn, "sightings_flat")
        wal0, t1 = _wal(conn), time.perf_counter()
        conn.execute("VACUUM sightings_flat")
        vacuum = {"s": round(time.perf_counter() - t1, 3), "wal_mb": round((_wal(conn) - wal0) / 1e6, 1)}
        drop = _timed(conn, [(f"ALTER TABLE sightings DETACH PARTITION sightings_d{_date(day)}", ()),
                             (f"DROP TABLE sightings_d{_date(day)}", ())])  # fmt: skip
        out["expire_day"] = {
            "rows": int(rows),
            "delete": {**delete, "table_mb_before": before["sightings_flat"], "table_mb_after": after_delete,
                       "vacuum_s": vacuum["s"], "vacuum_wal_mb": vacuum["wal_mb"],
                       "table_mb_after_vacuum": _size_mb(conn, "sightings_flat")},
            "drop_partition": {**drop, "table_mb_before": before["sightings"], "table_mb_after": _size_mb(conn, "sightings")},
        }  # fmt: skip
    # the whole vsearch path on the next day: removals logged (the index follows), crops journaled, then the drop
    cat = PostgresCatalog(url)
    with psycopg.connect(url, autocommit=True) as conn:
        wal0, t1 = _wal(conn), time.perf_counter()
        sightings, _, files = cat.drop_expired_day(FIRST_DAY + 1)
        out["expire_day"]["vsearch_drop_day"] = {
            "s": round(time.perf_counter() - t1, 3), "wal_mb": round((_wal(conn) - wal0) / 1e6, 1),
            "sightings": sum(sightings.values()), "files_journaled": sum(files.values())}  # fmt: skip
    cat.close()
    out["expire_day"]["vsearch_row_path"] = row_path(url, FIRST_DAY + 2)
    return out


def row_path(url: str, day: int, batch: int = 2000) -> dict[str, Any]:
    """vsearch's row path on one whole day (what retention runs for a day it cannot drop): the expired sightings
    read in batches of `batch`, each deleted (a removal logged per sighting) with its crops journaled, one
    transaction a batch. Time, WAL, rows."""
    import psycopg

    cat = PostgresCatalog(url)
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        wal0, t0 = _wal(conn), time.perf_counter()
        while rows := cat.expired_sightings("cam", (day + 1) * DAY_S, 0.0, batch):
            with cat.transaction():
                n += cat.delete_sightings([i for i, _ in rows])
                cat.journal_files([p for _, p in rows])
        out = {"s": round(time.perf_counter() - t0, 3), "wal_mb": round((_wal(conn) - wal0) / 1e6, 1), "sightings": n}
    cat.close()
    return out


def _date(day: int) -> str:
    import datetime as dt

    return f"{dt.datetime.fromtimestamp(day * DAY_S, dt.UTC):%Y%m%d}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="an empty PostgreSQL database")
    ap.add_argument("--size", choices=list(SIZES), default=None, help="S, M, L: 20 k, 2 M, 10 M sightings")
    ap.add_argument("--sightings", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    if args.size is not None:
        args.sightings = SIZES[args.size]
    result = bench(args.url, args.sightings, args.days, args.runs)
    import psycopg

    with psycopg.connect(args.url) as conn:
        server = str(_one(conn, "SHOW server_version"))
    payload = {"machine": {**machine_info(["psycopg"]), "postgresql": server}, "result": result}
    e, w = result["expire_day"], result["window"]
    print_table([
        {"what": "expire a day: DELETE", "s": e["delete"]["s"], "wal_mb": e["delete"]["wal_mb"],
         "note": f"+ VACUUM {e['delete']['vacuum_s']} s; table {e['delete']['table_mb_before']} -> "
                 f"{e['delete']['table_mb_after_vacuum']} MB"},
        {"what": "expire a day: drop partition", "s": e["drop_partition"]["s"], "wal_mb": e["drop_partition"]["wal_mb"],
         "note": f"table {e['drop_partition']['table_mb_before']} -> {e['drop_partition']['table_mb_after']} MB"},
        {"what": "expire a day: vsearch drop_expired_day", "s": e["vsearch_drop_day"]["s"],
         "wal_mb": e["vsearch_drop_day"]["wal_mb"], "note": "with removals logged and crops journaled"},
        {"what": "expire a day: vsearch row path", "s": e["vsearch_row_path"]["s"],
         "wal_mb": e["vsearch_row_path"]["wal_mb"], "note": "batches of 2,000, as retention deletes rows"},
        {"what": "1-day window, partitioned", "s": w["sightings"]["ms_p50"] / 1e3, "wal_mb": 0,
         "note": f"{w['sightings']['rows']} rows, {w['sightings']['partitions_read']} partitions"},
        {"what": "1-day window, one table", "s": w["sightings_flat"]["ms_p50"] / 1e3, "wal_mb": 0,
         "note": f"{w['sightings_flat']['rows']} rows"},
    ])  # fmt: skip
    write_json(f"bench_partitions_{args.size or args.sightings}", payload, args.out or RESULTS_DIR)
    return payload


if __name__ == "__main__":
    main()
