"""The PostgreSQL catalog partitioned by day (issue 25 part 3, issue 28 part 2): an existing catalog is converted
without losing or duplicating a row, an ingest never fails for want of a day's partition, a window reads only its
days, and retention drops a whole expired day (rows of a held or partly expired day are deleted one by one)."""

from __future__ import annotations

import hashlib

import numpy as np
import psycopg
import pytest

from vsearch.catalog import Catalog, Checkpoint, NewSighting, PostgresCatalog, engine
from vsearch.catalog.schema import MIGRATIONS
from vsearch.ids import DAY_S, camera_minute_ids, day_of_ts, minute_of_ts

from .conftest import traced_queries

T0 = 1_780_000_000.0  # 2026-05-28 (UTC), a day's start below
DAY0 = day_of_ts(T0)
V = np.ones(4, np.float32) / 2


def _rows(cat: Catalog, camera: str, start: float, n: int, step_s: float = 1.0, name: str = "") -> tuple[int, list[int]]:
    """A video on `camera` from `start` with one sighting and one track box every `step_s` seconds."""
    name = name or f"{camera}-{start}"
    rec = cat.begin_video(camera, f"/footage/{name}.mp4", hashlib.sha256(name.encode()).hexdigest(), start, 10.0,
                          int(10 * n * step_s) + 1, (640, 480), "emb")  # fmt: skip
    rows = [NewSighting(camera, 1, start + t * step_s, t * step_s, (1, 2, 3, 4), 0.9, 0.5, f"thumbs/{name}-{t}.jpg", V)
            for t in range(n)]  # fmt: skip
    boxes = [(1, t * step_s, (1.0, 2.0, 3.0, 4.0), 0.9) for t in range(n)]
    return rec.id, cat.commit_chunk(rec.id, Checkpoint(rows, boxes, n * step_s, n, True))


def _partitions(url: str, table: str) -> dict[str, int]:
    """Rows per partition of `table`."""
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            (table,))]  # fmt: skip
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in sorted(names)}


def test_a_catalog_from_before_partitions_is_converted_without_losing_or_duplicating_a_row(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the catalog as the vsearch before migration 19 left it: its rows written by that schema's statements
    monkeypatch.setattr(engine, "MIGRATIONS", MIGRATIONS[:18])
    monkeypatch.setattr(engine, "SCHEMA_VERSION", 18)
    old = PostgresCatalog(postgres_url)
    assert old.schema_version == 18
    videos = [old.begin_video("cam", f"/f/{d}.mp4", f"{d:064d}", T0 + d * DAY_S, 10.0, 100, (64, 48), "emb").id
              for d in range(3)]  # fmt: skip
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE cameras SET slot = 1 WHERE id = 'cam'")
        sid = 0
        for d, v in enumerate(videos):
            for t in range(4):
                ts = T0 + d * DAY_S + t
                i = camera_minute_ids(minute_of_ts(ts), 1)[0] + t
                conn.execute(
                    "INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                    " quality, thumb_path, embedder, embedding) VALUES (%s, %s, 'cam', 1, %s, %s, 0, 0, 1, 1, 0.9, 0.5,"
                    " 't.jpg', 'emb', %s)", (i, v, ts, float(t), V.tobytes()))  # fmt: skip
                conn.execute("INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (%s, 'emb', 1)", (i,))
                conn.execute("INSERT INTO track_boxes (video_id, track_id, pts, x1, y1, x2, y2, confidence)"
                             " VALUES (%s, 1, %s, 0, 0, 1, 1, 0.9)", (v, float(t)))  # fmt: skip
                sid = i
        conn.execute("INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                     " quality, thumb_path, embedder, embedding) VALUES (7, %s, 'cam', 2, %s, 9, 0, 0, 1, 1, 0.9, 0.5,"
                     " 't.jpg', 'emb', %s)", (videos[0], T0 + 9, V.tobytes()))  # fmt: skip  # an id from before time-ordered ids
        attrs = ", ".join(f"p_{c}" for c in _ATTRIBUTE_COLUMNS)
        conn.execute(f"INSERT INTO sighting_attributes (sighting_id, model, camera_id, ts, {attrs}) VALUES"
                     f" (%s, 'm', 'cam', %s, {', '.join(['0.5'] * len(_ATTRIBUTE_COLUMNS))})", (sid, T0 + 2 * DAY_S + 3))  # fmt: skip
        before = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in ("sightings", "track_boxes", "sighting_log")}
    old_seq = old.last_seq()
    old.close()
    monkeypatch.undo()

    cat = PostgresCatalog(postgres_url)  # migration 19
    assert cat.schema_version == MIGRATIONS[-1][0]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        after = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in ("sightings", "track_boxes", "sighting_log")}
    assert after["sightings"] == before["sightings"]  # the same rows, once each
    assert [r[:8] for r in after["track_boxes"]] == before["track_boxes"]
    assert sorted(r[8] for r in after["track_boxes"]) == sorted(T0 + d * DAY_S + t for d in range(3) for t in range(4))
    assert [r[:4] for r in after["sighting_log"]] == before["sighting_log"]
    parts = _partitions(postgres_url, "sightings")
    assert parts["sightings_legacy"] == 1 and parts["sightings_default"] == 0
    assert [parts[f"sightings_d{20260528 + d}"] for d in range(3)] == [4, 4, 4]
    assert sum(_partitions(postgres_url, "track_boxes").values()) == 12 and _partitions(postgres_url, "track_boxes")["track_boxes_default"] == 0
    # a follower (an API node at the old sequence) catches up: the log goes on after the sequence it had read
    _, new_ids = _rows(cat, "cam", T0 + 3 * DAY_S, 2)
    assert [i for i, _ in cat.changes_since(old_seq, "emb").ops] == new_ids
    # foreign keys work both ways: a video's rows go with it, attributes go with their sighting
    cat.delete_video(videos[2])
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sighting_attributes").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM sightings WHERE video_id = %s", (videos[2],)).fetchone()[0] == 0
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                         " quality, thumb_path, embedder, embedding) VALUES (8, 999, 'cam', 2, 0, 9, 0, 0, 1, 1, 0.9, 0.5,"
                         " 't.jpg', 'emb', '')")  # fmt: skip
    assert cat.count_sightings() == 4 + 4 + 1 + 2
    cat.close()


_ATTRIBUTE_COLUMNS = (
    "female long_hair short_sleeves short_lower skirt hat backpack bag handbag age_young age_teenager age_adult age_old"
    " upper_black upper_blue upper_green upper_gray upper_purple upper_red upper_white upper_yellow lower_black"
    " lower_blue lower_brown lower_gray lower_green lower_pink lower_purple lower_white lower_yellow"
).split()


def test_an_ingest_never_fails_for_want_of_a_day(postgres_url: str) -> None:
    cat = PostgresCatalog(postgres_url)
    far = T0 + 400 * DAY_S  # no partition made ahead for this day: made when its first rows come
    _, ids = _rows(cat, "cam", far, 3)
    assert _partitions(postgres_url, "sightings")["sightings_d20270702"] == 3
    assert _partitions(postgres_url, "track_boxes")["track_boxes_d20270702"] == 3
    # rows of a day with no partition (written by a writer that made none) go to the default partition, and stay
    # there when the day's partition is asked for (moving them would cascade-delete their attribute rows)
    other = PostgresCatalog(postgres_url)
    other._ensure_days = lambda days: None  # type: ignore[method-assign]
    _, stray = _rows(other, "cam", far + 30 * DAY_S, 2)
    assert _partitions(postgres_url, "sightings")["sightings_default"] == 2
    _, more = _rows(cat, "cam", far + 30 * DAY_S + 100, 2)  # the same day again, through a catalog that makes days
    assert _partitions(postgres_url, "sightings")["sightings_default"] == 4
    assert "sightings_d20270801" not in _partitions(postgres_url, "sightings")
    assert sorted(cat.sightings(ids + stray + more)) == sorted(ids + stray + more)
    other.close()
    cat.close()


def test_a_window_reads_only_its_days(postgres_url: str) -> None:
    cat = PostgresCatalog(postgres_url)
    for d in range(4):
        _rows(cat, "cam", T0 + d * DAY_S + 3600, 5, step_s=600.0)
    window = (T0 + DAY_S + 3000, T0 + 2 * DAY_S + 4000)  # days 1 and 2 only
    with traced_queries(cat) as statements:
        assert len(cat.sightings_between(*window)) == 5 + 1
        assert len(cat.filter_ids("emb", *window, ["cam"])) == 6  # type: ignore[arg-type]
        got = cat.select("emb", *window, None)
        assert got is not None and got.count == 6
    reads = [s for s in statements if "FROM sightings" in s[0]]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        plans = ["\n".join(r[0] for r in conn.execute("EXPLAIN " + cat.dialect.sql(sql), args)) for sql, args in reads]
    days = {"sightings_d20260529", "sightings_d20260530"}
    for plan in plans:
        scanned = {w for w in plan.replace("(", " ").split() if w.startswith("sightings_d") and "_idx" not in w}
        assert scanned <= days and "sightings_default" not in plan, plan  # never the other days (legacy ids: empty)
    assert any(all(f" on {d} " in plan or f" on {d}\n" in plan for d in days) for plan in plans), plans
    cat.close()
