"""The PostgreSQL catalog partitioned by day (issue 25 part 3, issue 28 part 2): an existing catalog is converted
without losing or duplicating a row, an ingest never fails for want of a day's partition, a window reads only its
days, and retention drops a whole expired day (rows of a held or partly expired day are deleted one by one)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from vsearch.audit import audit_filter
from vsearch.catalog import Catalog, Checkpoint, NewSighting, PostgresCatalog, engine
from vsearch.catalog.schema import MIGRATIONS
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.ids import DAY_S, camera_minute_ids, day_of_ts, minute_of_ts
from vsearch.service import VSearch
from vsearch.types import ts_to_iso

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


# -- retention drops whole days ------------------------------------------------------------------------------------


def _day_catalog(data: Path, url: str) -> dict:
    """On camera 'lobby' (limit 30 days): a day 40 days ago that expired whole, one 36 days ago that an open case
    holds (a clip of its track), and yesterday; one sighting (and crop file) a second (4, 20 and 4 of them)."""
    from .test_retention import _add_video, _recording

    svc = VSearch(Settings(data_dir=data, catalog_url=url, embedder="hsv-parts", retention_days=30))
    try:
        day = day_of_ts(time.time())
        rec = data / "recordings" / "lobby"
        rec.mkdir(parents=True)
        videos = {}
        for name, ago, n in (("whole", 40, 4), ("held", 36, 20), ("new", 1, 4)):
            videos[name] = _add_video(svc, _recording(rec / f"{name}.mp4", 10 + ago), (day - ago) * DAY_S + 3600, n, name)
        held = svc.catalog.track_sightings(videos["held"], 1, 0, 1e9)
        case = svc.casework.create("case", "", "ivan")
        svc.casework.add(case.id, [svc.clip_id_for(held[1].id)], "ivan")
        return {"videos": videos, "whole_day": day - 40, "held_day": day - 36,
                "held": {s.id for s in held}, "new": {s.id for s in svc.catalog.track_sightings(videos["new"], 1, 0, 1e9)}}  # fmt: skip
    finally:
        svc.close()


def _consistent(data: Path, url: str) -> VSearch:
    """A fresh service: every crop file belongs to a sighting and back, no journal left, the index holds exactly
    the catalog's sightings."""
    svc = VSearch(Settings(data_dir=data, catalog_url=url, embedder="hsv-parts", retention_days=30))
    ids = {int(i) for i in svc.catalog.sighting_ids(svc.embedder.name)}
    thumbs = {s.thumb_path for s in svc.catalog.sightings(ids).values()}
    assert {str(p.relative_to(data)) for p in (data / "thumbs").rglob("*.jpg")} == thumbs
    assert svc.catalog.journaled_files() == [] and {int(i) for i in svc.store.index.ids()} == ids
    return svc


def test_retention_drops_a_whole_expired_day_and_deletes_the_rows_of_a_held_one(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "data"
    w = _day_catalog(data, postgres_url)
    svc = _consistent(data, postgres_url)
    try:
        dry = svc.retention("admin", dry_run=True)
        assert dry.days == [ts_to_iso(w["whole_day"] * DAY_S)[:10]]
        assert w["whole_day"] in svc.catalog._day_partitions("sightings")  # a dry run drops nothing
        report = svc.retention("admin")
        assert report.days == dry.days and report.cameras[0].sightings == dry.cameras[0].sightings == 4
        parts = svc.catalog._day_partitions("sightings")
        assert w["whole_day"] not in parts and w["held_day"] in parts  # dropped whole / rows deleted
        assert w["whole_day"] not in svc.catalog._day_partitions("track_boxes")
        batches = svc.audit.find(audit_filter(action="retention.delete"), 100)
        day = [b for b in batches if b.get("partitions")]
        assert len(day) == 1 and day[0]["sightings"] == 4 and day[0]["track_boxes"] == 4 and day[0]["files"] == 4
        kept = set(svc.catalog.sighting_ids(svc.embedder.name).tolist())
        assert kept == w["new"] | w["held"]  # the held day's rows stay (its clip holds the track)
    finally:
        svc.close()
    _consistent(data, postgres_url).close()


def test_a_run_killed_while_dropping_a_day_resumes_without_orphans(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "data"
    w = _day_catalog(data, postgres_url)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VSEARCH_RETENTION_DAYS": "30", "VSEARCH_EMBEDDER": "hsv-parts",
           "VSEARCH_CATALOG_URL": postgres_url, "VSEARCH_FAULT_KILL_AT": "retention.batch:1"}  # fmt: skip
    cmd = [sys.executable, "-m", "vsearch.cli", "retention", "run", "--data-dir", str(data)]
    killed = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, (killed.returncode, killed.stdout, killed.stderr)
    svc = _consistent(data, postgres_url)  # the day's drop, its log, journal and audit entry rolled back together
    assert w["whole_day"] in svc.catalog._day_partitions("sightings")
    svc.close()
    env.pop("VSEARCH_FAULT_KILL_AT")
    resumed = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"dropped whole days (partitions): {ts_to_iso(w['whole_day'] * DAY_S)[:10]}" in resumed.stdout
    svc = _consistent(data, postgres_url)
    try:
        assert w["whole_day"] not in svc.catalog._day_partitions("sightings") and svc.audit.verify().ok
    finally:
        svc.close()


def test_the_partition_benchmark_runs_at_its_smallest_size(tmp_path: Path, postgres_url: str) -> None:
    from benchmarks import bench_partitions

    payload = bench_partitions.main(["--url", postgres_url, "--sightings", "20000", "--days", "4", "--runs", "1",
                                     "--out", str(tmp_path)])  # fmt: skip
    r = payload["result"]
    assert r["window"]["sightings"]["rows"] == r["window"]["sightings_flat"]["rows"] == 5000
    assert r["window"]["sightings"]["partitions_read"] == 1 and r["expire_day"]["rows"] == 5000
    assert r["expire_day"]["vsearch_drop_day"]["sightings"] == r["expire_day"]["vsearch_row_path"]["sightings"] == 5000
    assert (tmp_path / "bench_partitions_20000.json").exists()
