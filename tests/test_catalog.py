"""The SQLite catalog: versioned migrations (including catalogs written before versions), atomic checkpoints,
the change log, filters."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vsearch.catalog import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLITE,
    CameraStats,
    Catalog,
    Checkpoint,
    NewSighting,
    SqliteCatalog,
)
from vsearch.errors import IndexStateError

from .conftest import traced_queries

V = np.ones(4, np.float32) / 2


def _row(camera: str, ts: float, upper: str | None = None, track: int = 1) -> NewSighting:
    return NewSighting(camera, track, ts, ts - 1000, (0, 0, 1, 1), 0.9, 0.5, "t.jpg", V, upper, None)


def test_a_new_catalog_runs_every_migration_once(tmp_path: Path) -> None:
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    assert cat.schema_version == SCHEMA_VERSION == MIGRATIONS[-1][0]
    cat.close()
    assert SqliteCatalog(tmp_path / "c.sqlite").schema_version == SCHEMA_VERSION  # reopening changes nothing


@pytest.mark.parametrize("with_colours", [False, True], ids=["before colours", "with colours"])
def test_a_catalog_from_before_schema_versions_is_adopted_with_its_data(tmp_path: Path, with_colours: bool) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(";".join(SQLITE.ddl(MIGRATIONS[0][2])))  # the tables as the first releases created them, user_version 0
    if with_colours:
        db.executescript(";".join(SQLITE.ddl(MIGRATIONS[1][2])))
        db.execute("PRAGMA user_version = 0")
    db.execute("INSERT INTO cameras VALUES ('cam', 0)")
    db.execute("INSERT INTO videos (camera_id, path, sha256, start_ts, fps, frame_count, width, height, status,"
               " embedder, added_at) VALUES ('cam', '/a.mp4', 'abc', 0, 10, 100, 64, 64, 'done', 'e', 0)")  # fmt: skip
    db.execute("INSERT INTO sightings (video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence, quality,"
               " thumb_path, embedder, embedding) VALUES (1, 'cam', 1, 5, 5, 0, 0, 1, 1, .9, .5, 't', 'e', ?)", (V.tobytes(),))  # fmt: skip
    db.commit()
    db.close()
    cat = SqliteCatalog(path)
    assert cat.schema_version == SCHEMA_VERSION
    assert cat.sighting(1).upper_color is None and cat.count_sightings("e") == 1
    changes = cat.changes_since(0, "e")  # existing sightings are in the log, so followers can build from it
    assert [sid for sid, _ in changes.ops] == [1] and changes.last_seq == cat.last_seq() == 1


def test_a_catalog_from_a_newer_vsearch_is_refused(tmp_path: Path) -> None:
    SqliteCatalog(tmp_path / "c.sqlite").close()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(IndexStateError, match="newer than this vsearch knows"):
        SqliteCatalog(tmp_path / "c.sqlite")


def test_a_failed_checkpoint_leaves_nothing_behind(cat: Catalog) -> None:
    v = cat.begin_video("cam", "/a.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e")
    bad = NewSighting("cam", 1, 1.0, 1.0, (0, 0, 1, 1), 0.9, 0.5, None, V)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(Exception, match="(?i)not.null"):  # the database's own integrity error
        cat.commit_chunk(v.id, Checkpoint([_row("cam", 1.0), bad], [(1, 1.0, (0, 0, 1, 1), 0.9)], 60.0, 10, False))
    assert cat.count_sightings() == 0 and cat.last_seq() == 0 and cat.track_boxes(v.id, 1) == []
    assert cat.video(v.id).processed_until_s == 0 and cat.video(v.id).frames_sampled == 0


def test_the_log_lists_additions_and_removals_in_order_per_embedder(cat: Catalog) -> None:
    a = cat.begin_video("cam", "/a.mp4", "a", 0.0, 10.0, 100, (64, 64), "e").id
    b = cat.begin_video("cam", "/b.mp4", "b", 0.0, 10.0, 100, (64, 64), "other").id
    ids_a = cat.commit_chunk(a, Checkpoint([_row("cam", 1.0), _row("cam", 2.0)], [], 1.0, 1, True))
    cat.commit_chunk(b, Checkpoint([_row("cam", 3.0)], [], 1.0, 1, True))
    seq = cat.last_seq()
    cat.delete_video(a)
    whole = cat.changes_since(0, "e")
    # the additions of the deleted video carry no vector any more; their removals follow
    assert [(sid, vec is not None) for sid, vec in whole.ops] == [(ids_a[0], False), (ids_a[1], False), (ids_a[0], False), (ids_a[1], False)]
    assert [sid for sid, _ in cat.changes_since(seq, "e").ops] == ids_a and cat.changes_since(seq, "other").ops == []
    paged = cat.changes_since(0, "e", limit=2)
    assert paged.last_seq == 2 and len(paged.ops) == 2


def test_filters_select_by_window_camera_and_colour(cat: Catalog) -> None:
    v = cat.begin_video("north", "/a.mp4", "a", 1000.0, 10.0, 100, (64, 64), "e").id
    ids = cat.commit_chunk(v, Checkpoint([_row("north", 1000.0, "red"), _row("north", 1010.0, "blue"), _row("south", 1020.0, "red")], [], 1.0, 1, True))
    table = [
        (dict(from_ts_s=None, to_ts_s=None, cameras=None), None),
        (dict(from_ts_s=1005.0, to_ts_s=None, cameras=None), ids[1:]),
        (dict(from_ts_s=None, to_ts_s=1010.0, cameras=None), ids[:2]),  # inclusive
        (dict(from_ts_s=None, to_ts_s=None, cameras=["south"]), ids[2:]),
        (dict(from_ts_s=None, to_ts_s=None, cameras=None, upper_color="red"), [ids[0], ids[2]]),
        (dict(from_ts_s=1001.0, to_ts_s=1002.0, cameras=None), []),
    ]
    for kwargs, want in table:
        got = cat.filter_ids("e", **kwargs)  # type: ignore[arg-type]
        assert (got if got is None else sorted(got.tolist())) == want, kwargs
    assert cat.filter_ids("other", 0.0, None, None).tolist() == []


def test_cameras_are_typed_rows(cat: Catalog) -> None:
    v = cat.begin_video("north", "/a.mp4", "a", 1000.0, 10.0, 100, (64, 64), "e").id
    cat.commit_chunk(v, Checkpoint([_row("north", 1000.0)], [], 1.0, 1, True))
    assert cat.cameras() == [CameraStats("north", 1, 10.0, 1000.0, 1010.0, 1)]


def test_a_failed_video_is_taken_up_again_at_its_new_path(cat: Catalog) -> None:
    v = cat.begin_video("cam", "/a.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e")
    cat.fail_video(v.id, "truncated")
    again = cat.begin_video("cam", "/moved/a.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e")
    assert (again.id, again.status, again.error, again.path) == (v.id, "ingesting", None, "/moved/a.mp4")


def test_one_process_holds_a_video_lease_until_it_releases_or_it_expires(reopen: Callable[[], Catalog]) -> None:
    a, b = reopen(), reopen()  # two processes
    v = a.begin_video("cam", "/a.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e").id
    assert a.claim_video(v, "A", 60) is None
    assert b.claim_video(v, "B", 60) == "A"  # refused, naming the holder
    assert a.claim_video(v, "A", 60) is None  # renewal
    a.release_video(v, "A")
    assert b.claim_video(v, "B", 0.05) is None
    import time

    time.sleep(0.1)  # B died without releasing: its lease expires
    assert a.claim_video(v, "A", 60) is None
    assert b.claim_video(v, "B", 60, take_from="X") == "A"  # take_from only takes from the named holder
    assert b.claim_video(v, "B", 60, take_from="A") is None


def test_a_checkpoint_of_a_process_that_lost_its_lease_stores_nothing(reopen: Callable[[], Catalog]) -> None:
    from vsearch.errors import LeaseLostError

    a, b = reopen(), reopen()
    v = a.begin_video("cam", "/a.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e").id
    a.claim_video(v, "A", 60)
    b.claim_video(v, "B", 60, take_from="A")  # A stalled; B took over
    with pytest.raises(LeaseLostError, match="lost its lease to B"):
        a.commit_chunk(v, Checkpoint([_row("cam", 1.0)], [(1, 1.0, (0, 0, 1, 1), 0.9)], 60.0, 10, False), owner="A")
    assert a.count_sightings() == 0 and a.last_seq() == 0 and a.video(v).processed_until_s == 0
    b.commit_chunk(v, Checkpoint([_row("cam", 1.0)], [], 60.0, 10, True, resume_state='{"frame_id": 3}'), owner="B")
    done = a.video(v)
    assert (done.status, done.processed_until_s, done.resume_state) == ("done", 60.0, None)
    assert a.claim_video(v, "A", 60) is None  # the lease ended with the video


def test_postgres_migrates_once_and_refuses_a_newer_schema(postgres_url: str) -> None:
    import psycopg

    from vsearch.catalog import PostgresCatalog

    first, second = PostgresCatalog(postgres_url), PostgresCatalog(postgres_url)  # two nodes starting together
    assert first.schema_version == second.schema_version == SCHEMA_VERSION
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, 'from the future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(IndexStateError, match="newer than this vsearch knows"):
        PostgresCatalog(postgres_url)


def test_an_unreachable_postgres_is_a_clear_error_at_once() -> None:
    """A refused connection is reported when it is refused (with the reason), not after the pool's retries."""
    import time

    from vsearch.catalog import PostgresCatalog
    from vsearch.errors import InputError

    t = time.monotonic()
    with pytest.raises(InputError, match=r"cannot connect to the catalog at postgresql://vsearch:\*\*\*@127.0.0.1:9/x: .*refused"):
        PostgresCatalog("postgresql://vsearch:secret@127.0.0.1:9/x")
    assert time.monotonic() - t < 5

def test_marks_are_stored_newest_first_and_kept_per_sighting(tmp_path: Path) -> None:
    from vsearch.catalog import Mark

    cat = SqliteCatalog(tmp_path / "c.sqlite")
    cat.add_marks([Mark(7, "same", "abc", "ana"), Mark(9, "different", "abc", "ana")])
    cat.add_marks([Mark(7, "different", "def", "bo")])
    assert [(m.sighting_id, m.mark, m.marked_by) for m in cat.marks()] == [(7, "different", "bo"), (9, "different", "ana"), (7, "same", "ana")]
    assert [m.query_sha256 for m in cat.marks(7)] == ["def", "abc"] and all(m.ts_s > 0 for m in cat.marks())
    with pytest.raises(sqlite3.IntegrityError):  # only the two verdicts
        cat.add_marks([Mark(7, "maybe", "abc", "ana")])
    assert len(cat.marks()) == 3


def test_a_time_window_reads_sightings_by_id_range_only(tmp_path: Path) -> None:
    """The partial minutes of a time window are counted by id range in the (embedder, id, ts) index, never read
    from the table (1 KB embeddings a row: half of a 10 M search's time) nor through the embedder or time index
    alone (every sighting of the embedder, or of the window, at every query); legacy ids by the primary key."""
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    v = cat.begin_video("north", "/a.mp4", "a", 1000.0, 10.0, 100, (64, 64), "e").id
    ids = cat.commit_chunk(v, Checkpoint([_row("north", 1000.0 + 7 * i) for i in range(60)], [], 1.0, 1, True))
    statements: list[str] = []
    cat._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    got = cat.select("e", 1030.0, 1200.0, None)
    cat._db.set_trace_callback(None)  # type: ignore[attr-defined]
    assert got is not None and got.count == sum(1030.0 <= 1000.0 + 7 * i <= 1200.0 for i in range(60))
    assert len(got.ids) == 0 and len(got.ranges) == 1 and len(got.partial) == 2 and len(ids) == 60
    reads = [s for s in statements if "FROM sightings" in s]
    assert len(reads) == 3  # two partial minutes, the legacy ids
    plans = [" | ".join(r[3] for r in cat._db.execute("EXPLAIN QUERY PLAN " + sql)) for sql in reads]  # type: ignore[attr-defined]
    for plan in plans:
        assert "SCAN" not in plan and "USING INDEX" not in plan, plan
    assert sum("COVERING INDEX sightings_embedder_ts (embedder=? AND id>? AND id<?)" in p for p in plans) == 2, plans
    assert sum("INTEGER PRIMARY KEY (rowid<?)" in p for p in plans) == 1, plans
    # what the index returns from the partial minutes is checked by time: read from that index too, not the table
    # (a row a sighting: random reads of a 15 GB table at 10 M, 5 ms of a 1 % window's 12 ms)
    statements.clear()
    cat._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    assert cat.times("e", ids[:3] + [10**12]) == {i: 1000.0 + 7 * n for n, i in enumerate(ids[:3])}
    cat._db.set_trace_callback(None)  # type: ignore[attr-defined]
    (read,) = [s for s in statements if "FROM sightings" in s]
    plan = " | ".join(r[3] for r in cat._db.execute("EXPLAIN QUERY PLAN " + read))  # type: ignore[attr-defined]
    assert "COVERING INDEX sightings_embedder_ts (embedder=? AND id=?)" in plan, plan


def _cameras_catalog(cat: Catalog) -> list[int]:
    """30 sightings, one a second from 1000 s: every third of camera south, the others of north."""
    v = cat.begin_video("north", "/a.mp4", "a", 1000.0, 10.0, 100, (64, 64), "e").id
    return cat.commit_chunk(v, Checkpoint([_row("north" if i % 3 else "south", 1000.0 + i) for i in range(30)], [], 1.0, 1, True))


def _search_cameras(cat: Catalog, folder: Path, window: tuple[float | None, float | None], cameras: tuple[str, ...]) -> list[int]:
    """Every sighting a store search with this filter returns (the filter inside the FAISS search)."""
    from vsearch.store import IndexFilter, Store

    store = Store(cat, folder, "e", 4)
    return sorted(store.search(V, 100, IndexFilter(*window, cameras=cameras)).ids.tolist())


def test_a_camera_filter_is_a_camera_slot_never_a_list_of_ids(tmp_path: Path) -> None:
    """A camera (with or without a window) is its slot in the ids (vsearch.ids): counted from id_slots by primary
    key, one row a camera a minute, the partial minutes by id range in the (embedder, id, ts) index; no statement
    lists the camera's sightings, so the catalog's part does not grow with them. The index searches that
    camera's partition only, and returns exactly its sightings in the window."""
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    ids = _cameras_catalog(cat)
    south = int(cat._q("SELECT slot FROM cameras WHERE id = 'south'")[0][0])  # type: ignore[attr-defined]
    assert south >= 1 and {i >> 12 & 4095 for i in ids[::3]} == {south}  # the slot is in the id
    for window in ((None, None), (1005.0, 1020.0)):
        statements: list[str] = []
        cat._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        got = cat.select("e", *window, ["south"])
        cat._db.set_trace_callback(None)  # type: ignore[attr-defined]
        lo, hi = window[0] or 0, window[1] or 1e9
        wanted = [ids[i] for i in range(0, 30, 3) if lo <= 1000 + i <= hi]
        assert got is not None and got.slots == (south,) and len(got.ids) == 0 and got.count == len(wanted)
        assert _search_cameras(cat, tmp_path / f"index{lo}", window, ("south",)) == sorted(wanted)
        plans = [" | ".join(r[3] for r in cat._db.execute("EXPLAIN QUERY PLAN " + sql)) for sql in statements  # type: ignore[attr-defined]
                 if "FROM sightings" in sql or "FROM id_slots" in sql]  # fmt: skip
        assert plans[0] == "SEARCH id_slots USING INDEX sqlite_autoindex_id_slots_1 (slot=? AND bucket>? AND bucket<?)", plans  # its key
        # a window's two partial minutes (16 and 17) counted by id range
        assert plans[1:] == ["SEARCH sightings USING COVERING INDEX sightings_embedder_ts (embedder=? AND id>? AND id<?)"] * (
            2 if window[0] else 0), plans  # fmt: skip
    assert _search_cameras(cat, tmp_path / "both", (None, None), ("south", "north")) == sorted(ids)


def test_postgres_counts_a_camera_filter_by_primary_key_and_id_range(postgres_url: str, tmp_path: Path) -> None:
    """The same statements on PostgreSQL: id_slots and the partial minutes by index (the planner told that a table
    scan costs more than any index, as it does on a large table); the search returns the camera's sightings."""
    from vsearch.catalog import PostgresCatalog

    cat = PostgresCatalog(postgres_url)
    ids = _cameras_catalog(cat)
    with traced_queries(cat) as statements:
        got = cat.select("e", 1005.0, 1020.0, ["south"])
    assert got is not None and len(got.ids) == 0 and got.count == 5
    reads = [s for s in statements if "FROM sightings" in s[0] or "FROM id_slots" in s[0]]
    assert not any("camera_id" in sql for sql, _ in reads)  # no statement lists the camera's sightings
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE sightings")
        conn.execute("VACUUM ANALYZE id_slots")
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plans = ["\n".join(r[0] for r in conn.execute("EXPLAIN " + cat.dialect.sql(sql), args)) for sql, args in reads]
    assert "Index Only Scan using id_slots_pkey" in plans[0] or "Index Scan using id_slots_pkey" in plans[0], plans
    assert "Index Cond: ((slot = " in plans[0] and "(bucket >= " in plans[0], plans
    # the (embedder, id, ts) index of the window's day alone (the catalog is partitioned by day: partitions.py)
    assert len(plans) == 3 and all(
        re.search(r"Index Only Scan using sightings_d19700101_embedder_id_ts_idx on sightings_d19700101", p)
        and p.count(" on sightings_") == 1 for p in plans[1:]
    ), plans
    assert all("(id >= " in p and "(id < " in p for p in plans[1:]) and not any("Seq Scan" in p for p in plans), plans
    assert _search_cameras(cat, tmp_path, (1005.0, 1020.0), ("south",)) == [ids[i] for i in range(6, 21, 3)]


def test_a_catalog_and_index_made_before_camera_slots_keep_working(tmp_path: Path) -> None:
    """A catalog and Flat index written by vsearch before camera slots (tests/data/make_catalog_v13.py): the
    migration keeps every id, reserves the slots the old ids reach (4,200 sightings in one minute: slots 0 and 1)
    and their time span; the old index file loads (split by slot); camera filters return old and new sightings of
    their camera only; new ids in an old minute never collide with old ones; deleting works on both."""
    import tarfile

    from vsearch.store import IndexFilter, Store

    with tarfile.open(Path(__file__).parent / "data" / "catalog_v13.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    before = sqlite3.connect(tmp_path / "catalog.sqlite")
    old = {c: sorted(r[0] for r in before.execute("SELECT id FROM sightings WHERE camera_id = ?", (c,))) for c in ("north", "south")}
    assert before.execute("PRAGMA user_version").fetchone()[0] == 13 and len(old["north"]) == 4200
    before.close()
    cat = SqliteCatalog(tmp_path / "catalog.sqlite")
    assert cat.schema_version == SCHEMA_VERSION
    assert cat._q("SELECT legacy_slots, legacy_from_ts, legacy_to_ts FROM id_layout") == [(2, 1000.0, 1290.0)]  # type: ignore[attr-defined]
    assert sorted(cat.sighting_ids("e").tolist()) == sorted(old["north"] + old["south"])  # no id rewritten
    store = Store(cat, tmp_path / "index", "e", 4)
    assert store.index.ntotal == 4230 and store.index.kind == "Flat"
    assert cat.count_sightings("e") == 4230 and store._load_verified() is not None  # the old file, not a rebuild

    def found(window: tuple[float | None, float | None], cameras: tuple[str, ...]) -> list[int]:
        return sorted(store.search(V, 5000, IndexFilter(*window, cameras=cameras)).ids.tolist())

    assert found((None, None), ("south",)) == old["south"] and found((None, None), ("north",)) == old["north"]
    # new footage of both cameras, in the old busy minute (20) and later
    v = cat.begin_video("south", "/c.mp4", "c", 1000.0, 10.0, 100, (64, 64), "e").id
    new = store.commit_chunk(v, Checkpoint([_row("south", t) for t in (1201.0, 1230.0, 5000.0)], [], 1.0, 1, True))
    w = cat.begin_video("north", "/d.mp4", "d", 1000.0, 10.0, 100, (64, 64), "e").id
    new_north = store.commit_chunk(w, Checkpoint([_row("north", t) for t in (1202.0, 5001.0)], [], 1.0, 1, True))
    assert not set(new + new_north) & set(old["north"] + old["south"]) and len(set(new + new_north)) == 5
    assert all(i >> 12 & 4095 >= 2 for i in new + new_north)  # slots above the reserved ones
    assert found((None, None), ("south",)) == sorted(old["south"] + new)
    assert found((1200.0, 1259.0), ("north",)) == sorted(old["north"] + new_north[:1])
    got = cat.select("e", 1200.0, 1259.0, ["south"])
    assert got is not None and got.count == 2 + sum(1200 <= 1000 + 10 * i <= 1259 for i in range(30))
    assert len(store.delete_video(v)) == 3 and len(store.delete_video(2)) == 30  # new, then old south footage
    assert found((None, None), ("south",)) == [] and cat.select("e", None, None, ["south"]).count == 0  # type: ignore[union-attr]
    assert found((None, None), ("north",)) == sorted(old["north"] + new_north)


def test_watchlist_alerts_are_one_per_entry_per_track_folded_by_the_rate_limit(cat: Catalog) -> None:
    """Alerts on both engines: a track's later crops raise its alert's best score instead of adding one; a new
    track of the same entry on the same camera within the fold window joins the alert; a change bumps the version."""
    from vsearch.catalog import Hit, WatchVector

    v0 = cat.watch_version()
    e = cat.add_watch_entry("x", None, ["c"], 0.5, None, "emb", "ivan", [WatchVector(0, "image:ab", V)])
    assert (e.vectors, e.cameras, e.status) == (1, ("c",), "active") and cat.watch_version() == v0 + 1
    with cat.transaction():
        first = cat.record_hits([Hit(e.id, "c", 1, 7, 101, 0.6, 1000.0)], fold_s=60)
        again = cat.record_hits([Hit(e.id, "c", 1, 7, 102, 0.8, 1002.0), Hit(e.id, "c", 1, 7, 103, 0.7, 1004.0)], 60)
        folded = cat.record_hits([Hit(e.id, "c", 1, 8, 104, 0.65, 1030.0), Hit(e.id, "c", 1, 10, 106, 0.95, 1040.0)], 60)
        later = cat.record_hits([Hit(e.id, "c", 1, 9, 105, 0.9, 2000.0)], fold_s=60)
    assert len(first) == 1 and again == [] and folded == [] and len(later) == 1
    a = cat.alert(first[0])
    # the alert names its best crop, of whichever of its tracks
    assert (a.sighting_id, a.track_id, round(a.score, 3), a.ts_s, a.first_ts_s, a.last_ts_s, a.tracks) == (
        106, 10, 0.95, 1040.0, 1000.0, 1040.0, 3)
    assert [x.id for x in cat.alerts()] == [later[0], first[0]]
    assert cat.ack_alert(a.id, "false", "ivan").status == "false"
    assert cat.set_watch_status(e.id, "paused").status == "paused" and cat.watch_version() == v0 + 2
    cat.set_watch_status(e.id, "removed")
    assert cat.watch_entries() == [] and len(cat.alerts([e.id])) == 2  # alerts outlive their entry
