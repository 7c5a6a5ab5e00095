"""SQLite metadata: cameras, videos, sightings (with their embeddings), track boxes and ingest progress.

The catalog is the source of truth. Each ingest checkpoint commits its sightings, their embeddings and the
video's progress in ONE transaction, so an interrupted ingest resumes exactly where its last commit ended. The
FAISS index is derived from the catalog and re-synchronised from it on open (see index.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import NotFoundError
from vsearch.types import Sighting

SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id TEXT NOT NULL REFERENCES cameras(id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    start_ts REAL NOT NULL,
    fps REAL NOT NULL,
    frame_count INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ingesting', 'done', 'failed')),
    processed_until_s REAL NOT NULL DEFAULT 0,
    frames_sampled INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    embedder TEXT NOT NULL,
    added_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    pts REAL NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    confidence REAL NOT NULL,
    quality REAL NOT NULL,
    thumb_path TEXT NOT NULL,
    embedder TEXT NOT NULL,
    embedding BLOB NOT NULL,
    upper_color TEXT,
    lower_color TEXT
);
CREATE INDEX IF NOT EXISTS sightings_cam_ts ON sightings (camera_id, ts);
CREATE INDEX IF NOT EXISTS sightings_ts ON sightings (ts);
CREATE INDEX IF NOT EXISTS sightings_track ON sightings (video_id, track_id);
CREATE INDEX IF NOT EXISTS sightings_embedder ON sightings (embedder, id);
CREATE TABLE IF NOT EXISTS track_boxes (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL,
    pts REAL NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (video_id, track_id, pts)
);
"""

SIGHTING_COLS = (
    "s.id, s.camera_id, s.video_id, v.path, s.track_id, s.ts, s.pts, s.x1, s.y1, s.x2, s.y2, s.confidence, s.thumb_path,"
    " s.upper_color, s.lower_color"
)


@dataclass(frozen=True)
class VideoRecord:
    id: int
    camera_id: str
    path: str
    sha256: str
    start_ts_s: float
    fps: float
    frame_count: int
    status: str
    processed_until_s: float
    frames_sampled: int
    error: str | None
    embedder: str


@dataclass(frozen=True)
class NewSighting:
    """A sighting about to be stored (its id is assigned by the catalog)."""

    camera_id: str
    track_id: int
    ts_s: float
    pts_s: float
    xyxy: tuple[float, float, float, float]
    confidence: float
    quality: float
    thumb_path: str
    embedding: NDArray[np.float32]
    upper_color: str | None = None
    lower_color: str | None = None


def _sighting(row: Sequence) -> Sighting:
    return Sighting(
        id=row[0], camera_id=row[1], video_id=row[2], video_path=row[3], track_id=row[4], ts_s=row[5],
        pts_s=row[6], xyxy=(row[7], row[8], row[9], row[10]), confidence=row[11], thumb_path=row[12],
        upper_color=row[13], lower_color=row[14],
    )  # fmt: skip


class Catalog:
    """SQLite catalog; safe to share between threads (one connection, serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(sightings)")}
            for col in ("upper_color", "lower_color"):  # catalogs written before colour attributes
                if col not in cols:
                    self._db.execute(f"ALTER TABLE sightings ADD COLUMN {col} TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- cameras and videos ---------------------------------------------------------------------------------
    def cameras(self) -> list[dict]:
        rows = self._q(
            "SELECT c.id, COUNT(DISTINCT v.id), COALESCE(SUM(v.frame_count / v.fps), 0), MIN(v.start_ts),"
            " MAX(v.start_ts + v.frame_count / v.fps) FROM cameras c LEFT JOIN videos v ON v.camera_id = c.id"
            " GROUP BY c.id ORDER BY c.id"
        )
        counts = dict(self._q("SELECT camera_id, COUNT(*) FROM sightings GROUP BY camera_id"))
        return [
            {"id": r[0], "videos": r[1], "footage_s": r[2], "first_ts_s": r[3], "last_ts_s": r[4],
             "sightings": counts.get(r[0], 0)}
            for r in rows
        ]  # fmt: skip

    def video_by_sha(self, sha256: str) -> VideoRecord | None:
        rows = self._q(f"SELECT {self._video_cols} FROM videos WHERE sha256 = ?", (sha256,))
        return VideoRecord(*rows[0]) if rows else None

    def video(self, video_id: int) -> VideoRecord:
        rows = self._q(f"SELECT {self._video_cols} FROM videos WHERE id = ?", (video_id,))
        if not rows:
            raise NotFoundError(f"no video with id {video_id}")
        return VideoRecord(*rows[0])

    def videos(self) -> list[VideoRecord]:
        return [VideoRecord(*r) for r in self._q(f"SELECT {self._video_cols} FROM videos ORDER BY id")]

    _video_cols = (
        "id, camera_id, path, sha256, start_ts, fps, frame_count, status, processed_until_s, frames_sampled,"
        " error, embedder"
    )

    def begin_video(
        self, camera_id: str, path: str, sha256: str, start_ts_s: float, fps: float, frame_count: int,
        resolution_wh: tuple[int, int], embedder: str,
    ) -> VideoRecord:  # fmt: skip
        """Register a video (or return its existing record: ingest is idempotent per file hash)."""
        with self._lock:
            existing = self.video_by_sha(sha256)
            if existing is not None:
                if existing.status == "failed":
                    self._db.execute(
                        "UPDATE videos SET status='ingesting', error=NULL, path=? WHERE id=?", (path, existing.id)
                    )
                    return self.video(existing.id)
                return existing
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO cameras (id, created_at) VALUES (?, ?)", (camera_id, time.time()))
                cur = self._db.execute(
                    "INSERT INTO videos (camera_id, path, sha256, start_ts, fps, frame_count, width, height, status,"
                    " embedder, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ingesting', ?, ?)",
                    (camera_id, path, sha256, start_ts_s, fps, frame_count, resolution_wh[0], resolution_wh[1],
                     embedder, time.time()),
                )  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self.video(int(cur.lastrowid or 0))

    def fail_video(self, video_id: int, error: str) -> None:
        self._q("UPDATE videos SET status='failed', error=? WHERE id=?", (error, video_id))

    def max_track_id(self, video_id: int) -> int:
        return int(self._q("SELECT COALESCE(MAX(track_id), 0) FROM track_boxes WHERE video_id=?", (video_id,))[0][0])

    def commit_chunk(
        self,
        video_id: int,
        sightings: Sequence[NewSighting],
        boxes: Sequence[tuple[int, float, tuple[float, float, float, float], float]],
        processed_until_s: float,
        frames_sampled: int,
        done: bool,
    ) -> list[int]:
        """Store one checkpoint's sightings and track boxes and advance the video's progress, atomically.

        Returns the ids given to `sightings`, in order.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                v = self._db.execute("SELECT embedder FROM videos WHERE id=?", (video_id,)).fetchone()
                ids = []
                for s in sightings:
                    cur = self._db.execute(
                        "INSERT INTO sightings (video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                        " quality, thumb_path, embedder, embedding, upper_color, lower_color)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (video_id, s.camera_id, s.track_id, s.ts_s, s.pts_s, *s.xyxy, s.confidence, s.quality,
                         s.thumb_path, v[0], np.ascontiguousarray(s.embedding, np.float32).tobytes(),
                         s.upper_color, s.lower_color),
                    )  # fmt: skip
                    ids.append(int(cur.lastrowid or 0))
                self._db.executemany(
                    "INSERT OR REPLACE INTO track_boxes (video_id, track_id, pts, x1, y1, x2, y2, confidence)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(video_id, tid, pts, *xyxy, conf) for tid, pts, xyxy, conf in boxes],
                )
                self._db.execute(
                    "UPDATE videos SET processed_until_s=?, frames_sampled=frames_sampled+?, status=?, finished_at=?"
                    " WHERE id=?",
                    (processed_until_s, frames_sampled, "done" if done else "ingesting",
                     time.time() if done else None, video_id),
                )  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return ids

    def delete_video(self, video_id: int) -> list[int]:
        """Remove a video and everything derived from it; returns the removed sighting ids (for the index)."""
        with self._lock:
            ids = [r[0] for r in self._q("SELECT id FROM sightings WHERE video_id=?", (video_id,))]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM videos WHERE id=?", (video_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return ids

    # -- sightings -----------------------------------------------------------------------------------------
    def count_sightings(self, embedder: str | None = None) -> int:
        if embedder is None:
            return int(self._q("SELECT COUNT(*) FROM sightings")[0][0])
        return int(self._q("SELECT COUNT(*) FROM sightings WHERE embedder=?", (embedder,))[0][0])

    def sighting_ids(self, embedder: str) -> NDArray[np.int64]:
        rows = self._q("SELECT id FROM sightings WHERE embedder=? ORDER BY id", (embedder,))
        return np.array([r[0] for r in rows], np.int64)

    def embeddings(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(ids, vectors) of the given sighting ids that exist."""
        got_ids, vecs = [], []
        id_list = [int(i) for i in ids]
        for i in range(0, len(id_list), 900):
            chunk = id_list[i : i + 900]
            for sid, blob in self._q(f"SELECT id, embedding FROM sightings WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                got_ids.append(sid)
                vecs.append(np.frombuffer(blob, np.float32))
        if not vecs:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array(got_ids, np.int64), np.stack(vecs)

    def max_sighting_id(self, embedder: str) -> int:
        return int(self._q("SELECT COALESCE(MAX(id), 0) FROM sightings WHERE embedder=?", (embedder,))[0][0])

    def embedders(self) -> list[str]:
        return [r[0] for r in self._q("SELECT DISTINCT embedder FROM sightings")]

    def iter_embeddings(
        self, embedder: str, after_id: int = 0, batch: int = 50_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """Stream (ids, vectors) of `embedder` with id > after_id, in id order."""
        last = after_id
        while True:
            rows = self._q(
                "SELECT id, embedding FROM sightings WHERE embedder=? AND id>? ORDER BY id LIMIT ?",
                (embedder, last, batch),
            )
            if not rows:
                return
            ids = np.array([r[0] for r in rows], np.int64)
            vecs = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
            yield ids, vecs
            last = int(ids[-1])

    def filter_ids(
        self,
        embedder: str,
        from_ts_s: float | None,
        to_ts_s: float | None,
        cameras: Sequence[str] | None,
        upper_color: str | None = None,
        lower_color: str | None = None,
    ) -> NDArray[np.int64] | None:
        """Ids of sightings inside the time window, cameras and clothing colours; None when nothing is filtered."""
        where: list[str] = ["embedder = ?"]
        args: list[object] = [embedder]
        if from_ts_s is not None:
            where.append("ts >= ?")
            args.append(from_ts_s)
        if to_ts_s is not None:
            where.append("ts <= ?")
            args.append(to_ts_s)
        if cameras:
            where.append(f"camera_id IN ({','.join('?' * len(cameras))})")
            args.extend(cameras)
        for col, val in (("upper_color", upper_color), ("lower_color", lower_color)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if len(where) == 1:
            return None
        rows = self._q(f"SELECT id FROM sightings WHERE {' AND '.join(where)}", args)
        return np.array([r[0] for r in rows], np.int64)

    def sightings(self, ids: Sequence[int]) -> dict[int, Sighting]:
        out: dict[int, Sighting] = {}
        ids = [int(i) for i in ids if 0 < int(i) < 2**63]  # others cannot exist (SQLite integers are 64-bit)
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            rows = self._q(
                f"SELECT {SIGHTING_COLS} FROM sightings s JOIN videos v ON v.id = s.video_id"
                f" WHERE s.id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out.update((r[0], _sighting(r)) for r in rows)
        return out

    def sighting(self, sighting_id: int) -> Sighting:
        got = self.sightings([sighting_id])
        if sighting_id not in got:
            raise NotFoundError(f"no sighting with id {sighting_id}")
        return got[sighting_id]

    def track_boxes(self, video_id: int, track_id: int) -> list[tuple[float, tuple[float, float, float, float], float]]:
        rows = self._q(
            "SELECT pts, x1, y1, x2, y2, confidence FROM track_boxes WHERE video_id=? AND track_id=? ORDER BY pts",
            (video_id, track_id),
        )
        return [(r[0], (r[1], r[2], r[3], r[4]), r[5]) for r in rows]
