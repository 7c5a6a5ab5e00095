"""Retention behind its own small interface: per-camera limits, what an open case holds, what has expired, the
deletions (logged, so the index follows) and a journal of the files they leave to remove.

Held: the rows of every video span an open case's items cover (the item's start..end pts, widened by `pad_s`:
its clip's padding), of every track, and the video itself (the span is cut from it). An expired video with no
held span goes whole; otherwise only its rows outside held spans go. A deletion and the files it makes stale
(`retention_files`) commit together, so a crash never leaves a file without the journal line that removes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from vsearch.catalog.engine import Db, SqlEngine
from vsearch.errors import NotFoundError
from vsearch.ids import DAY_S, FIRST_TIMED_ID, ID_BUCKET_S, day_ids, is_legacy, minute_of_id, slot_of

# a row of `s` (sightings) or `b` (track boxes) of video `v` inside a span an open case holds
_HELD = (
    "EXISTS (SELECT 1 FROM case_items ci JOIN cases c ON c.id = ci.case_id WHERE c.closed_at IS NULL"
    " AND ci.video_id = {t}.video_id AND {t}.pts BETWEEN ci.start_pts - ? AND ci.end_pts + ?)"
)
# an open case holds a span that reaches into [?, ?) (absolute times, the caller pads them)
_SPAN_HELD = (
    "SELECT 1 FROM case_items ci JOIN cases c ON c.id = ci.case_id JOIN videos v ON v.id = ci.video_id"
    " WHERE c.closed_at IS NULL AND v.start_ts + ci.end_pts >= ? AND v.start_ts + ci.start_pts < ? LIMIT 1"
)
# the distinct values of a column among a range's rows, one index probe each (a loose index scan)
_DISTINCT = (
    "WITH RECURSIVE d(x) AS (SELECT MIN({col}) FROM {table} WHERE {key} >= ? AND {key} < ? UNION ALL"
    " SELECT (SELECT MIN({col}) FROM {table} WHERE {key} >= ? AND {key} < ? AND {col} > d.x) FROM d WHERE d.x IS NOT NULL)"
    " SELECT x FROM d WHERE x IS NOT NULL"
)
_VIDEO_HELD = (
    "EXISTS (SELECT 1 FROM case_items ci JOIN cases c ON c.id = ci.case_id WHERE c.closed_at IS NULL"
    " AND ci.video_id = v.id)"
)


class RetentionBook(SqlEngine):
    """Retention's rows, over the catalog's SQL engine."""

    def camera_retention(self) -> dict[str, float | None]:
        """Every camera's own retention in days (None: the default applies)."""
        return {r[0]: r[1] for r in self._q("SELECT id, retention_days FROM cameras ORDER BY id")}

    def set_camera_retention(self, camera_id: str, days: float | None) -> None:
        """Set (None: clear) a camera's own retention; NotFoundError for an unknown camera."""
        with self._tx() as db:
            if db.execute("UPDATE cameras SET retention_days=? WHERE id=?", (days, camera_id)).rowcount != 1:
                raise NotFoundError(f"unknown camera {camera_id!r}")

    # -- what has expired ------------------------------------------------------------------------------------
    def expired_videos(self, camera_id: str, cutoff_ts_s: float, limit: int = 100) -> list[tuple[int, str]]:
        """(id, path) of the camera's videos that ended before `cutoff_ts_s` and no open case holds, oldest first.
        A video still being ingested is never expired."""
        return [(int(r[0]), r[1]) for r in self._q(
            "SELECT v.id, v.path FROM videos v WHERE v.camera_id = ? AND v.status <> 'ingesting'"
            f" AND v.start_ts + v.frame_count / v.fps < ? AND NOT {_VIDEO_HELD} ORDER BY v.start_ts LIMIT ?",
            (camera_id, cutoff_ts_s, limit))]  # fmt: skip

    def expired_sightings(self, camera_id: str, cutoff_ts_s: float, pad_s: float, limit: int) -> list[tuple[int, str]]:
        """(id, thumb_path) of the camera's sightings before `cutoff_ts_s` outside every held span, oldest first."""
        return [(int(r[0]), r[1]) for r in self._q(
            f"SELECT s.id, s.thumb_path FROM sightings s WHERE s.camera_id = ? AND s.ts < ? AND NOT {_HELD.format(t='s')}"
            " ORDER BY s.ts LIMIT ?", (camera_id, cutoff_ts_s, pad_s, pad_s, limit))]  # fmt: skip

    def count_expired(self, camera_id: str, cutoff_ts_s: float, pad_s: float) -> tuple[int, int, int]:
        """(videos, sightings, track boxes) that a run would delete now: for --dry-run."""
        videos = self._q(
            "SELECT COUNT(*) FROM videos v WHERE v.camera_id = ? AND v.status <> 'ingesting'"
            f" AND v.start_ts + v.frame_count / v.fps < ? AND NOT {_VIDEO_HELD}", (camera_id, cutoff_ts_s))[0][0]  # fmt: skip
        sightings = self._q(
            f"SELECT COUNT(*) FROM sightings s WHERE s.camera_id = ? AND s.ts < ? AND NOT {_HELD.format(t='s')}",
            (camera_id, cutoff_ts_s, pad_s, pad_s))[0][0]  # fmt: skip
        boxes = self._q(
            "SELECT COUNT(*) FROM track_boxes b JOIN videos v ON v.id = b.video_id WHERE v.camera_id = ?"
            f" AND v.start_ts + b.pts < ? AND NOT {_HELD.format(t='b')}", (camera_id, cutoff_ts_s, pad_s, pad_s))[0][0]  # fmt: skip
        return int(videos), int(sightings), int(boxes)

    def held_query_sha256s(self) -> set[str]:
        """The query images open cases' items cite."""
        return {r[0] for r in self._q(
            "SELECT DISTINCT ci.query_sha256 FROM case_items ci JOIN cases c ON c.id = ci.case_id"
            " WHERE c.closed_at IS NULL AND ci.query_sha256 IS NOT NULL")}  # fmt: skip

    def held_spans(self) -> dict[int, list[tuple[float, float]]]:
        """Per video, the (start, end) pts spans open cases hold (without padding)."""
        spans: dict[int, list[tuple[float, float]]] = {}
        for v, p0, p1 in self._q(
            "SELECT ci.video_id, ci.start_pts, ci.end_pts FROM case_items ci JOIN cases c ON c.id = ci.case_id"
            " WHERE c.closed_at IS NULL"
        ):
            spans.setdefault(int(v), []).append((float(p0), float(p1)))
        return spans

    def video_ends(self, video_ids: Sequence[int]) -> dict[int, tuple[str, float]]:
        """(camera, start_ts) of the videos the catalog still holds, of these ids."""
        return {int(r[0]): (r[1], float(r[2])) for r in self._select_ids("SELECT id, camera_id, start_ts FROM videos WHERE {}", "id", list(video_ids))}

    # -- deletions: each inside the caller's transaction (with its audit entry and journal lines) -------------------
    def delete_expired_video(self, video_id: int) -> tuple[int, int, list[str]]:
        """Delete a video and its rows (logged: the index follows); (sightings, track boxes, crop paths)."""
        with self._tx() as db:
            rows = db.execute("SELECT id, embedder, thumb_path FROM sightings WHERE video_id=? ORDER BY id", (video_id,)).fetchall()
            boxes = int(db.execute("SELECT COUNT(*) FROM track_boxes WHERE video_id=?", (video_id,)).fetchone()[0])
            self._forget_sightings(db, [(int(r[0]), r[1]) for r in rows])
            db.execute("DELETE FROM track_boxes WHERE video_id=?", (video_id,))
            db.execute("DELETE FROM videos WHERE id=?", (video_id,))
        return len(rows), boxes, [r[2] for r in rows]

    def delete_sightings(self, ids: Sequence[int]) -> int:
        """Delete these sightings (logged: the index follows); how many there were."""
        with self._tx() as db:
            rows = [(int(r[0]), r[1]) for r in db.execute(
                f"SELECT id, embedder FROM sightings WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", tuple(ids)
            ).fetchall()] if ids else []  # fmt: skip
            self._forget_sightings(db, rows)
        return len(rows)

    def delete_expired_boxes(self, camera_id: str, cutoff_ts_s: float, pad_s: float) -> int:
        """Delete the camera's track boxes before `cutoff_ts_s` outside held spans; how many."""
        with self._tx() as db:
            return int(db.execute(
                "DELETE FROM track_boxes WHERE video_id IN (SELECT id FROM videos WHERE camera_id = ?)"
                " AND (SELECT start_ts FROM videos v WHERE v.id = track_boxes.video_id) + pts < ?"
                f" AND NOT {_HELD.format(t='track_boxes')}", (camera_id, cutoff_ts_s, pad_s, pad_s)).rowcount)  # fmt: skip

    def _forget_sightings(self, db: Db, rows: Sequence[tuple[int, str]]) -> None:
        """Delete sightings (id, embedder) with what only they give meaning to (marks, staged vectors), logged."""
        if not rows:
            return
        self._order_log(db)
        gone: dict[int, int] = {}
        gone_slots: dict[tuple[int, int], int] = {}  # (camera slot, minute): ids with camera slots (vsearch.ids)
        ids = np.array([i for i, _ in rows], np.int64)
        legacy = is_legacy(ids, int(db.execute("SELECT legacy_slots FROM id_layout").fetchone()[0]))
        for i, old, slot in zip(ids.tolist(), legacy.tolist(), slot_of(ids).tolist(), strict=True):
            if i >= FIRST_TIMED_ID:
                gone[minute_of_id(i)] = gone.get(minute_of_id(i), 0) + 1
                if not old:
                    gone_slots[(slot, minute_of_id(i))] = gone_slots.get((slot, minute_of_id(i)), 0) + 1
        db.executemany("UPDATE id_buckets SET n = n - ? WHERE bucket = ?", [(n, b) for b, n in gone.items()])
        db.executemany(
            "UPDATE id_slots SET n = n - ? WHERE slot = ? AND bucket = ?", [(n, s, b) for (s, b), n in gone_slots.items()]
        )
        db.executemany("INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (?, ?, 0)", rows)
        for table, column in (("search_marks", "sighting_id"), ("staged_vectors", "sighting_id"), ("sightings", "id")):
            db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i, _ in rows])

    # -- whole days: PostgreSQL's day partitions (catalog/partitions.py); none on SQLite -----------------------------
    def droppable_days(self, cutoffs: dict[str, float], pad_s: float) -> list[int]:
        """The UTC days whose sightings and track boxes can go whole, by dropping their partitions: every camera
        with rows in the day has a limit whose cutoff (`cutoffs`: epoch s per camera) is at or after the day's end,
        and no open case holds a span reaching into it (padded by `pad_s` and a minute more: a sighting's time and
        its video's start + pts may differ). A day partly held or partly expired is left to the row deletions."""
        if not cutoffs:
            return []
        days = sorted(set(self._day_partitions("sightings")) | set(self._day_partitions("track_boxes")))
        out = []
        for day in days:
            t0, t1 = day * DAY_S, (day + 1) * DAY_S
            if t1 > max(cutoffs.values()):
                break
            lo, hi = day_ids(day)
            cameras = {r[0] for r in self._q(_DISTINCT.format(col="camera_id", table="sightings", key="id"), (lo, hi) * 2)}
            videos = [r[0] for r in self._q(_DISTINCT.format(col="video_id", table="track_boxes", key="ts"), (t0, t1) * 2)]
            cameras |= set(self.video_ends(videos)[v][0] for v in videos)
            if any(cutoffs.get(c, -1.0) < t1 for c in cameras) or self._q(_SPAN_HELD, (t0 - pad_s - 60, t1 + pad_s + 60)):
                continue
            out.append(day)
        return out

    def drop_expired_day(self, day: int) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Drop a day's partitions of sightings and track boxes (one of `droppable_days`), with what only its
        sightings give meaning to (marks, staged vectors, attributes, their id counts); their removals logged (the
        index follows) and their crops journaled, in one statement each. (sightings, track boxes) per camera, and
        their crop files journaled."""
        lo, hi = day_ids(day)
        t0, t1 = day * DAY_S, (day + 1) * DAY_S
        minutes = (day * DAY_S // ID_BUCKET_S, (day + 1) * DAY_S // ID_BUCKET_S)
        sightings: dict[str, int] = {}
        boxes: dict[str, int] = {}
        files: dict[str, int] = {}
        with self._tx() as db:
            if day in self._day_partitions("sightings"):  # else its rows are in the default partition: left to rows
                self._order_log(db)
                where = "FROM sightings WHERE id >= ? AND id < ?"
                for camera, n, crops in db.execute(
                    f"SELECT camera_id, COUNT(*), COUNT(DISTINCT thumb_path) {where} GROUP BY camera_id", (lo, hi)
                ).fetchall():
                    sightings[camera], files[camera] = int(n), int(crops)
                db.execute(f"INSERT INTO sighting_log (sighting_id, embedder, added) SELECT id, embedder, 0 {where} ORDER BY id", (lo, hi))
                db.execute(f"INSERT INTO retention_files (path, added_at) SELECT DISTINCT thumb_path, ? {where}"
                           " ON CONFLICT (path) DO NOTHING", (time.time(), lo, hi))  # fmt: skip
                for table in ("search_marks", "staged_vectors", "sighting_attributes"):
                    db.execute(f"DELETE FROM {table} WHERE sighting_id >= ? AND sighting_id < ?", (lo, hi))
                for table in ("id_buckets", "id_slots"):
                    db.execute(f"UPDATE {table} SET n = 0 WHERE bucket >= ? AND bucket < ?", minutes)
                self._drop_day_partition(db, "sightings", day)
            if day in self._day_partitions("track_boxes"):
                boxes = dict(db.execute(
                    "SELECT v.camera_id, COUNT(*) FROM track_boxes b JOIN videos v ON v.id = b.video_id"
                    " WHERE b.ts >= ? AND b.ts < ? GROUP BY v.camera_id", (t0, t1)).fetchall())  # fmt: skip
                self._drop_day_partition(db, "track_boxes", day)
        return sightings, {c: int(n) for c, n in boxes.items()}, files

    def drop_log_days(self, before_ts_s: float) -> int:
        """Drop the change log's days that ended before `before_ts_s` (a follower further behind than that finds
        its index short of the catalog's count when it opens, and rebuilds); how many."""
        days = [d for d in self._day_partitions("sighting_log") if (d + 1) * DAY_S <= before_ts_s]
        with self._tx() as db:
            for day in days:
                self._drop_day_partition(db, "sighting_log", day)
        return len(days)

    # -- the journal of files to remove ----------------------------------------------------------------------------
    def journal_files(self, paths: Sequence[str]) -> None:
        """Record files to remove (in the caller's transaction: with the rows that named them)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO retention_files (path, added_at) VALUES (?, ?) ON CONFLICT (path) DO NOTHING",
                [(p, time.time()) for p in dict.fromkeys(paths)],
            )

    def journaled_files(self, limit: int = 1000) -> list[str]:
        return [r[0] for r in self._q("SELECT path FROM retention_files ORDER BY path LIMIT ?", (limit,))]

    def unjournal_files(self, paths: Sequence[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM retention_files WHERE path = ?", [(p,) for p in paths])
