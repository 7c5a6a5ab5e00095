"""Watchlists behind their own small interface: entries, their embeddings, and the alerts matching raises.

Every change to an entry bumps `watchlist_version` in its transaction: a matcher (vsearch.watchlist) reloads its
entries when the version it holds is no longer the catalog's, so an entry added, paused or confirmed by one node
reaches every ingest worker at its next checkpoint. Alerts are written by `record_hits`, inside the transaction
that stores the sightings they are about (Store.commit_chunk), so a crash keeps both or neither.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vsearch.catalog.engine import Db, SqlEngine
from vsearch.catalog.records import Alert, WatchEntry, WatchVector
from vsearch.errors import NotFoundError

_ENTRY_SQL = (
    "SELECT e.id, e.name, e.case_id, e.cameras, e.min_score, e.expires_at, e.status, e.embedder, e.created_by,"
    " e.created_at, e.updated_at, (SELECT COUNT(*) FROM watchlist_vectors v WHERE v.entry_id = e.id)"
    " FROM watchlist_entries e"
)
_ALERT_COLS = (
    "id, entry_id, camera_id, video_id, track_id, sighting_id, score, ts, first_ts, last_ts, tracks, status, acked_by,"
    " acked_at, created_at, updated_at"
)


def _entry(r: Sequence) -> WatchEntry:
    cams = tuple(c for c in str(r[3]).split("\n") if c)
    return WatchEntry(int(r[0]), r[1], r[2], cams, float(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], int(r[11]))


@dataclass(frozen=True)
class Hit:
    """The best crop of one track that scored over an entry's threshold in one checkpoint."""

    entry_id: int
    camera_id: str
    video_id: int
    track_id: int
    sighting_id: int
    score: float
    ts_s: float


class WatchBook(SqlEngine):
    """Watchlist entries, their vectors and alerts, over the catalog's SQL engine."""

    # -- entries ----------------------------------------------------------------------------------------------
    def add_watch_entry(
        self, name: str, case_id: int | None, cameras: Sequence[str], min_score: float, expires_at: float | None,
        embedder: str, by: str, vectors: Sequence[WatchVector],
    ) -> WatchEntry:  # fmt: skip
        """Add an entry with its vectors (one transaction; joins the caller's)."""
        now = time.time()
        with self._tx() as db:
            entry_id = self._insert_id(
                db,
                "INSERT INTO watchlist_entries (name, case_id, cameras, min_score, expires_at, status, embedder,"
                " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                (name, case_id, "\n".join(cameras), min_score, expires_at, embedder, by, now, now),
            )
            self._add_vectors(db, entry_id, vectors)
        return self.watch_entry(entry_id)

    def _add_vectors(self, db: Db, entry_id: int, vectors: Sequence[WatchVector]) -> None:
        db.executemany(
            "INSERT INTO watchlist_vectors (entry_id, source, image_path, embedding, added_at) VALUES (?, ?, ?, ?, ?)",
            [(entry_id, v.source, v.image_path, np.ascontiguousarray(v.embedding, np.float32).tobytes(), time.time())
             for v in vectors],
        )  # fmt: skip
        self._bump(db)

    @staticmethod
    def _bump(db: Db) -> None:
        db.execute("UPDATE watchlist_version SET version = version + 1 WHERE one = 1")

    def watch_version(self) -> int:
        """The watchlists' version: it changes with every change to an entry or its vectors."""
        return int(self._q("SELECT version FROM watchlist_version WHERE one = 1")[0][0])

    def watch_entry(self, entry_id: int) -> WatchEntry:
        """An entry (NotFoundError if unknown; a removed entry is still returned, with status 'removed')."""
        rows = self._q(f"{_ENTRY_SQL} WHERE e.id = ?", (entry_id,))
        if not rows:
            raise NotFoundError(f"no watchlist entry with id {entry_id}")
        return _entry(rows[0])

    def watch_entries(self, include_removed: bool = False, created_by: str | None = None) -> list[WatchEntry]:
        """Entries oldest first (of one creator, if given)."""
        where, args = [], []
        if not include_removed:
            where.append("e.status <> 'removed'")
        if created_by is not None:
            where.append("e.created_by = ?")
            args.append(created_by)
        sql = f"{_ENTRY_SQL}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY e.id"
        return [_entry(r) for r in self._q(sql, args)]

    def set_watch_status(self, entry_id: int, status: str) -> WatchEntry:
        """Pause, resume or remove an entry (its alerts are kept)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE watchlist_entries SET status=?, updated_at=? WHERE id=? AND status <> 'removed'",
                (status, time.time(), entry_id),
            )
            if cur.rowcount != 1:
                raise NotFoundError(f"no watchlist entry with id {entry_id}")
            self._bump(db)
        return self.watch_entry(entry_id)

    def add_watch_vectors(self, entry_id: int, vectors: Sequence[WatchVector]) -> None:
        """Add embeddings to an entry (one transaction; joins the caller's)."""
        with self._tx() as db:
            self._add_vectors(db, entry_id, vectors)

    def watch_vectors(self, entry_ids: Sequence[int]) -> list[WatchVector]:
        """The vectors of these entries, in insertion order."""
        rows = self._select_ids(
            "SELECT entry_id, source, embedding, image_path FROM watchlist_vectors WHERE {} ORDER BY id",
            "entry_id", list(entry_ids),
        )  # fmt: skip
        return [WatchVector(int(r[0]), r[1], np.frombuffer(r[2], np.float32), r[3]) for r in rows]

    def watch_state(self) -> tuple[int, list[WatchEntry], list[WatchVector]]:
        """(version, the entries not removed, their vectors), read together (in the caller's transaction, if open)."""
        with self._tx():
            version = self.watch_version()
            entries = self.watch_entries()
            return version, entries, self.watch_vectors([e.id for e in entries])

    # -- alerts ------------------------------------------------------------------------------------------------
    def record_hits(self, hits: Sequence[Hit], fold_s: float) -> list[int]:
        """Turn hits into alerts (in the caller's transaction): a track an alert already covers raises that alert's
        best score; a new track of an entry seen on the same camera within `fold_s` of that entry's latest alert there
        joins it (the rate limit: one appearance cut into several tracks is one alert); else a new alert. An alert
        names the video, track and sighting of its best crop. Returns the ids of the alerts created."""
        created: list[int] = []
        now = time.time()
        with self._tx() as db:
            for h in hits:
                row = db.execute(
                    "SELECT alert_id FROM alert_tracks WHERE entry_id=? AND video_id=? AND track_id=?",
                    (h.entry_id, h.video_id, h.track_id),
                ).fetchone()
                if row is None:
                    near = db.execute(
                        "SELECT id FROM alerts WHERE entry_id=? AND camera_id=? AND last_ts >= ? ORDER BY last_ts DESC"
                        " LIMIT 1", (h.entry_id, h.camera_id, h.ts_s - fold_s),
                    ).fetchone()  # fmt: skip
                    if near is None:
                        alert_id = self._insert_id(
                            db,
                            f"INSERT INTO alerts ({_ALERT_COLS.split(', ', 1)[1]}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'new', NULL, NULL, ?, ?)",
                            (h.entry_id, h.camera_id, h.video_id, h.track_id, h.sighting_id, h.score, h.ts_s, h.ts_s,
                             h.ts_s, now, now),
                        )  # fmt: skip
                        created.append(alert_id)
                    else:
                        alert_id = int(near[0])
                        db.execute("UPDATE alerts SET tracks = tracks + 1 WHERE id=?", (alert_id,))
                    db.execute(
                        "INSERT INTO alert_tracks (entry_id, video_id, track_id, alert_id) VALUES (?, ?, ?, ?)",
                        (h.entry_id, h.video_id, h.track_id, alert_id),
                    )
                else:
                    alert_id = int(row[0])
                db.execute(
                    "UPDATE alerts SET sighting_id = CASE WHEN ? > score THEN ? ELSE sighting_id END,"
                    " video_id = CASE WHEN ? > score THEN ? ELSE video_id END,"
                    " track_id = CASE WHEN ? > score THEN ? ELSE track_id END,"
                    " ts = CASE WHEN ? > score THEN ? ELSE ts END, score = CASE WHEN ? > score THEN ? ELSE score END,"
                    " first_ts = CASE WHEN ? < first_ts THEN ? ELSE first_ts END,"
                    " last_ts = CASE WHEN ? > last_ts THEN ? ELSE last_ts END, updated_at=? WHERE id=?",
                    (h.score, h.sighting_id, h.score, h.video_id, h.score, h.track_id, h.score, h.ts_s, h.score, h.score,
                     h.ts_s, h.ts_s, h.ts_s, h.ts_s, now, alert_id),
                )  # fmt: skip
        return created

    def alert(self, alert_id: int) -> Alert:
        rows = self._q(f"SELECT {_ALERT_COLS} FROM alerts WHERE id=?", (alert_id,))
        if not rows:
            raise NotFoundError(f"no alert with id {alert_id}")
        return Alert(*rows[0])

    def alerts(self, entry_ids: Sequence[int] | None = None, limit: int = 1000) -> list[Alert]:
        """Alerts newest first, of some entries or of all."""
        if entry_ids is None:
            return [Alert(*r) for r in self._q(f"SELECT {_ALERT_COLS} FROM alerts ORDER BY id DESC LIMIT ?", (limit,))]
        rows = self._select_ids(f"SELECT {_ALERT_COLS} FROM alerts WHERE {{}} ORDER BY id DESC", "entry_id", list(entry_ids))
        return [Alert(*r) for r in rows[:limit]]

    def ack_alert(self, alert_id: int, status: str, by: str) -> Alert:
        """Record an investigator's verdict on an alert ('confirmed' or 'false'), in one transaction."""
        with self._tx() as db:
            cur = db.execute("UPDATE alerts SET status=?, acked_by=?, acked_at=? WHERE id=?", (status, by, time.time(), alert_id))
            if cur.rowcount != 1:
                raise NotFoundError(f"no alert with id {alert_id}")
        return self.alert(alert_id)
