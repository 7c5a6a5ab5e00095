"""The catalog: cameras, videos, sightings (with their embeddings), track boxes, ingest progress. Pure storage.

The catalog is the source of truth. Each ingest checkpoint commits its sightings, their embeddings and the
video's progress in ONE transaction, so an interrupted ingest resumes exactly where its last commit ended. Every
sighting added or removed is also written, in the same transaction, to a change log with a sequence number:
whatever follows the catalog (the vector index, see store.py) catches up by reading the log past the last
sequence it applied, never by rescanning the collection.

`Catalog` is the interface the rest of vsearch uses; `SqliteCatalog` is the embedded implementation. Schemas
are versioned: each migration runs once, in order, inside a transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import IndexStateError, LeaseLostError, NotFoundError
from vsearch.types import Sighting

TrackBoxRow = tuple[int, float, tuple[float, float, float, float], float]  # (track_id, pts_s, xyxy, confidence)


@dataclass(frozen=True)
class CameraStats:
    """A camera and what the catalog holds of it."""

    id: str
    videos: int
    footage_s: float
    first_ts_s: float | None
    last_ts_s: float | None
    sightings: int


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
    resume_state: str | None = None  # JSON the ingest left at its last checkpoint (track.TrackerState)


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


@dataclass(frozen=True)
class Changes:
    """Sightings of one embedder added and removed after a log sequence number, in log order.

    `ops` lists (sighting_id, vector) in order: a vector for an addition, None for a removal. An addition whose
    sighting was removed later carries no vector either; its removal follows it.
    """

    ops: list[tuple[int, NDArray[np.float32] | None]]
    last_seq: int  # the sequence number these changes bring a follower to


@dataclass(frozen=True)
class Mark:
    """An investigator's verdict on a search result: the sighting is the person searched for ("same") or not
    ("different"); with the query images' sha256s (comma-separated) and who marked it."""

    sighting_id: int
    mark: str  # "same" or "different"
    query_sha256: str
    marked_by: str
    ts_s: float = 0.0  # when it was stored (epoch seconds); set by the catalog


class Catalog(Protocol):
    """What vsearch needs from a catalog (SQLite embedded; another database behind the same methods)."""

    def close(self) -> None: ...

    # cameras and videos
    def cameras(self) -> list[CameraStats]: ...
    def video_by_sha(self, sha256: str) -> VideoRecord | None: ...
    def video(self, video_id: int) -> VideoRecord: ...
    def videos(self) -> list[VideoRecord]: ...
    def begin_video(
        self, camera_id: str, path: str, sha256: str, start_ts_s: float, fps: float, frame_count: int,
        resolution_wh: tuple[int, int], embedder: str,
    ) -> VideoRecord: ...  # fmt: skip
    def fail_video(self, video_id: int, error: str, owner: str | None = None) -> None: ...
    def claim_video(self, video_id: int, owner: str, lease_s: float, take_from: str | None = None) -> str | None: ...
    def release_video(self, video_id: int, owner: str) -> None: ...
    def max_track_id(self, video_id: int) -> int: ...
    def commit_chunk(
        self, video_id: int, sightings: Sequence[NewSighting], boxes: Sequence[TrackBoxRow],
        processed_until_s: float, frames_sampled: int, done: bool, owner: str | None = None,
        resume_state: str | None = None,
    ) -> list[int]: ...  # fmt: skip
    def delete_video(self, video_id: int) -> list[int]: ...

    # sightings
    def count_sightings(self, embedder: str | None = None) -> int: ...
    def embedders(self) -> list[str]: ...
    def sighting_ids(self, embedder: str) -> NDArray[np.int64]: ...
    def embeddings(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...
    def iter_embeddings(
        self, embedder: str, batch: int = 50_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]: ...
    def filter_ids(
        self, embedder: str, from_ts_s: float | None, to_ts_s: float | None, cameras: Sequence[str] | None,
        upper_color: str | None = None, lower_color: str | None = None,
    ) -> NDArray[np.int64] | None: ...  # fmt: skip
    def sightings(self, ids: Iterable[int]) -> dict[int, Sighting]: ...
    def sighting(self, sighting_id: int) -> Sighting: ...
    def track_boxes(self, video_id: int, track_id: int) -> list[tuple[float, tuple[float, float, float, float], float]]: ...

    # the change log followers catch up from
    def last_seq(self) -> int: ...
    def changes_since(self, seq: int, embedder: str, limit: int = 50_000) -> Changes: ...

    # investigators' marks on search results
    def add_marks(self, marks: Sequence[Mark]) -> None: ...
    def marks(self, sighting_id: int | None = None, limit: int = 1000) -> list[Mark]: ...


# -- SQLite ------------------------------------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE videos (
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
CREATE TABLE sightings (
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
    embedding BLOB NOT NULL
);
CREATE INDEX sightings_cam_ts ON sightings (camera_id, ts);
CREATE INDEX sightings_ts ON sightings (ts);
CREATE INDEX sightings_track ON sightings (video_id, track_id);
CREATE INDEX sightings_embedder ON sightings (embedder, id);
CREATE TABLE track_boxes (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL,
    pts REAL NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (video_id, track_id, pts)
);
"""

# (version, what it adds, SQL). Append only: a released migration never changes.
SQLITE_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "cameras, videos, sightings with embeddings, track boxes", _SCHEMA_V1),
    (2, "dominant clothing colours per sighting",
     "ALTER TABLE sightings ADD COLUMN upper_color TEXT; ALTER TABLE sightings ADD COLUMN lower_color TEXT;"),
    (3, "sighting change log: followers catch up by sequence number",
     "CREATE TABLE sighting_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, sighting_id INTEGER NOT NULL,"
     " embedder TEXT NOT NULL, added INTEGER NOT NULL);"
     " INSERT INTO sighting_log (sighting_id, embedder, added) SELECT id, embedder, 1 FROM sightings ORDER BY id;"),
    (4, "ingest leases (one process owns a video's ingest) and the tracker's state at the last checkpoint",
     "ALTER TABLE videos ADD COLUMN lease_owner TEXT; ALTER TABLE videos ADD COLUMN lease_until REAL;"
     " ALTER TABLE videos ADD COLUMN resume_state TEXT;"),
    (5, "investigators' marks on search results (same person / different person)",
     "CREATE TABLE search_marks (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
     " sighting_id INTEGER NOT NULL, mark TEXT NOT NULL CHECK (mark IN ('same', 'different')),"
     " query_sha256 TEXT NOT NULL, marked_by TEXT NOT NULL);"
     " CREATE INDEX search_marks_sighting ON search_marks (sighting_id);"),
)  # fmt: skip
SCHEMA_VERSION = SQLITE_MIGRATIONS[-1][0]

SIGHTING_COLS = (
    "s.id, s.camera_id, s.video_id, v.path, s.track_id, s.ts, s.pts, s.x1, s.y1, s.x2, s.y2, s.confidence, s.thumb_path,"
    " s.upper_color, s.lower_color"
)
_VIDEO_COLS = (
    "id, camera_id, path, sha256, start_ts, fps, frame_count, status, processed_until_s, frames_sampled, error, embedder,"
    " resume_state"
)


def _sighting(row: Sequence) -> Sighting:
    return Sighting(
        id=row[0], camera_id=row[1], video_id=row[2], video_path=row[3], track_id=row[4], ts_s=row[5],
        pts_s=row[6], xyxy=(row[7], row[8], row[9], row[10]), confidence=row[11], thumb_path=row[12],
        upper_color=row[13], lower_color=row[14],
    )  # fmt: skip


def _vectors(blobs: Iterable[bytes]) -> NDArray[np.float32]:
    return np.stack([np.frombuffer(b, np.float32) for b in blobs])


class SqliteCatalog:
    """The embedded catalog: one SQLite file in WAL mode; safe to share between threads (one connection, serialised
    by a lock) and between processes (SQLite's file locks; writers take the write lock at BEGIN IMMEDIATE)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=60)
        self._lock = threading.RLock()
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

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                version = self._adopt_unversioned(db)
            if version > SCHEMA_VERSION:
                raise IndexStateError(
                    f"catalog {self.path} has schema version {version}, newer than this vsearch knows"
                    f" ({SCHEMA_VERSION}): upgrade vsearch"
                )
            for v, _, sql in SQLITE_MIGRATIONS:
                if v > version:
                    for stmt in filter(str.strip, sql.split(";")):
                        db.execute(stmt)
                    db.execute(f"PRAGMA user_version = {v}")

    @staticmethod
    def _adopt_unversioned(db: sqlite3.Connection) -> int:
        """Catalogs written before schema versions: tell which migrations their tables already have."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "sightings" not in tables:
            return 0
        cols = {r[1] for r in db.execute("PRAGMA table_info(sightings)")}
        return 2 if "upper_color" in cols else 1

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so reads inside it are current)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _in_chunks(self, sql: str, ids: Sequence[int], each: Callable[[list[tuple]], None]) -> None:
        """Run `sql` (with one `{}` for the id placeholders) over `ids` in chunks SQLite accepts."""
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            each(self._q(sql.format(",".join("?" * len(chunk))), chunk))

    # -- cameras and videos ---------------------------------------------------------------------------------
    def cameras(self) -> list[CameraStats]:
        rows = self._q(
            "SELECT c.id, COUNT(DISTINCT v.id), COALESCE(SUM(v.frame_count / v.fps), 0), MIN(v.start_ts),"
            " MAX(v.start_ts + v.frame_count / v.fps) FROM cameras c LEFT JOIN videos v ON v.camera_id = c.id"
            " GROUP BY c.id ORDER BY c.id"
        )
        counts = dict(self._q("SELECT camera_id, COUNT(*) FROM sightings GROUP BY camera_id"))
        return [CameraStats(r[0], r[1], r[2], r[3], r[4], counts.get(r[0], 0)) for r in rows]

    def video_by_sha(self, sha256: str) -> VideoRecord | None:
        rows = self._q(f"SELECT {_VIDEO_COLS} FROM videos WHERE sha256 = ?", (sha256,))
        return VideoRecord(*rows[0]) if rows else None

    def video(self, video_id: int) -> VideoRecord:
        rows = self._q(f"SELECT {_VIDEO_COLS} FROM videos WHERE id = ?", (video_id,))
        if not rows:
            raise NotFoundError(f"no video with id {video_id}")
        return VideoRecord(*rows[0])

    def videos(self) -> list[VideoRecord]:
        return [VideoRecord(*r) for r in self._q(f"SELECT {_VIDEO_COLS} FROM videos ORDER BY id")]

    def begin_video(
        self, camera_id: str, path: str, sha256: str, start_ts_s: float, fps: float, frame_count: int,
        resolution_wh: tuple[int, int], embedder: str,
    ) -> VideoRecord:  # fmt: skip
        """Register a video (or return its existing record: ingest is idempotent per file hash). A failed video
        is put back to 'ingesting' at its new path."""
        with self._tx() as db:
            existing = self.video_by_sha(sha256)
            if existing is not None:
                if existing.status == "failed":
                    db.execute("UPDATE videos SET status='ingesting', error=NULL, path=? WHERE id=?", (path, existing.id))
                video_id = existing.id
            else:
                db.execute("INSERT OR IGNORE INTO cameras (id, created_at) VALUES (?, ?)", (camera_id, time.time()))
                cur = db.execute(
                    "INSERT INTO videos (camera_id, path, sha256, start_ts, fps, frame_count, width, height, status,"
                    " embedder, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ingesting', ?, ?)",
                    (camera_id, path, sha256, start_ts_s, fps, frame_count, resolution_wh[0], resolution_wh[1],
                     embedder, time.time()),
                )  # fmt: skip
                video_id = int(cur.lastrowid or 0)
        return self.video(video_id)

    def fail_video(self, video_id: int, error: str, owner: str | None = None) -> None:
        """Mark a video failed (and release the caller's lease on it)."""
        with self._tx() as db:
            db.execute(
                "UPDATE videos SET status='failed', error=?,"
                " lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END WHERE id=?",
                (error, owner, video_id),
            )

    def claim_video(self, video_id: int, owner: str, lease_s: float, take_from: str | None = None) -> str | None:
        """Take (or renew) the lease on a video's ingest for `lease_s` seconds. Returns None when `owner` holds it,
        else the live holder's name. A lease whose holder stopped renewing it (it died) expires and can be taken;
        `take_from` takes it from that holder at once (the caller knows its process is gone)."""
        with self._tx() as db:
            holder, until = db.execute("SELECT lease_owner, lease_until FROM videos WHERE id=?", (video_id,)).fetchone()
            now = time.time()
            if holder not in (None, owner, take_from) and until is not None and until > now:
                return str(holder)
            db.execute("UPDATE videos SET lease_owner=?, lease_until=? WHERE id=?", (owner, now + lease_s, video_id))
            return None

    def release_video(self, video_id: int, owner: str) -> None:
        """Give up `owner`'s lease (no-op when another holds it)."""
        with self._tx() as db:
            db.execute("UPDATE videos SET lease_owner=NULL, lease_until=NULL WHERE id=? AND lease_owner=?", (video_id, owner))

    def _check_lease(self, db: sqlite3.Connection, video_id: int, owner: str) -> None:
        (holder,) = db.execute("SELECT lease_owner FROM videos WHERE id=?", (video_id,)).fetchone()
        if holder != owner:
            raise LeaseLostError(
                f"video {video_id}: this ingest ({owner}) lost its lease to {holder or 'nobody'}; nothing was stored"
            )

    def max_track_id(self, video_id: int) -> int:
        return int(self._q("SELECT COALESCE(MAX(track_id), 0) FROM track_boxes WHERE video_id=?", (video_id,))[0][0])

    def commit_chunk(
        self,
        video_id: int,
        sightings: Sequence[NewSighting],
        boxes: Sequence[TrackBoxRow],
        processed_until_s: float,
        frames_sampled: int,
        done: bool,
        owner: str | None = None,
        resume_state: str | None = None,
    ) -> list[int]:
        """Store one checkpoint's sightings and track boxes, log them, and advance the video's progress, atomically.

        With `owner`, the checkpoint is stored only if that owner still holds the video's lease (else
        LeaseLostError and nothing is stored); the lease is released when the video is done. Returns the ids given
        to `sightings`, in order.
        """
        with self._tx() as db:
            if owner is not None:
                self._check_lease(db, video_id, owner)
            (embedder,) = db.execute("SELECT embedder FROM videos WHERE id=?", (video_id,)).fetchone()
            ids = []
            for s in sightings:
                cur = db.execute(
                    "INSERT INTO sightings (video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                    " quality, thumb_path, embedder, embedding, upper_color, lower_color)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (video_id, s.camera_id, s.track_id, s.ts_s, s.pts_s, *s.xyxy, s.confidence, s.quality,
                     s.thumb_path, embedder, np.ascontiguousarray(s.embedding, np.float32).tobytes(),
                     s.upper_color, s.lower_color),
                )  # fmt: skip
                ids.append(int(cur.lastrowid or 0))
            db.executemany(
                "INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (?, ?, 1)", [(i, embedder) for i in ids]
            )
            db.executemany(
                "INSERT OR REPLACE INTO track_boxes (video_id, track_id, pts, x1, y1, x2, y2, confidence)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(video_id, tid, pts, *xyxy, conf) for tid, pts, xyxy, conf in boxes],
            )
            db.execute(
                "UPDATE videos SET processed_until_s=?, frames_sampled=frames_sampled+?, status=?, finished_at=?,"
                " resume_state=?, lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END WHERE id=?",
                (processed_until_s, frames_sampled, "done" if done else "ingesting",
                 time.time() if done else None, None if done else resume_state, done, video_id),
            )  # fmt: skip
        return ids

    def delete_video(self, video_id: int) -> list[int]:
        """Remove a video and everything derived from it (logged); returns the removed sighting ids."""
        with self._tx() as db:
            rows = db.execute("SELECT id, embedder FROM sightings WHERE video_id=?", (video_id,)).fetchall()
            db.executemany("INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (?, ?, 0)", rows)
            db.execute("DELETE FROM videos WHERE id=?", (video_id,))
        return [r[0] for r in rows]

    # -- sightings -----------------------------------------------------------------------------------------
    def count_sightings(self, embedder: str | None = None) -> int:
        if embedder is None:
            return int(self._q("SELECT COUNT(*) FROM sightings")[0][0])
        return int(self._q("SELECT COUNT(*) FROM sightings WHERE embedder=?", (embedder,))[0][0])

    def embedders(self) -> list[str]:
        """The embedders whose vectors this catalog holds (recorded per video, so this stays cheap)."""
        return [r[0] for r in self._q("SELECT DISTINCT embedder FROM videos ORDER BY embedder")]

    def sighting_ids(self, embedder: str) -> NDArray[np.int64]:
        rows = self._q("SELECT id FROM sightings WHERE embedder=? ORDER BY id", (embedder,))
        return np.array([r[0] for r in rows], np.int64)

    def embeddings(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(ids, vectors) of the given sighting ids that exist."""
        rows: list[tuple] = []
        self._in_chunks("SELECT id, embedding FROM sightings WHERE id IN ({})", [int(i) for i in ids], rows.extend)
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array([r[0] for r in rows], np.int64), _vectors(r[1] for r in rows)

    def iter_embeddings(
        self, embedder: str, batch: int = 50_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """Stream (ids, vectors) of `embedder` in id order."""
        last = 0
        while rows := self._q(
            "SELECT id, embedding FROM sightings WHERE embedder=? AND id>? ORDER BY id LIMIT ?", (embedder, last, batch)
        ):
            ids = np.array([r[0] for r in rows], np.int64)
            yield ids, _vectors(r[1] for r in rows)
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

    def sightings(self, ids: Iterable[int]) -> dict[int, Sighting]:
        out: dict[int, Sighting] = {}
        wanted = [int(i) for i in ids if 0 < int(i) < 2**63]  # others cannot exist (SQLite integers are 64-bit)
        self._in_chunks(
            f"SELECT {SIGHTING_COLS} FROM sightings s JOIN videos v ON v.id = s.video_id WHERE s.id IN ({{}})",
            wanted,
            lambda rows: out.update((r[0], _sighting(r)) for r in rows),
        )
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

    # -- change log ----------------------------------------------------------------------------------------------
    def last_seq(self) -> int:
        return int(self._q("SELECT COALESCE(MAX(seq), 0) FROM sighting_log")[0][0])

    def changes_since(self, seq: int, embedder: str, limit: int = 50_000) -> Changes:
        """Up to `limit` log entries after `seq` (of every embedder, so the cursor always advances), with the
        vectors of `embedder`'s additions."""
        rows = self._q(
            "SELECT l.seq, l.sighting_id, l.embedder, l.added, s.embedding FROM sighting_log l"
            " LEFT JOIN sightings s ON s.id = l.sighting_id WHERE l.seq > ? ORDER BY l.seq LIMIT ?",
            (seq, limit),
        )
        ops: list[tuple[int, NDArray[np.float32] | None]] = [
            (sid, np.frombuffer(blob, np.float32) if added and blob is not None else None)
            for _, sid, emb, added, blob in rows
            if emb == embedder
        ]
        return Changes(ops, rows[-1][0] if rows else seq)

    # -- marks ------------------------------------------------------------------------------------------------
    def add_marks(self, marks: Sequence[Mark]) -> None:
        """Store marks in one transaction, stamped with the current time (a sighting's marks are kept even if the
        sighting is later deleted: they are a record of what an investigator decided)."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO search_marks (ts, sighting_id, mark, query_sha256, marked_by) VALUES (?, ?, ?, ?, ?)",
                [(now, m.sighting_id, m.mark, m.query_sha256, m.marked_by) for m in marks],
            )

    def marks(self, sighting_id: int | None = None, limit: int = 1000) -> list[Mark]:
        """Marks newest first, of one sighting or of all."""
        where, args = ("WHERE sighting_id=?", (sighting_id,)) if sighting_id is not None else ("", ())
        rows = self._q(
            f"SELECT sighting_id, mark, query_sha256, marked_by, ts FROM search_marks {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [Mark(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def open_catalog(path: Path) -> Catalog:
    """The catalog at `path` (an SQLite file, created and migrated as needed)."""
    return SqliteCatalog(path)
