"""Watchlists: wanted people, matched against every sighting as it is stored, alerts when they appear.

One entry point, `Watchlists` (held by `VSearch.watchlists`): entries are added, paused, resumed and removed,
alerts listed and acknowledged, each change audited in its own transaction (vsearch.audit). Its `matcher` is
what the store calls inside the transaction that commits an ingest checkpoint (Store.commit_chunk), from batch
ingest and `vsearch watch` alike: every new sighting is scored against the active entries (cosine similarity,
the best over an entry's vectors), and a track scoring over an entry's threshold becomes an alert committed with
the sighting, so a crash or a resumed ingest loses none and doubles none (catalog/watchlists.py: one alert per
entry per track). The matcher keeps the entries' vectors as one small matrix and reloads it when the catalog's
watchlist version moves (any node's change reaches every worker at its next checkpoint).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.audit import AuditLog
from vsearch.cases import MAX_NAME, check_text
from vsearch.casework import Casework, check_cameras
from vsearch.catalog import Alert, Catalog, Delivery, Hit, NewSighting, WatchEntry, WatchVector
from vsearch.clips import clip_id_for_sighting
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder, thresholds
from vsearch.errors import IndexStateError, InputError, NotFoundError, PermissionDeniedError, VSearchError
from vsearch.search import MAX_QUERY_IMAGES, decode_image, query_crop
from vsearch.types import parse_time
from vsearch.webhooks import Deliverer, check_url

# the rate limit: a new track of an entry within this many seconds of its latest alert on the same camera joins
# that alert instead of raising another (a tracker cuts one appearance into several tracks when the person is
# hidden). Short on purpose: a longer window also folds the next passer-by into an alert (the folded alert then
# names its best crop, which may be either)
FOLD_S = 10.0
MAX_SIGHTINGS = 20
VERDICTS = ("confirmed", "false")


@dataclass(frozen=True)
class AlertView:
    """An alert with its entry's name, for listings."""

    alert: Alert
    entry_name: str


class Matcher:
    """Scores new sightings against the active entries, inside the store's commit transaction."""

    def __init__(self, catalog: Catalog, embedder: str, fold_s: float = FOLD_S) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.fold_s = fold_s
        self._version = -1
        self._entries: list[WatchEntry] = []
        self._vectors = np.zeros((0, 0), np.float32)
        self._owner = np.zeros(0, np.int64)  # the index into _entries of each row of _vectors
        self._lock = threading.Lock()
        self.reloads = 0

    def _load(self) -> None:
        """Reload the entries and their vectors when the catalog's watchlist version moved (one small query)."""
        if self.catalog.watch_version() == self._version:
            return
        version, entries, vectors = self.catalog.watch_state()
        entries = [e for e in entries if e.embedder == self.embedder]
        at = {e.id: i for i, e in enumerate(entries)}
        vectors = [v for v in vectors if v.entry_id in at]
        self._entries = entries
        self._vectors = np.stack([v.embedding for v in vectors]) if vectors else np.zeros((0, 0), np.float32)
        self._owner = np.array([at[v.entry_id] for v in vectors], np.int64)
        self._version = version
        self.reloads += 1

    def scores(self, embeddings: NDArray[np.float32]) -> tuple[list[WatchEntry], NDArray[np.float32]]:
        """(the entries active now, an (n, entries) matrix of each sighting's best similarity to each entry)."""
        with self._lock:
            self._load()
            now = time.time()
            live = [i for i, e in enumerate(self._entries) if e.active_at(now)]
            if not live or not len(self._vectors) or not len(embeddings):
                return [], np.zeros((len(embeddings), 0), np.float32)
            sims = embeddings @ self._vectors.T  # (n, vectors): both L2-normalised, so cosine similarity
            best = np.full((len(embeddings), len(self._entries)), -np.inf, np.float32)
            for j in range(len(self._entries)):
                cols = self._owner == j
                if cols.any():
                    best[:, j] = sims[:, cols].max(axis=1)
            return [self._entries[i] for i in live], best[:, live]

    def match(self, video_id: int, ids: Sequence[int], sightings: Sequence[NewSighting]) -> list[int]:
        """Alerts for the sightings just stored under `ids` (called in their commit's transaction); returns the
        ids of the alerts created."""
        if not ids:
            return []
        entries, best = self.scores(np.stack([s.embedding for s in sightings]).astype(np.float32))
        hits: dict[tuple[int, int], Hit] = {}
        for j, e in enumerate(entries):
            for k in np.flatnonzero(best[:, j] >= e.min_score).tolist():
                s = sightings[k]
                if e.cameras and s.camera_id not in e.cameras:
                    continue
                h = Hit(e.id, s.camera_id, video_id, s.track_id, int(ids[k]), float(best[k, j]), s.ts_s)
                old = hits.get((e.id, s.track_id))
                if old is None or h.score > old.score:
                    hits[(e.id, s.track_id)] = h
        if not hits:
            return []
        return self.catalog.record_hits(sorted(hits.values(), key=lambda h: (h.ts_s, h.entry_id)), self.fold_s)


class Watchlists:
    """Watchlist entries and their alerts over one catalog, every change audited."""

    def __init__(
        self, catalog: Catalog, settings: Settings, audit: AuditLog, casework: Casework, detector: PersonDetector,
        embedder: Embedder,
    ) -> None:  # fmt: skip
        self.catalog, self.settings, self.audit, self.casework = catalog, settings, audit, casework
        self.detector, self.embedder = detector, embedder
        self.matcher = Matcher(catalog, embedder.name)

    # -- access: investigators see and change their own entries and their alerts; operators (admins, the CLI) all
    is_operator = staticmethod(Casework.is_operator)

    def _entry(self, entry_id: int, by: str | None, context: dict[str, Any] | None) -> WatchEntry:
        e = self.catalog.watch_entry(entry_id)
        if e.status == "removed" or not (self.is_operator(context) or by == e.created_by):
            raise NotFoundError(f"no watchlist entry with id {entry_id}")
        return e

    # -- entries ----------------------------------------------------------------------------------------------
    def add(
        self, name: str, images: Sequence[bytes], by: str, context: dict[str, Any] | None = None,
        case_id: int | None = None, cameras: Sequence[str] = (), min_score: float | None = None,
        expires: str | None = None, sighting_ids: Sequence[int] = (), webhook_url: str | None = None,
    ) -> WatchEntry:  # fmt: skip
        """Add a wanted person from images of them and/or sightings already found (audited). Each image's person
        is cropped as a search query is (search.query_crop) and embedded with the catalog's embedder. With a
        `webhook_url`, its new alerts are POSTed there, signed with a secret made for it (`webhook_secret`)."""
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME:
            raise InputError(f"expected a name of 1 to {MAX_NAME} characters, got {len(name)}")
        check_text("a watchlist name", name)
        if not images and not sighting_ids:
            raise InputError("give at least one image of the person or one sighting id (--sighting)")
        if len(images) > MAX_QUERY_IMAGES or len(sighting_ids) > MAX_SIGHTINGS:
            raise InputError(f"at most {MAX_QUERY_IMAGES} images and {MAX_SIGHTINGS} sightings per entry")
        score = thresholds(self.embedder.name).alert if min_score is None else min_score
        if not (math.isfinite(score) and 0.0 < score <= 1.0):
            raise InputError(f"min_score is a cosine similarity threshold in (0, 1], got {min_score}")
        expires_at = None
        if expires is not None:
            expires_at = parse_time(expires)
            if expires_at <= time.time():
                raise InputError(f"expires {expires!r} is in the past; give a future time (ISO 8601)")
        if webhook_url is not None:
            webhook_url = check_url(webhook_url, self.settings.webhook_allow)
        cameras = list(dict.fromkeys(cameras))
        try:
            check_cameras(self.catalog, cameras)
        except NotFoundError as unknown:
            raise NotFoundError(f"{unknown} (a camera without footage yet is registered by `vsearch cameras set ID`)") from None
        if case_id is not None:
            self.casework.case(case_id, by, context)  # NotFoundError for a case the caller may not see
        stored = self.catalog.embedders()
        if stored and self.embedder.name not in stored:
            raise IndexStateError(
                f"the catalog holds embeddings of {stored}, not of the configured embedder {self.embedder.name!r}:"
                " a watchlist entry must be embedded as its footage is"
            )
        vectors = self._sighting_vectors(sighting_ids) + self._image_vectors(images)
        with self.audit.change_by("watchlist.add", by, context, case_id=case_id) as entry:
            e = self.catalog.add_watch_entry(name, case_id, cameras, score, expires_at, self.embedder.name, by, vectors)
            if webhook_url is not None:
                e = self.catalog.set_watch_webhook(e.id, webhook_url, secrets.token_urlsafe(32))
            entry.update(entry_id=e.id, name=e.name, cameras=cameras, min_score=score, expires_at=expires_at,
                         sources=[v.source for v in vectors], webhook_url=webhook_url)  # fmt: skip
        return e

    def _sighting_vectors(self, ids: Sequence[int]) -> list[WatchVector]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        got, vecs = self.catalog.embeddings(np.array(ids, np.int64))
        missing = sorted(set(ids) - {int(i) for i in got})
        if missing:
            raise NotFoundError(f"no sighting with id {missing[0]}" + (f" (nor {missing[1:]})" if len(missing) > 1 else ""))
        found = self.catalog.sightings(ids)
        by_id = dict(zip((int(i) for i in got), vecs))
        return [WatchVector(0, f"sighting:{i}", by_id[i], found[i].thumb_path) for i in ids]

    def _image_vectors(self, images: Sequence[bytes]) -> list[WatchVector]:
        decoded = [decode_image(b, self.settings.max_image_pixels) for b in images]  # every image checked first
        out = []
        folder = self.settings.data_dir / "watchlists"
        folder.mkdir(parents=True, exist_ok=True)
        for raw, img in zip(images, decoded):
            crop = query_crop(img, self.detector, self.settings)
            sha = hashlib.sha256(raw).hexdigest()
            path = folder / f"{sha[:16]}.jpg"
            cv2.imwrite(str(path), crop.crop_rgb[:, :, ::-1])
            vec = self.embedder.embed([crop.crop_rgb])[0]
            out.append(WatchVector(0, f"image:{sha}", vec, str(path.relative_to(self.settings.data_dir))))
        return out

    def entries(self, by: str | None = None, context: dict[str, Any] | None = None) -> list[WatchEntry]:
        """The entries the caller may see (operators: all), oldest first; removed ones are not listed."""
        return self.catalog.watch_entries(created_by=None if self.is_operator(context) or by is None else by)

    def entry(self, entry_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> WatchEntry:
        return self._entry(entry_id, by, context)

    def images(self, entry_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> list[WatchVector]:
        """The entry's vectors, with the crops they came from."""
        self._entry(entry_id, by, context)
        return self.catalog.watch_vectors([entry_id])

    def set_status(self, entry_id: int, status: str, by: str, context: dict[str, Any] | None = None) -> WatchEntry:
        """Pause ('paused'), resume ('active') or remove ('removed') an entry (audited; its alerts are kept)."""
        if status not in ("active", "paused", "removed"):
            raise InputError(f"expected a status of active, paused or removed, got {status!r}")
        action = {"active": "resume", "paused": "pause", "removed": "remove"}[status]
        with self.audit.change_by(f"watchlist.{action}", by, context, entry_id=entry_id) as entry:
            before = self._entry(entry_id, by, context)
            if before.status == status:
                entry.drop()
                return before
            return self.catalog.set_watch_status(entry_id, status)

    def set_webhook(self, entry_id: int, url: str | None, by: str, context: dict[str, Any] | None = None) -> WatchEntry:
        """Send the entry's new alerts to `url` (None: stop), audited. Each call makes a new signing secret
        (`webhook_secret`): setting the same URL again rotates it."""
        url = check_url(url, self.settings.webhook_allow) if url is not None else None
        with self.audit.change_by("watchlist.webhook", by, context, entry_id=entry_id, webhook_url=url) as entry:
            before = self._entry(entry_id, by, context)
            if url is None and before.webhook_url is None:
                entry.drop()
                return before
            return self.catalog.set_watch_webhook(entry_id, url, secrets.token_urlsafe(32) if url else None)

    def webhook_secret(self, entry_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> str | None:
        """The secret the entry's webhook bodies are signed with (its creator and operators only)."""
        self._entry(entry_id, by, context)
        return self.catalog.webhook_secret(entry_id)

    def image_file(self, entry_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> Path:
        """The crop of the entry's first image or sighting (what the alerts panel shows beside each alert's)."""
        for v in self.images(entry_id, by, context):
            if v.image_path and (path := self.settings.data_dir / v.image_path).is_file():
                return path
        raise NotFoundError(f"watchlist entry {entry_id} has no stored image")

    # -- alerts ------------------------------------------------------------------------------------------------
    def alerts(
        self, by: str | None = None, context: dict[str, Any] | None = None, entry_id: int | None = None, limit: int = 1000,
    ) -> list[AlertView]:  # fmt: skip
        """Alerts newest first: of one entry, or of every entry the caller may see."""
        if entry_id is not None:
            shown = [self._entry(entry_id, by, context)]
        else:
            shown = self.catalog.watch_entries(include_removed=True)
            if not (self.is_operator(context) or by is None):
                shown = [e for e in shown if e.created_by == by]
        names = {e.id: e.name for e in shown}
        every = entry_id is None and (self.is_operator(context) or by is None)
        found = self.catalog.alerts(None if every else list(names), limit)
        return [AlertView(a, names.get(a.entry_id, "")) for a in found]

    def ack(self, alert_id: int, verdict: str, by: str, context: dict[str, Any] | None = None) -> Alert:
        """An investigator's verdict on an alert (audited): 'confirmed' adds its best sighting's embedding to the
        entry (and the sighting to the entry's case, if linked); 'false' records a false alert."""
        if verdict not in VERDICTS:
            raise InputError(f"expected a verdict of {' or '.join(VERDICTS)}, got {verdict!r}")
        a = self.catalog.alert(alert_id)
        try:
            e = self._entry(a.entry_id, by, context)
        except NotFoundError:
            raise NotFoundError(f"no alert with id {alert_id}") from None
        with self.audit.change_by("alert.ack", by, context, alert_id=alert_id, entry_id=e.id, verdict=verdict,
                          sighting_id=a.sighting_id) as entry:  # fmt: skip
            if a.status == verdict:
                entry.drop()
                return a
            acked = self.catalog.ack_alert(alert_id, verdict, by)
            if verdict == "confirmed":
                self.catalog.add_watch_vectors(e.id, self._sighting_vectors([a.sighting_id]))
        if verdict == "confirmed" and e.case_id is not None:
            self.casework.add(e.case_id, [str(a.sighting_id)], by, note=f"watchlist alert {alert_id}", context=context)
        return acked

    # -- delivery: the page's live feed, webhooks ----------------------------------------------------------------
    def card(self, v: AlertView) -> dict[str, Any]:
        """An alert as the live feed sends it: `alert_to_dict` and the clip of its best crop (None if the track's
        footage is gone)."""
        try:
            clip = clip_id_for_sighting(self.catalog, self.catalog.sighting(v.alert.sighting_id), self.settings)
        except VSearchError:
            clip = None
        return {**alert_to_dict(v), "clip_id": clip}

    def feed_start(self) -> int:
        """Where a new follower of the alert feed starts: the alert log's newest event."""
        return self.catalog.alert_log_last()

    def feed(
        self, after: int, by: str | None = None, context: dict[str, Any] | None = None, limit: int = 200,
    ) -> tuple[int, list[tuple[int, str, dict[str, Any]]]]:  # fmt: skip
        """The alert events after `after` that the caller may see: (the last sequence number read, [(seq, event,
        card)]). Read from the catalog's alert log, so any API node follows alerts written by any ingest worker."""
        events = self.catalog.alert_events(after, limit)
        if not events:
            return after, []
        operator = self.is_operator(context) or by is None
        entries = {e.id: e for e in self.catalog.watch_entries(include_removed=True)}
        out = []
        for seq, alert_id, event in events:
            a = self.catalog.alert(alert_id)
            e = entries.get(a.entry_id)
            if e is not None and (operator or e.created_by == by):
                out.append((seq, event, self.card(AlertView(a, e.name))))
        return events[-1][0], out

    def delivery_payload(self, d: Delivery) -> dict[str, Any]:
        """A webhook's JSON body: the alert as the API shows it."""
        a = self.catalog.alert(d.alert_id)
        return {"event": "alert", "delivery_id": d.id, "alert": self.card(AlertView(a, self.catalog.watch_entry(a.entry_id).name))}

    def deliverer(self, **kwargs: Any) -> Deliverer:
        """A sender of this catalog's webhook deliveries (vsearch.webhooks.Deliverer)."""
        return Deliverer(self.catalog, self.delivery_payload, allow=self.settings.webhook_allow, **kwargs)

    def _operator(self, context: dict[str, Any] | None, what: str) -> None:
        if not self.is_operator(context):
            raise PermissionDeniedError(f"{what} is for admins; this key is {(context or {}).get('role')!r}")

    def dead_letters(self, context: dict[str, Any] | None = None, limit: int = 1000) -> list[Delivery]:
        """Webhook deliveries that failed every attempt, newest first (operators only)."""
        self._operator(context, "the webhook dead-letter list")
        return self.catalog.deliveries("dead", limit)

    def retry_delivery(self, delivery_id: int, by: str, context: dict[str, Any] | None = None) -> Delivery:
        """Queue a dead delivery again, due now (operators only; audited)."""
        self._operator(context, "retrying a webhook delivery")
        with self.audit.change_by("webhook.retry", by, context, delivery_id=delivery_id):
            return self.catalog.requeue_delivery(delivery_id)


def entry_to_dict(e: WatchEntry) -> dict[str, Any]:
    """An entry as the CLI's --json and the API show it."""
    from vsearch.types import ts_to_iso

    return {
        "id": e.id, "name": e.name, "case_id": e.case_id, "cameras": list(e.cameras), "min_score": e.min_score,
        "expires": ts_to_iso(e.expires_at) if e.expires_at is not None else None, "status": e.status,
        "embedder": e.embedder, "created_by": e.created_by, "created": ts_to_iso(e.created_at), "vectors": e.vectors,
        "webhook_url": e.webhook_url,
    }  # fmt: skip


def delivery_to_dict(d: Delivery) -> dict[str, Any]:
    """A webhook delivery as the CLI's --json and the API show it."""
    from vsearch.types import ts_to_iso

    return {
        "id": d.id, "alert_id": d.alert_id, "entry_id": d.entry_id, "url": d.url, "status": d.status,
        "attempts": d.attempts, "last_error": d.last_error, "created": ts_to_iso(d.created_at),
        "next_attempt": ts_to_iso(d.next_at_s) if d.status == "pending" else None,
        "delivered": ts_to_iso(d.delivered_at) if d.delivered_at is not None else None,
    }  # fmt: skip


def alert_to_dict(v: AlertView) -> dict[str, Any]:
    """An alert as the CLI's --json and the API show it."""
    from vsearch.types import ts_to_iso

    a = v.alert
    return {
        "id": a.id, "entry_id": a.entry_id, "entry_name": v.entry_name, "camera_id": a.camera_id,
        "video_id": a.video_id, "track_id": a.track_id, "sighting_id": a.sighting_id, "score": round(a.score, 4),
        "time": ts_to_iso(a.ts_s), "first_seen": ts_to_iso(a.first_ts_s), "last_seen": ts_to_iso(a.last_ts_s),
        "tracks": a.tracks, "status": a.status, "acked_by": a.acked_by,
        "acked_at": ts_to_iso(a.acked_at) if a.acked_at is not None else None,
    }  # fmt: skip
