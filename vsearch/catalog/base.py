"""The catalog's core: cameras, videos, sightings (with their embeddings), track boxes, ingest progress, the
change log. Pure storage, written once over the engine's SQL (engine.py); cases, marks, the audit log and
watchlists are its smaller books (cases.py, marks.py, audit.py, watchlists.py).

The catalog is the source of truth. Each ingest checkpoint commits its sightings, their embeddings and the
video's progress in ONE transaction, so an interrupted ingest resumes exactly where its last commit ended. Every
sighting added or removed is also written, in the same transaction, to a change log with a sequence number:
whatever follows the catalog (the vector index, see store.py) catches up by reading the log past the last
sequence it applied, never by rescanning the collection.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog.attributes import AttributeBook, AttributeFilter, AttributeRow
from vsearch.catalog.audit import AuditBook
from vsearch.catalog.cases import CaseBook
from vsearch.catalog.embedders import EmbedderBook
from vsearch.catalog.engine import Db, window_conditions
from vsearch.catalog.marks import MarkBook
from vsearch.catalog.records import (
    CameraInfo,
    CameraStats,
    Changes,
    Checkpoint,
    NewSighting,
    TrackBoxRow,
    VideoRecord,
)
from vsearch.catalog.retention import RetentionBook
from vsearch.catalog.watchlists import WatchBook
from vsearch.errors import IndexStateError, LeaseLostError, NotFoundError
from vsearch.faults import kill_point
from vsearch.ids import (
    FIRST_TIMED_ID,
    ID_BUCKET_S,
    MAX_SLOT,
    SLOT_SHIFT,
    Window,
    camera_minute_ids,
    day_of_ts,
    is_legacy,
    minute_of_ts,
)
from vsearch.types import IdSet, Sighting

SIGHTING_COLS = (
    "s.id, s.camera_id, s.video_id, v.path, s.track_id, s.ts, s.pts, s.x1, s.y1, s.x2, s.y2, s.confidence, s.thumb_path,"
    " s.upper_color, s.lower_color"
)
_VIDEO_COLS = (
    "id, camera_id, path, sha256, start_ts, fps, frame_count, status, processed_until_s, frames_sampled, error, embedder,"
    " resume_state"
)


# a time window's sightings have ids in its envelope (vsearch.ids), or ids from before time-ordered ids: said to
# the engine, so that PostgreSQL reads only the window's days (partitions.py)
_IN_ENVELOPE = f"(id < {FIRST_TIMED_ID} OR (id >= ? AND id < ?))"


def _sighting(row: Sequence) -> Sighting:
    return Sighting(
        id=row[0], camera_id=row[1], video_id=row[2], video_path=row[3], track_id=row[4], ts_s=row[5],
        pts_s=row[6], xyxy=(row[7], row[8], row[9], row[10]), confidence=row[11], thumb_path=row[12],
        upper_color=row[13], lower_color=row[14],
    )  # fmt: skip


def _vectors(blobs: Iterable[bytes]) -> NDArray[np.float32]:
    return np.stack([np.frombuffer(b, np.float32) for b in blobs])


class Catalog(CaseBook, MarkBook, AuditBook, EmbedderBook, WatchBook, AttributeBook, RetentionBook):
    """What vsearch needs from a catalog: the SQL logic, written once; an engine subclass (SqliteCatalog,
    PostgresCatalog) runs it. Cases, marks, the audit log, embedder versions,
    watchlists, attribute probabilities and retention are inherited from their own books."""

    _UPSERT_CAMERA = "INSERT INTO cameras (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
    _BOX_KEY = "video_id, track_id, pts"  # a partitioned table's unique key holds its partition key (postgres.py)

    @property
    def _upsert_box(self) -> str:
        return (
            "INSERT INTO track_boxes (video_id, track_id, pts, x1, y1, x2, y2, confidence, ts)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ({self._BOX_KEY}) DO UPDATE SET x1=excluded.x1,"
            " y1=excluded.y1, x2=excluded.x2, y2=excluded.y2, confidence=excluded.confidence"
        )

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

    def finish_recorded_video(self, video_id: int, sha256: str, frame_count: int) -> None:
        """A live segment registered while it was recorded (vsearch.live) is written: its file's hash (so an ingest
        of the recordings folder finds it already done) and length; done."""
        with self._tx() as db:
            db.execute(
                "UPDATE videos SET sha256=?, frame_count=?, status='done', finished_at=?, resume_state=NULL WHERE id=?",
                (sha256, frame_count, time.time(), video_id),
            )

    def video_after(self, camera_id: str, ts_s: float, within_s: float) -> VideoRecord | None:
        """The camera's video that starts after `ts_s` but within `within_s` of it (the next recorded segment)."""
        rows = self._q(
            f"SELECT {_VIDEO_COLS} FROM videos WHERE camera_id=? AND start_ts > ? AND start_ts <= ? ORDER BY start_ts"
            " LIMIT 1", (camera_id, ts_s - 1e-3, ts_s + within_s),
        )  # fmt: skip
        return VideoRecord(*rows[0]) if rows else None

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
                f"SELECT lease_owner, lease_until FROM videos WHERE id=?{self.dialect.lock_rows}", (video_id,)
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

    def commit_chunk(self, video_id: int, cp: Checkpoint, owner: str | None = None) -> list[int]:
        """Store one checkpoint's sightings and track boxes, log them, and advance the video's progress, atomically.

        With `owner`, the checkpoint is stored only if that owner still holds the video's lease (else
        LeaseLostError and nothing is stored); the lease is released when the video is done. Returns the ids given
        to `sightings`, in order.
        """
        start = self._q("SELECT start_ts FROM videos WHERE id=?", (video_id,))
        if not start:
            raise NotFoundError(f"no video with id {video_id}")
        start_ts = float(start[0][0])
        # the days these rows (and their log entries, dated now) go to have their partitions (PostgreSQL)
        self._ensure_days({day_of_ts(s.ts_s) for s in cp.sightings} | {day_of_ts(start_ts + b[1]) for b in cp.boxes}
                          | {day_of_ts(time.time())})  # fmt: skip
        with self._tx() as db:
            row = db.execute(
                f"SELECT embedder, lease_owner FROM videos WHERE id=?{self.dialect.lock_rows}", (video_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no video with id {video_id}")
            embedder, holder = row
            if owner is not None and holder != owner:
                raise LeaseLostError(
                    f"video {video_id}: this ingest ({owner}) lost its lease to {holder or 'nobody'}; nothing was stored"
                )
            ids = []
            if sightings := cp.sightings:
                self._order_log(db)  # also serialises id allocation between writers
                ids = self._allocate_ids(db, sightings)
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
                by_model: dict[str, list[AttributeRow]] = {}
                for i, new in zip(ids, sightings):
                    if new.attributes is not None:
                        by_model.setdefault(new.attribute_model, []).append(
                            (i, new.camera_id, new.ts_s, new.attributes)
                        )
                for model, rows in by_model.items():
                    self.put_attributes(model, rows, db)
            db.executemany(
                self._upsert_box,
                [(video_id, tid, pts, *xyxy, conf, start_ts + pts) for tid, pts, xyxy, conf in cp.boxes],
            )
            # a done video stays done: a live track that began in a finished segment adds its later sightings to it
            db.execute(
                "UPDATE videos SET processed_until_s = CASE WHEN ? > processed_until_s THEN ? ELSE processed_until_s END,"
                " frames_sampled=frames_sampled+?, status = CASE WHEN status='done' THEN status ELSE ? END,"
                " finished_at = CASE WHEN status='done' THEN finished_at ELSE ? END,"
                " resume_state=?, lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END WHERE id=?",
                (cp.processed_until_s, cp.processed_until_s, cp.frames_sampled, "done" if cp.done else "ingesting",
                 time.time() if cp.done else None, None if cp.done else cp.resume_state, cp.done, video_id),
            )  # fmt: skip
            kill_point("catalog.commit_chunk")
        return ids

    def _allocate_ids(self, db: Db, sightings: Sequence[NewSighting]) -> list[int]:
        """Ids for new sightings, by their minute and camera slot (see vsearch.ids); the caller holds the log order
        lock. Counted per camera and minute (id_slots) and per minute (id_buckets: a time window's counts)."""
        slots = {c: self._camera_slot(db, c) for c in sorted({s.camera_id for s in sightings})}
        keys = [(slots[s.camera_id], minute_of_ts(s.ts_s)) for s in sightings]
        per_key: dict[tuple[int, int], int] = {}
        for key in keys:
            per_key[key] = per_key.get(key, 0) + 1
        next_n: dict[tuple[int, int], int] = {}
        for (slot, b), n in per_key.items():
            row = db.execute("SELECT next_n FROM id_slots WHERE slot=? AND bucket=?", (slot, b)).fetchone()
            start = int(row[0]) if row else 0
            if start + n > 1 << SLOT_SHIFT:
                raise IndexStateError(
                    f"more than {1 << SLOT_SHIFT} sightings of one camera in one minute ({b * ID_BUCKET_S} s)"
                )
            db.execute(
                "INSERT INTO id_slots (slot, bucket, next_n, n) VALUES (?, ?, ?, ?) ON CONFLICT (slot, bucket)"
                " DO UPDATE SET next_n = id_slots.next_n + excluded.n, n = id_slots.n + excluded.n",
                (slot, b, start + n, n),
            )
            next_n[(slot, b)] = start
        for b in sorted({b for _, b in per_key}):
            n = sum(v for (_, bb), v in per_key.items() if bb == b)
            db.execute(
                "INSERT INTO id_buckets (bucket, next_n, n) VALUES (?, 0, ?) ON CONFLICT (bucket) DO UPDATE"
                " SET n = id_buckets.n + excluded.n",
                (b, n),
            )
        ids = []
        for key in keys:
            ids.append(camera_minute_ids(key[1], key[0])[0] + next_n[key])
            next_n[key] += 1
        return ids

    def _camera_slot(self, db: Db, camera_id: str) -> int:
        """The camera's slot in sighting ids, given on its first sighting (the caller holds the log order lock)."""
        row = db.execute("SELECT slot FROM cameras WHERE id=?", (camera_id,)).fetchone()
        if row is not None and row[0] is not None:
            return int(row[0])
        if row is None:
            db.execute(self._UPSERT_CAMERA, (camera_id, time.time()))
        top = db.execute("SELECT MAX(slot) FROM cameras").fetchone()[0]
        slot = max(int(top) + 1 if top is not None else 0, self._legacy_slots(db))
        if slot > MAX_SLOT:
            raise IndexStateError(f"more than {MAX_SLOT + 1 - self._legacy_slots(db)} cameras: no slot left for {camera_id!r}")
        db.execute("UPDATE cameras SET slot=? WHERE id=?", (slot, camera_id))
        return slot

    def _legacy_slots(self, db: Db | None = None) -> int:
        """The slots the ids from before camera slots reach (migration 18's id_layout): never a camera's."""
        sql = "SELECT legacy_slots FROM id_layout"
        return int((db.execute(sql).fetchone() if db is not None else self._q(sql)[0])[0])

    def delete_video(self, video_id: int) -> list[int]:
        """Remove a video and everything derived from it (logged); returns the removed sighting ids."""
        with self._tx() as db:
            rows = db.execute("SELECT id, embedder FROM sightings WHERE video_id=? ORDER BY id", (video_id,)).fetchall()
            self._forget_sightings(db, [(int(i), e) for i, e in rows])
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
        window, window_args = window_conditions(from_ts_s, to_ts_s, cameras)
        where: list[str] = ["embedder || '' = ?", *window]
        args: list[object] = [embedder, *window_args]
        for col, val in (("upper_color", upper_color), ("lower_color", lower_color)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if len(where) == 1:
            return None
        if from_ts_s is not None or to_ts_s is not None:
            where.append(_IN_ENVELOPE)
            args.extend(Window(from_ts_s, to_ts_s).envelope)
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
        attributes: AttributeFilter | None = None,
    ) -> IdSet | None:
        """The sightings inside the filters, as the index searches them; None when nothing is filtered.

        A time window alone is one id range, from its first minute to its last, whatever the collection holds:
        its whole minutes are counted from id_buckets, its two partial minutes in an index, and those two
        minutes' id ranges are `IdSet.partial` (the store checks the times of what the index returns from them);
        `IdSet.spanned` counts the envelope (id_buckets, the partial minutes whole).
        Cameras are their slots (vsearch.ids) in that id range, counted from id_slots, their ids from before camera
        slots listed (only those: a bounded span of time). Colours select their ids in SQL, and so does a
        description (`attributes`: the attribute table's rows inside the window and cameras whose joint probability
        passes), intersected with the colours' when both are given.
        """
        if attributes is not None:
            picked = self.attribute_ids(attributes, from_ts_s, to_ts_s, cameras)
            if upper_color or lower_color:
                colours = self.filter_ids(embedder, from_ts_s, to_ts_s, cameras, upper_color, lower_color)
                if colours is not None:
                    picked = np.intersect1d(picked, colours)
            return IdSet(ids=picked, count=len(picked))
        if upper_color or lower_color:
            ids = self.filter_ids(embedder, from_ts_s, to_ts_s, cameras, upper_color, lower_color)
            return None if ids is None else IdSet(ids=ids, count=len(ids))
        if cameras:
            return self._select_cameras(embedder, Window(from_ts_s, to_ts_s), cameras)
        if from_ts_s is None and to_ts_s is None:
            return None
        w = Window(from_ts_s, to_ts_s)
        first, last, lo_ts, hi_ts = w.first, w.last, w.lo_ts, w.hi_ts
        count, spanned = (int(v) for v in self._q(
            "SELECT COALESCE(SUM(CASE WHEN bucket >= ? AND bucket <= ? THEN n ELSE 0 END), 0), COALESCE(SUM(n), 0)"
            " FROM id_buckets WHERE bucket >= ? AND bucket <= ?", (*w.whole, max(first, 0), last),
        )[0])  # fmt: skip
        # the partial minutes' sightings inside the window are counted, not listed: in the (embedder, id, ts)
        # index, never the table's rows (1 KB embeddings each); `ts + 0` keeps both engines off the time index
        for a, b in w.partial:
            count += int(self._q(
                "SELECT COUNT(*) FROM sightings WHERE embedder = ? AND id >= ? AND id < ? AND ts + 0 >= ?"
                " AND ts + 0 <= ?", (embedder, a, b, lo_ts, hi_ts),
            )[0][0])  # fmt: skip
        # sightings stored before time-ordered ids are selected by time (`embedder || ''`: the id range drives it)
        rows = self._q(
            "SELECT id FROM sightings WHERE id < ? AND ts + 0 >= ? AND ts + 0 <= ? AND embedder || '' = ?",
            (FIRST_TIMED_ID, lo_ts, hi_ts, embedder),
        )
        ids = np.array([r[0] for r in rows], np.int64)
        return IdSet((w.envelope,), ids, count + len(ids), w.partial, spanned + len(ids))

    def _select_cameras(self, embedder: str, w: Window, cameras: Sequence[str]) -> IdSet:
        """Cameras (in a window, or not) as camera slots in the window's id envelope: counted per camera and minute
        (id_slots: one row a camera a minute, never a row a sighting), the partial minutes' part in the window
        counted in the (embedder, id, ts) index; only the ids from before camera slots are listed."""
        marks = ",".join("?" * len(cameras))
        slots = tuple(sorted(int(r[0]) for r in self._q(
            f"SELECT slot FROM cameras WHERE id IN ({marks}) AND slot IS NOT NULL", list(cameras))))  # fmt: skip
        count = spanned = 0
        if slots:
            count, spanned = (int(v) for v in self._q(
                "SELECT COALESCE(SUM(CASE WHEN bucket >= ? AND bucket <= ? THEN n ELSE 0 END), 0), COALESCE(SUM(n), 0)"
                f" FROM id_slots WHERE slot IN ({','.join('?' * len(slots))}) AND bucket >= ? AND bucket <= ?",
                (*w.whole, *slots, max(w.first, 0), w.last),
            )[0])  # fmt: skip
        for m in w.partial_minutes:
            for slot in slots:
                a, b = camera_minute_ids(m, slot)
                count += int(self._q(
                    "SELECT COUNT(*) FROM sightings WHERE embedder = ? AND id >= ? AND id < ? AND ts + 0 >= ?"
                    " AND ts + 0 <= ?", (embedder, a, b, w.lo_ts, w.hi_ts),
                )[0][0])  # fmt: skip
        legacy = self._legacy_camera_ids(embedder, w, cameras)
        return IdSet((w.envelope,), legacy, count + len(legacy), w.partial, spanned + len(legacy), slots)

    def _legacy_camera_ids(self, embedder: str, w: Window, cameras: Sequence[str]) -> NDArray[np.int64]:
        """The cameras' ids from before camera slots inside the window: read from the camera/time index over the
        time span those ids cover (id_layout), never past it."""
        legacy_slots, lo, hi = self._q("SELECT legacy_slots, legacy_from_ts, legacy_to_ts FROM id_layout")[0]
        if lo is None or w.lo_ts > hi or w.hi_ts < lo:
            return np.zeros(0, np.int64)
        rows = self._q(
            f"SELECT id FROM sightings WHERE camera_id IN ({','.join('?' * len(cameras))}) AND ts >= ? AND ts <= ?"
            " AND embedder = ?",
            [*cameras, max(lo, w.lo_ts), min(hi, w.hi_ts), embedder],
        )
        ids = np.array([r[0] for r in rows], np.int64)
        return ids[is_legacy(ids, int(legacy_slots))]

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

    def track_vectors(self, embedder: str, tracks: Iterable[tuple[int, int]]) -> dict[tuple[int, int], NDArray[np.float32]]:
        """The mean of each track's stored `embedder` vectors (not normalised), by (video_id, track_id); tracks
        with no such vector are left out. One query per video (the index on video and track)."""
        by_video: dict[int, set[int]] = {}
        for v, t in tracks:
            by_video.setdefault(int(v), set()).add(int(t))
        out: dict[tuple[int, int], NDArray[np.float32]] = {}
        for v, ts in by_video.items():
            rows = self._select_ids(
                "SELECT track_id, embedding FROM sightings WHERE video_id=? AND embedder=? AND {}", "track_id",
                sorted(ts), (v, embedder),
            )  # fmt: skip
            sums: dict[int, list[NDArray[np.float32]]] = {}
            for t, blob in rows:
                sums.setdefault(int(t), []).append(np.frombuffer(blob, np.float32))
            out.update({(v, t): np.mean(vs, axis=0).astype(np.float32) for t, vs in sums.items()})
        return out

    def camera_sample(self, embedder: str, camera_id: str | None, limit: int) -> tuple[NDArray[np.float32], int]:
        """The camera's latest `limit` stored `embedder` vectors (n, d), by time (the index on camera and time),
        and how many distinct tracks (people, as far as the ingest knows) they come from; `camera_id` None: the
        latest of every camera (by id, which follows time: the index on embedder and id)."""
        cols = "embedding, video_id, track_id"
        if camera_id is None:
            sql, args = f"SELECT {cols} FROM sightings WHERE embedder=? ORDER BY id DESC LIMIT ?", (embedder, limit)
        else:
            sql = f"SELECT {cols} FROM sightings WHERE camera_id=? AND embedder=? ORDER BY ts DESC LIMIT ?"
            args = (camera_id, embedder, limit)  # type: ignore[assignment]
        rows = self._q(sql, args)
        if not rows:
            return np.zeros((0, 0), np.float32), 0
        return _vectors(r[0] for r in rows), len({(r[1], r[2]) for r in rows})

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
        where, args = f"s.ts BETWEEN ? AND ? AND {_IN_ENVELOPE.replace('id', 's.id')}", [from_ts_s, to_ts_s]
        args.extend(Window(from_ts_s, to_ts_s).envelope)
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
