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
from vsearch.catalog.records import Alert, Delivery, WatchEntry, WatchVector
from vsearch.errors import InputError, NotFoundError

_ENTRY_SQL = (
    "SELECT e.id, e.name, e.case_id, e.cameras, e.min_score, e.expires_at, e.status, e.embedder, e.created_by,"
    " e.created_at, e.updated_at, (SELECT COUNT(*) FROM watchlist_vectors v WHERE v.entry_id = e.id), e.webhook_url"
    " FROM watchlist_entries e"
)
_DELIVERY_COLS = "id, alert_id, entry_id, url, status, attempts, next_at, last_error, created_at, delivered_at"
_ALERT_COLS = (
    "id, entry_id, camera_id, video_id, track_id, sighting_id, score, ts, first_ts, last_ts, tracks, status, acked_by,"
    " acked_at, created_at, updated_at"
)


def _entry(r: Sequence) -> WatchEntry:
    cams = tuple(c for c in str(r[3]).split("\n") if c)
    return WatchEntry(int(r[0]), r[1], r[2], cams, float(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], int(r[11]), r[12])


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
        touched: list[int] = []
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
                touched.append(alert_id)
            self._log_alerts(db, [(a, "new" if a in created else "update") for a in dict.fromkeys(touched)])
            self._queue_deliveries(db, created)
        return created

    def _log_alerts(self, db: Db, events: Sequence[tuple[int, str]]) -> None:
        """Append alert events to the alert log (in the caller's transaction), numbered on from its last."""
        if not events:
            return
        self._order_alerts(db)
        seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM alert_log").fetchone()[0])
        now = time.time()
        db.executemany("INSERT INTO alert_log (seq, alert_id, event, ts) VALUES (?, ?, ?, ?)",
                       [(seq + i, a, ev, now) for i, (a, ev) in enumerate(events, 1)])  # fmt: skip

    def _queue_deliveries(self, db: Db, alert_ids: Sequence[int]) -> None:
        """A pending webhook delivery for each new alert whose entry has a webhook, due at once."""
        now = time.time()
        for alert_id in alert_ids:
            db.execute(
                "INSERT INTO webhook_deliveries (alert_id, entry_id, url, next_at, created_at)"
                " SELECT a.id, e.id, e.webhook_url, ?, ? FROM alerts a JOIN watchlist_entries e ON e.id = a.entry_id"
                " WHERE a.id = ? AND e.webhook_url IS NOT NULL",
                (now, now, alert_id),
            )

    def alert_events(self, after: int, limit: int = 200) -> list[tuple[int, int, str]]:
        """(seq, alert id, event) of the alert log after `after`, oldest first."""
        rows = self._q("SELECT seq, alert_id, event FROM alert_log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [(int(r[0]), int(r[1]), r[2]) for r in rows]

    def alert_log_last(self) -> int:
        """The alert log's newest sequence number (0: none)."""
        return int(self._q("SELECT COALESCE(MAX(seq), 0) FROM alert_log")[0][0])

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
            self._log_alerts(db, [(alert_id, "ack")])
        return self.alert(alert_id)

    # -- webhooks ----------------------------------------------------------------------------------------------
    def set_watch_webhook(self, entry_id: int, url: str | None, secret: str | None) -> WatchEntry:
        """Set (or with None, clear) an entry's webhook URL and signing secret. Deliveries already queued keep
        the URL they were queued with."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE watchlist_entries SET webhook_url=?, webhook_secret=?, updated_at=? WHERE id=? AND status <> 'removed'",
                (url, secret, time.time(), entry_id),
            )  # fmt: skip
            if cur.rowcount != 1:
                raise NotFoundError(f"no watchlist entry with id {entry_id}")
        return self.watch_entry(entry_id)

    def webhook_secret(self, entry_id: int) -> str | None:
        rows = self._q("SELECT webhook_secret FROM watchlist_entries WHERE id=?", (entry_id,))
        return rows[0][0] if rows else None

    def delivery(self, delivery_id: int) -> Delivery:
        rows = self._q(f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE id=?", (delivery_id,))
        if not rows:
            raise NotFoundError(f"no webhook delivery with id {delivery_id}")
        return Delivery(*rows[0])

    def deliveries(self, status: str, limit: int = 1000) -> list[Delivery]:
        """Deliveries in one status, newest first."""
        rows = self._q(f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE status=? ORDER BY id DESC LIMIT ?", (status, limit))
        return [Delivery(*r) for r in rows]

    def claim_deliveries(self, now: float, lease_s: float, limit: int = 20) -> list[Delivery]:
        """Take the pending deliveries that are due and not leased by another sender, oldest first, leasing them
        for `lease_s` (a sender that dies lets its lease expire: the delivery is retried, never lost)."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE status='pending' AND next_at <= ?"
                f" AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?{self.dialect.lock_rows}",
                (now, now, limit),
            ).fetchall()  # fmt: skip
            for r in rows:
                db.execute("UPDATE webhook_deliveries SET lease_until=? WHERE id=?", (now + lease_s, r[0]))
        return [Delivery(*r) for r in rows]

    def finish_delivery(self, delivery_id: int, error: str | None, next_at: float | None) -> None:
        """Record an attempt: delivered (`error` None), to be retried at `next_at`, or dead (`next_at` None)."""
        status = "delivered" if error is None else ("pending" if next_at is not None else "dead")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE webhook_deliveries SET status=?, attempts = attempts + 1, last_error=?, lease_until=NULL,"
                " next_at = COALESCE(?, next_at), delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id=?",
                (status, error, next_at, status, now, delivery_id),
            )  # fmt: skip

    def requeue_delivery(self, delivery_id: int) -> Delivery:
        """Put a dead delivery back in the queue, due now, its attempts counted afresh."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE webhook_deliveries SET status='pending', attempts=0, next_at=?, lease_until=NULL WHERE id=? AND status='dead'",
                (time.time(), delivery_id),
            )  # fmt: skip
            if cur.rowcount != 1:
                self.delivery(delivery_id)  # NotFoundError if unknown
                raise InputError(f"webhook delivery {delivery_id} is not dead: only dead deliveries are retried")
        return self.delivery(delivery_id)
