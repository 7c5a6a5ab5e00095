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

import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import IndexStateError, LeaseLostError, NotFoundError, StorageError
from vsearch.faults import kill_point
from vsearch.types import ID_BUCKET_BITS, ID_BUCKET_S, IdSet, Sighting

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
class CameraInfo:
    """Optional metadata of a camera: a display name and WGS84 coordinates (degrees)."""

    id: str
    name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Case:
    """An investigation: a name, notes, and who opened it when."""

    id: int
    name: str
    notes: str
    created_by: str
    created_at: float  # epoch seconds
    updated_at: float
    items: int = 0  # how many confirmed items it holds


@dataclass(frozen=True)
class NewCaseItem:
    """A confirmed clip or sighting about to be added to a case, with where and when it is (checked by the
    caller against the catalog) and the search that found it, if any."""

    kind: str  # "clip" or "sighting"
    ref: str  # the clip id, or the sighting id as text
    camera_id: str
    video_id: int
    track_id: int
    start_ts_s: float
    end_ts_s: float
    start_pts_s: float
    end_pts_s: float
    sighting_id: int  # the sighting whose crop and frame represent it
    query_sha256: str | None = None
    search_filters: str | None = None  # the search's filters as JSON text
    note: str = ""


@dataclass(frozen=True)
class CaseItem:
    """A confirmed item of a case: a NewCaseItem with its id, who added it and when."""

    id: int
    case_id: int
    kind: str
    ref: str
    camera_id: str
    video_id: int
    track_id: int
    start_ts_s: float
    end_ts_s: float
    start_pts_s: float
    end_pts_s: float
    sighting_id: int
    query_sha256: str | None
    search_filters: str | None
    note: str
    added_by: str
    added_at: float


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
    def select(
        self, embedder: str, from_ts_s: float | None, to_ts_s: float | None, cameras: Sequence[str] | None,
        upper_color: str | None = None, lower_color: str | None = None,
    ) -> IdSet | None: ...  # fmt: skip
    def times(self, embedder: str, ids: Sequence[int]) -> dict[int, float]: ...
    def sightings(self, ids: Iterable[int]) -> dict[int, Sighting]: ...
    def sighting(self, sighting_id: int) -> Sighting: ...
    def track_boxes(self, video_id: int, track_id: int) -> list[tuple[float, tuple[float, float, float, float], float]]: ...
    def track_sighting_pts(self, video_id: int, track_id: int) -> list[float]: ...

    def track_sightings(self, video_id: int, track_id: int, from_pts_s: float, to_pts_s: float) -> list[Sighting]: ...
    def sightings_between(
        self, from_ts_s: float, to_ts_s: float, cameras: Sequence[str] | None = None, limit: int = 200_000
    ) -> list[Sighting]: ...
    def boxes_between(self, video_id: int, from_pts_s: float, to_pts_s: float) -> list[TrackBoxRow]: ...

    # camera metadata
    def set_camera_info(self, info: CameraInfo) -> CameraInfo: ...
    def camera_info(self) -> dict[str, CameraInfo]: ...

    # cases: every change to a case is one transaction
    def create_case(self, name: str, notes: str, by: str) -> Case: ...
    def case(self, case_id: int) -> Case: ...
    def cases(self) -> list[Case]: ...
    def update_case(self, case_id: int, name: str | None, notes: str | None) -> Case: ...
    def add_case_items(self, case_id: int, items: Sequence[NewCaseItem], by: str) -> list[CaseItem]: ...
    def remove_case_item(self, case_id: int, item_id: int) -> None: ...
    def case_items(self, case_id: int) -> list[CaseItem]: ...

    # the change log followers catch up from
    def last_seq(self) -> int: ...
    def changes_since(self, seq: int, embedder: str, limit: int = 50_000) -> Changes: ...

    # investigators' marks on search results
    def add_marks(self, marks: Sequence[Mark]) -> None: ...
    def marks(self, sighting_id: int | None = None, limit: int = 1000) -> list[Mark]: ...


# -- SQL catalogs ------------------------------------------------------------------------------------------------------

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

_SCHEMA_CASES = """
ALTER TABLE cameras ADD COLUMN name TEXT;
ALTER TABLE cameras ADD COLUMN lat REAL;
ALTER TABLE cameras ADD COLUMN lon REAL;
CREATE TABLE cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE case_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('clip', 'sighting')),
    ref TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    video_id INTEGER NOT NULL,
    track_id INTEGER NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    start_pts REAL NOT NULL,
    end_pts REAL NOT NULL,
    sighting_id INTEGER NOT NULL,
    query_sha256 TEXT,
    search_filters TEXT,
    note TEXT NOT NULL DEFAULT '',
    added_by TEXT NOT NULL,
    added_at REAL NOT NULL,
    UNIQUE (case_id, kind, ref)
);
CREATE INDEX case_items_case ON case_items (case_id, start_ts);
CREATE INDEX track_boxes_time ON track_boxes (video_id, pts);
"""

# (version, what it adds, SQL in SQLite's dialect; `to_postgres` translates it). Append only: a released
# migration never changes.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
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
    (5, "sighting ids allocated by minute of their time (id_buckets), so a time window is an id range",
     "CREATE TABLE id_buckets (bucket INTEGER PRIMARY KEY, next_n INTEGER NOT NULL, n INTEGER NOT NULL);"),
    (6, "cases with confirmed items; camera names and coordinates", _SCHEMA_CASES),
    (7, "investigators' marks on search results (same person / different person)",
     "CREATE TABLE search_marks (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
     " sighting_id INTEGER NOT NULL, mark TEXT NOT NULL CHECK (mark IN ('same', 'different')),"
     " query_sha256 TEXT NOT NULL, marked_by TEXT NOT NULL);"
     " CREATE INDEX search_marks_sighting ON search_marks (sighting_id);"),
    (8, "sightings indexed by (embedder, id, ts): a time window's partial minutes are counted in the index",
     "CREATE INDEX sightings_embedder_ts ON sightings (embedder, id, ts); DROP INDEX sightings_embedder;"),
)  # fmt: skip
SCHEMA_VERSION = MIGRATIONS[-1][0]

# A sighting's id says when it was seen (vsearch.types.ID_BUCKET_BITS). A time window is then one id range, plus
# the ids of its two partial minutes, whatever the collection holds; ids below 2**24 were allocated before this
# scheme and are selected by time in SQL.


def id_bucket(ts_s: float) -> int:
    """The minute (since the epoch, from 0) whose id range holds a sighting seen at ts_s."""
    return max(0, int(ts_s // ID_BUCKET_S))


def bucket_ids(bucket: int) -> tuple[int, int]:
    """[lo, hi) of the ids of one minute."""
    lo = (bucket + 1) << ID_BUCKET_BITS
    return lo, lo + (1 << ID_BUCKET_BITS)

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


class SqlCatalog:
    """The catalog's logic over SQL, written once; a subclass gives the dialect: how to run statements in one
    transaction (`_tx`) or alone (`_q`), insert returning ids, select by a list of ids, and order the change log.
    Statements use `?` placeholders."""

    # -- the dialect ------------------------------------------------------------------------------------------
    def _tx(self) -> AbstractContextManager[_Db]:
        raise NotImplementedError

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        raise NotImplementedError

    def _select_ids(self, sql: str, column: str, ids: Sequence[int], before: Sequence = ()) -> list[tuple]:
        """Rows of `sql`, whose `{}` stands for the condition "`column` is one of `ids`" (`before`: the values of
        the placeholders before it)."""
        raise NotImplementedError

    def _insert_id(self, db: _Db, sql: str, args: Sequence) -> int:
        raise NotImplementedError

    def _order_log(self, db: _Db) -> None:
        """Called in a transaction before it appends to the change log: log sequence numbers must become visible
        in order (a follower that has read sequence n never later finds a smaller one)."""

    _UPSERT_CAMERA = "INSERT INTO cameras (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
    _UPSERT_BOX = (
        "INSERT INTO track_boxes (video_id, track_id, pts, x1, y1, x2, y2, confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (video_id, track_id, pts) DO UPDATE SET x1=excluded.x1, y1=excluded.y1, x2=excluded.x2,"
        " y2=excluded.y2, confidence=excluded.confidence"
    )

    def close(self) -> None:
        raise NotImplementedError

    # -- cameras and videos ---------------------------------------------------------------------------------
    def cameras(self) -> list[CameraStats]:
        rows = self._q(
            "SELECT c.id, COUNT(DISTINCT v.id), COALESCE(SUM(v.frame_count / v.fps), 0), MIN(v.start_ts),"
            " MAX(v.start_ts + v.frame_count / v.fps) FROM cameras c LEFT JOIN videos v ON v.camera_id = c.id"
            " GROUP BY c.id ORDER BY c.id"
        )
        counts = dict(self._q("SELECT camera_id, COUNT(*) FROM sightings GROUP BY camera_id"))
        return [CameraStats(r[0], int(r[1]), float(r[2]), r[3], r[4], int(counts.get(r[0], 0))) for r in rows]

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
            row = db.execute("SELECT id, status FROM videos WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None:
                video_id = int(row[0])
                if row[1] == "failed":
                    db.execute("UPDATE videos SET status='ingesting', error=NULL, path=? WHERE id=?", (path, video_id))
            else:
                db.execute(self._UPSERT_CAMERA, (camera_id, time.time()))
                video_id = self._insert_id(
                    db,
                    "INSERT INTO videos (camera_id, path, sha256, start_ts, fps, frame_count, width, height, status,"
                    " embedder, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ingesting', ?, ?)",
                    (camera_id, path, sha256, start_ts_s, fps, frame_count, resolution_wh[0], resolution_wh[1],
                     embedder, time.time()),
                )  # fmt: skip
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
            holder, until = db.execute(
                "SELECT lease_owner, lease_until FROM videos WHERE id=? FOR UPDATE", (video_id,)
            ).fetchone()
            now = time.time()
            if holder not in (None, owner, take_from) and until is not None and until > now:
                return str(holder)
            db.execute("UPDATE videos SET lease_owner=?, lease_until=? WHERE id=?", (owner, now + lease_s, video_id))
            return None

    def release_video(self, video_id: int, owner: str) -> None:
        """Give up `owner`'s lease (no-op when another holds it)."""
        with self._tx() as db:
            db.execute("UPDATE videos SET lease_owner=NULL, lease_until=NULL WHERE id=? AND lease_owner=?", (video_id, owner))

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
            row = db.execute("SELECT embedder, lease_owner FROM videos WHERE id=? FOR UPDATE", (video_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no video with id {video_id}")
            embedder, holder = row
            if owner is not None and holder != owner:
                raise LeaseLostError(
                    f"video {video_id}: this ingest ({owner}) lost its lease to {holder or 'nobody'}; nothing was stored"
                )
            ids = []
            if sightings:
                self._order_log(db)  # also serialises id allocation between writers
                ids = self._allocate_ids(db, [s.ts_s for s in sightings])
                db.executemany(
                    "INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence,"
                    " quality, thumb_path, embedder, embedding, upper_color, lower_color)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(i, video_id, s.camera_id, s.track_id, s.ts_s, s.pts_s, *s.xyxy, s.confidence, s.quality,
                      s.thumb_path, embedder, np.ascontiguousarray(s.embedding, np.float32).tobytes(),
                      s.upper_color, s.lower_color) for i, s in zip(ids, sightings)],
                )  # fmt: skip
                db.executemany(
                    "INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (?, ?, 1)", [(i, embedder) for i in ids]
                )
            db.executemany(self._UPSERT_BOX, [(video_id, tid, pts, *xyxy, conf) for tid, pts, xyxy, conf in boxes])
            db.execute(
                "UPDATE videos SET processed_until_s=?, frames_sampled=frames_sampled+?, status=?, finished_at=?,"
                " resume_state=?, lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END WHERE id=?",
                (processed_until_s, frames_sampled, "done" if done else "ingesting",
                 time.time() if done else None, None if done else resume_state, done, video_id),
            )  # fmt: skip
            kill_point("catalog.commit_chunk")
        return ids

    def _allocate_ids(self, db: _Db, ts_s: Sequence[float]) -> list[int]:
        """Ids for sightings seen at ts_s (see ID_BUCKET_BITS); the caller holds the log order lock."""
        per_bucket: dict[int, int] = {}
        for t in ts_s:
            per_bucket[id_bucket(t)] = per_bucket.get(id_bucket(t), 0) + 1
        next_n: dict[int, int] = {}
        for b, n in per_bucket.items():
            row = db.execute("SELECT next_n FROM id_buckets WHERE bucket=?", (b,)).fetchone()
            start = int(row[0]) if row else 0
            if start + n > 1 << ID_BUCKET_BITS:
                raise IndexStateError(f"more than {1 << ID_BUCKET_BITS} sightings in one minute ({b * ID_BUCKET_S} s)")
            db.execute(
                "INSERT INTO id_buckets (bucket, next_n, n) VALUES (?, ?, ?) ON CONFLICT (bucket) DO UPDATE"
                " SET next_n = id_buckets.next_n + excluded.n, n = id_buckets.n + excluded.n",
                (b, start + n, n),
            )
            next_n[b] = start
        ids = []
        for t in ts_s:
            b = id_bucket(t)
            ids.append(bucket_ids(b)[0] + next_n[b])
            next_n[b] += 1
        return ids

    def delete_video(self, video_id: int) -> list[int]:
        """Remove a video and everything derived from it (logged); returns the removed sighting ids."""
        with self._tx() as db:
            rows = db.execute("SELECT id, embedder FROM sightings WHERE video_id=? ORDER BY id", (video_id,)).fetchall()
            if rows:
                self._order_log(db)
                gone: dict[int, int] = {}
                for (i, _) in rows:
                    if i >= 1 << ID_BUCKET_BITS:
                        b = (int(i) >> ID_BUCKET_BITS) - 1
                        gone[b] = gone.get(b, 0) + 1
                db.executemany("UPDATE id_buckets SET n = n - ? WHERE bucket = ?", [(n, b) for b, n in gone.items()])
                db.executemany("INSERT INTO sighting_log (sighting_id, embedder, added) VALUES (?, ?, 0)", rows)
            db.execute("DELETE FROM videos WHERE id=?", (video_id,))
        return [int(r[0]) for r in rows]

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
        rows = self._select_ids("SELECT id, embedding FROM sightings WHERE {}", "id", [int(i) for i in ids])
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
        """Ids of sightings inside the time window, cameras and clothing colours; None when nothing is filtered.
        Never read through the embedder index (that visits every sighting): cameras and windows use their own."""
        where: list[str] = ["embedder || '' = ?"]
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

    def select(
        self,
        embedder: str,
        from_ts_s: float | None,
        to_ts_s: float | None,
        cameras: Sequence[str] | None,
        upper_color: str | None = None,
        lower_color: str | None = None,
    ) -> IdSet | None:
        """The sightings inside the filters, as the index searches them; None when nothing is filtered.

        A time window alone is one id range, from its first minute to its last, whatever the collection holds:
        its whole minutes are counted from id_buckets, its two partial minutes in an index, and those two
        minutes' id ranges are `IdSet.partial` (the store checks the times of what the index returns from them);
        `IdSet.spanned` counts the envelope (id_buckets, the partial minutes whole).
        Cameras and colours select their ids in SQL (by the camera/time index).
        """
        if cameras or upper_color or lower_color:
            ids = self.filter_ids(embedder, from_ts_s, to_ts_s, cameras, upper_color, lower_color)
            return None if ids is None else IdSet(ids=ids, count=len(ids))
        if from_ts_s is None and to_ts_s is None:
            return None
        first = -1 if from_ts_s is None else id_bucket(from_ts_s)  # partial minutes at the ends (-1: none)
        last = 1 << 40 if to_ts_s is None else id_bucket(to_ts_s)
        lo_ts, hi_ts = -1e300 if from_ts_s is None else from_ts_s, 1e300 if to_ts_s is None else to_ts_s
        envelope = (
            bucket_ids(max(first, 0))[0] if from_ts_s is not None else 1 << ID_BUCKET_BITS,
            bucket_ids(last)[1] if to_ts_s is not None else 1 << 62,
        )
        whole = (first + 1, last - 1)  # every sighting of these minutes is inside the window
        count, spanned = (int(v) for v in self._q(
            "SELECT COALESCE(SUM(CASE WHEN bucket >= ? AND bucket <= ? THEN n ELSE 0 END), 0), COALESCE(SUM(n), 0)"
            " FROM id_buckets WHERE bucket >= ? AND bucket <= ?", (*whole, max(first, 0), last),
        )[0])  # fmt: skip
        # the partial minutes' sightings inside the window are counted, not listed: in the (embedder, id, ts)
        # index, never the table's rows (1 KB embeddings each); `ts + 0` keeps both engines off the time index
        partial = tuple(bucket_ids(b) for b in sorted({first, last} - {-1, 1 << 40}))
        for a, b in partial:
            count += int(self._q(
                "SELECT COUNT(*) FROM sightings WHERE embedder = ? AND id >= ? AND id < ? AND ts + 0 >= ?"
                " AND ts + 0 <= ?", (embedder, a, b, lo_ts, hi_ts),
            )[0][0])  # fmt: skip
        # sightings stored before time-ordered ids are selected by time (`embedder || ''`: the id range drives it)
        rows = self._q(
            "SELECT id FROM sightings WHERE id < ? AND ts + 0 >= ? AND ts + 0 <= ? AND embedder || '' = ?",
            (1 << ID_BUCKET_BITS, lo_ts, hi_ts, embedder),
        )
        ids = np.array([r[0] for r in rows], np.int64)
        return IdSet((envelope,), ids, count + len(ids), partial, spanned + len(ids))

    def times(self, embedder: str, ids: Sequence[int]) -> dict[int, float]:
        """The time (epoch s) of each of the embedder's sightings in `ids` that exists, read from the (embedder,
        id, ts) index, not from the table's rows."""
        rows = self._select_ids(
            "SELECT id, ts FROM sightings WHERE embedder = ? AND {}", "id", [int(i) for i in ids], (embedder,)
        )
        return {int(r[0]): float(r[1]) for r in rows}

    def sightings(self, ids: Iterable[int]) -> dict[int, Sighting]:
        wanted = [int(i) for i in ids if 0 < int(i) < 2**63]  # others cannot exist (ids are 64-bit)
        rows = self._select_ids(
            f"SELECT {SIGHTING_COLS} FROM sightings s JOIN videos v ON v.id = s.video_id WHERE {{}}", "s.id", wanted
        )
        return {r[0]: _sighting(r) for r in rows}

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

    def track_sighting_pts(self, video_id: int, track_id: int) -> list[float]:
        """Video times of the track's stored sightings (the moments its clips are built around), in order."""
        rows = self._q("SELECT DISTINCT pts FROM sightings WHERE video_id=? AND track_id=? ORDER BY pts", (video_id, track_id))
        return [r[0] for r in rows]

    def track_sightings(self, video_id: int, track_id: int, from_pts_s: float, to_pts_s: float) -> list[Sighting]:
        """The stored sightings of one track between two video positions, in time order."""
        rows = self._q(
            f"SELECT {SIGHTING_COLS} FROM sightings s JOIN videos v ON v.id = s.video_id"
            " WHERE s.video_id=? AND s.track_id=? AND s.pts BETWEEN ? AND ? ORDER BY s.pts, s.id",
            (video_id, track_id, from_pts_s, to_pts_s),
        )
        return [_sighting(r) for r in rows]

    def sightings_between(
        self, from_ts_s: float, to_ts_s: float, cameras: Sequence[str] | None = None, limit: int = 200_000
    ) -> list[Sighting]:
        """Sightings inside a time window (and cameras), in time order; at most `limit`."""
        where, args = "s.ts BETWEEN ? AND ?", [from_ts_s, to_ts_s]
        if cameras:
            where += f" AND s.camera_id IN ({','.join('?' * len(cameras))})"
            args.extend(cameras)  # type: ignore[arg-type]
        rows = self._q(
            f"SELECT {SIGHTING_COLS} FROM sightings s JOIN videos v ON v.id = s.video_id WHERE {where}"
            " ORDER BY s.ts, s.id LIMIT ?",
            [*args, limit],
        )
        return [_sighting(r) for r in rows]

    def boxes_between(self, video_id: int, from_pts_s: float, to_pts_s: float) -> list[TrackBoxRow]:
        """Every track's sampled boxes in a span of one video: (track_id, pts_s, xyxy, confidence), in time order."""
        rows = self._q(
            "SELECT track_id, pts, x1, y1, x2, y2, confidence FROM track_boxes WHERE video_id=? AND pts BETWEEN ? AND ?"
            " ORDER BY pts, track_id",
            (video_id, from_pts_s, to_pts_s),
        )
        return [(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in rows]

    # -- camera metadata -----------------------------------------------------------------------------------------
    def set_camera_info(self, info: CameraInfo) -> CameraInfo:
        """Set a camera's name and coordinates (the camera is registered if no footage named it yet)."""
        with self._tx() as db:
            db.execute(self._UPSERT_CAMERA, (info.id, time.time()))
            db.execute("UPDATE cameras SET name=?, lat=?, lon=? WHERE id=?", (info.name, info.lat, info.lon, info.id))
        return self.camera_info()[info.id]

    def camera_info(self) -> dict[str, CameraInfo]:
        """Every camera's name and coordinates (None where unset), by camera id."""
        return {r[0]: CameraInfo(*r) for r in self._q("SELECT id, name, lat, lon FROM cameras ORDER BY id")}

    # -- cases ---------------------------------------------------------------------------------------------------
    def create_case(self, name: str, notes: str, by: str) -> Case:
        """Open a case (one transaction)."""
        now = time.time()
        with self._tx() as db:
            case_id = self._insert_id(
                db,
                "INSERT INTO cases (name, notes, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, notes, by, now, now),
            )
        return self.case(case_id)

    _CASE_SQL = (
        "SELECT c.id, c.name, c.notes, c.created_by, c.created_at, c.updated_at, COUNT(i.id) FROM cases c"
        " LEFT JOIN case_items i ON i.case_id = c.id"
    )

    def case(self, case_id: int) -> Case:
        """A case with its item count (NotFoundError if unknown)."""
        rows = self._q(f"{self._CASE_SQL} WHERE c.id = ? GROUP BY c.id", (case_id,))
        if not rows:
            raise NotFoundError(f"no case with id {case_id}")
        return Case(*rows[0])

    def cases(self) -> list[Case]:
        """Every case, oldest first."""
        return [Case(*r) for r in self._q(f"{self._CASE_SQL} GROUP BY c.id ORDER BY c.id")]

    def update_case(self, case_id: int, name: str | None, notes: str | None) -> Case:
        """Change a case's name and/or notes (None: unchanged), in one transaction."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            if name is not None:
                db.execute("UPDATE cases SET name=? WHERE id=?", (name, case_id))
            if notes is not None:
                db.execute("UPDATE cases SET notes=? WHERE id=?", (notes, case_id))
        return self.case(case_id)

    @staticmethod
    def _touch_case(db: _Db, case_id: int) -> None:
        """Inside a transaction: the case must exist; mark it changed now."""
        if db.execute("UPDATE cases SET updated_at=? WHERE id=?", (time.time(), case_id)).rowcount != 1:
            raise NotFoundError(f"no case with id {case_id}")

    def add_case_items(self, case_id: int, items: Sequence[NewCaseItem], by: str) -> list[CaseItem]:
        """Add items to a case in one transaction; an item already in the case is kept as it was. Returns the
        case's items that correspond to `items`, in order."""
        now = time.time()
        with self._tx() as db:
            self._touch_case(db, case_id)
            for it in items:
                db.execute(
                    "INSERT INTO case_items (case_id, kind, ref, camera_id, video_id, track_id, start_ts,"
                    " end_ts, start_pts, end_pts, sighting_id, query_sha256, search_filters, note, added_by, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, kind, ref) DO NOTHING",
                    (case_id, it.kind, it.ref, it.camera_id, it.video_id, it.track_id, it.start_ts_s, it.end_ts_s,
                     it.start_pts_s, it.end_pts_s, it.sighting_id, it.query_sha256, it.search_filters, it.note, by,
                     now),
                )  # fmt: skip
        wanted = {(it.kind, it.ref) for it in items}
        return [i for i in self.case_items(case_id) if (i.kind, i.ref) in wanted]

    def remove_case_item(self, case_id: int, item_id: int) -> None:
        """Remove one item of a case (NotFoundError if the case has no such item), in one transaction."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            if db.execute("DELETE FROM case_items WHERE case_id=? AND id=?", (case_id, item_id)).rowcount != 1:
                raise NotFoundError(f"case {case_id} has no item {item_id}")

    def case_items(self, case_id: int) -> list[CaseItem]:
        """A case's items in time order (NotFoundError for an unknown case)."""
        self.case(case_id)
        rows = self._q(
            "SELECT id, case_id, kind, ref, camera_id, video_id, track_id, start_ts, end_ts, start_pts, end_pts,"
            " sighting_id, query_sha256, search_filters, note, added_by, added_at FROM case_items WHERE case_id=?"
            " ORDER BY start_ts, id",
            (case_id,),
        )
        return [CaseItem(*r) for r in rows]

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
            (int(sid), np.frombuffer(blob, np.float32) if added and blob is not None else None)
            for _, sid, emb, added, blob in rows
            if emb == embedder
        ]
        return Changes(ops, int(rows[-1][0]) if rows else seq)


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

class _Db(Protocol):
    """The part of a DB-API connection the catalog uses inside a transaction."""

    def execute(self, sql: str, args: Sequence = ()) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Sequence]) -> Any: ...


class SqliteCatalog(SqlCatalog):
    """The embedded catalog: one SQLite file in WAL mode; safe to share between threads (one connection, serialised
    by a lock) and between processes (SQLite's file locks; writers take the write lock at BEGIN IMMEDIATE, so
    SQLite commits, and the change log, are in one order)."""

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
            for v, _, sql in MIGRATIONS:
                if v > version:
                    for stmt in filter(str.strip, sql.split(";")):
                        db.execute(stmt)
                    db.execute(f"PRAGMA user_version = {v}")

    @staticmethod
    def _adopt_unversioned(db: _Db) -> int:
        """Catalogs written before schema versions: tell which migrations their tables already have."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        if "sightings" not in tables:
            return 0
        cols = {r[1] for r in db.execute("PRAGMA table_info(sightings)").fetchall()}
        return 2 if "upper_color" in cols else 1

    @contextmanager
    def _tx(self) -> Iterator[_Db]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so reads inside it are current)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._db)
                self._db.execute("COMMIT")
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.OperationalError) and "full" in str(e):
                    raise StorageError(f"{self.path}: no space left to write the catalog ({e}); nothing was stored") from e
                raise

    def _q(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _select_ids(self, sql: str, column: str, ids: Sequence[int], before: Sequence = ()) -> list[tuple]:
        rows: list[tuple] = []
        for i in range(0, len(ids), 900):  # SQLite takes at most 999 parameters
            chunk = ids[i : i + 900]
            rows += self._q(sql.format(f"{column} IN ({','.join('?' * len(chunk))})"), (*before, *chunk))
        return rows

    def _insert_id(self, db: _Db, sql: str, args: Sequence) -> int:
        return int(db.execute(sql, args).lastrowid or 0)


class _SqliteTx:
    """SQLite's connection as a `_Db`, without row locks (BEGIN IMMEDIATE already holds the database's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence = ()) -> sqlite3.Cursor:
        return self._db.execute(sql.replace(" FOR UPDATE", ""), tuple(args))

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> sqlite3.Cursor:
        return self._db.executemany(sql, rows)


def to_postgres(sql: str) -> str:
    """A migration in SQLite's dialect -> PostgreSQL's (the types and the autoincrement key)."""
    sql = re.sub(r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bBLOB\b", "BYTEA", sql)

