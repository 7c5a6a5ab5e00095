"""Retention with legal hold: footage and everything derived from it expires after the configured days, except
what an open case holds. One entry point, `run_retention`; `vsearch retention run`, the API and the schedule of
`vsearch serve` / `vsearch watch` call it through the service.

Per camera (its own `retention_days`, else settings.retention_days; neither: kept), older than the cutoff:
recordings (video rows, and their files when they are in the data dir: `recordings/`, `uploads/`), sightings with
their embeddings, crops, marks and staged vectors, track boxes; then rendered clips and frames (`clips/`) of what
is gone or expired, and query images (`queries/`, by the default limit) no open case cites. Held: every span an
open case's items cover (padded as its clip is) with all its rows, the video it is cut from, and the cited query
images, until the case is closed.

Crash safety: each batch is one catalog transaction holding the deletions (logged, so the index follows through
the store), the journal lines of the files they made stale, and the batch's audit entry with its counts. Files are
removed after the commit and their journal lines then; a run drains what a killed run left in the journal first,
so a crash at any point leaves no row without its file's removal pending and no file without a row or a journal
line to remove it. The index is saved once at the end (after a crash it replays the catalog's log).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vsearch.audit import AuditLog
from vsearch.catalog import Catalog
from vsearch.clips import parse_clip_id
from vsearch.config import Settings
from vsearch.errors import VSearchError
from vsearch.evidence import queries_dir
from vsearch.faults import kill_point
from vsearch.store import Store
from vsearch.types import ts_to_iso

BATCH = 2000  # sightings per transaction
LOG_KEEP_DAYS = 7  # the change log is kept this long past the longest limit (for followers that were away)
DAY_S = 86_400.0


@dataclass
class CameraExpiry:
    """What expired (or would, in a dry run) on one camera."""

    camera_id: str
    days: float
    cutoff: str  # ISO 8601 UTC
    videos: int = 0
    sightings: int = 0
    track_boxes: int = 0
    files: int = 0


@dataclass
class RetentionReport:
    """A run's counts: per camera, then rendered clips/frames and query images; files kept because they are not
    in the data dir (the source footage of `vsearch ingest`, which is not ours to delete) are named."""

    dry_run: bool
    cameras: list[CameraExpiry] = field(default_factory=list)
    clips: int = 0
    queries: int = 0
    left_in_place: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)  # UTC days dropped whole (PostgreSQL's day partitions)
    log_days: int = 0  # days of the change log dropped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retention_limits(settings: Settings, catalog: Catalog) -> dict[str, float]:
    """Each camera's limit in days: its own, else the default; cameras with neither are left out (kept)."""
    limits = {}
    for camera, own in catalog.camera_retention().items():
        days = own if own is not None else settings.retention_days
        if days is not None:
            limits[camera] = float(days)
    return limits


def run_retention(settings: Settings, store: Store, audit: AuditLog, by: str, dry_run: bool = False,
                  now_s: float | None = None) -> RetentionReport:  # fmt: skip
    """Delete what has expired (module docstring); `dry_run`: count it and change nothing. Audited: one entry per
    deletion batch with its counts, and one for the run."""
    catalog = store.catalog
    now_s = time.time() if now_s is None else now_s
    pad_s = settings.clip_pad_s
    report = RetentionReport(dry_run)
    audit.ready()
    if not dry_run:
        _drain(settings, catalog)  # what a killed run committed but did not remove yet
    limits = retention_limits(settings, catalog)
    if not limits and settings.retention_days is None:
        return report  # nothing is set to expire: nothing to do or to audit
    cutoffs = {camera: now_s - days * DAY_S for camera, days in limits.items()}
    expiries = {camera: CameraExpiry(camera, days, ts_to_iso(cutoffs[camera])) for camera, days in limits.items()}
    report.cameras = list(expiries.values())
    # first the days that go whole (their partitions dropped: no row deleted one by one), then the rest by rows
    whole_days = catalog.droppable_days(cutoffs, pad_s)
    report.days = [ts_to_iso(d * DAY_S)[:10] for d in whole_days]
    if not dry_run:
        for day, name in zip(whole_days, report.days):
            record = {"action": "retention.delete", "key_name": by, "day": name, "partitions": True}
            _Batch(settings, store, audit, record).run(partial(_drop_day, store, day, expiries))
        if limits:
            report.log_days = catalog.drop_log_days(now_s - (max(limits.values()) + LOG_KEEP_DAYS) * DAY_S)
    for camera in limits:
        cutoff_s = cutoffs[camera]
        exp = expiries[camera]
        if dry_run:
            exp.videos, exp.sightings, exp.track_boxes = catalog.count_expired(camera, cutoff_s, pad_s)
            continue
        base = {"action": "retention.delete", "key_name": by, "camera_id": camera, "cutoff": exp.cutoff}
        batch = _Batch(settings, store, audit, base, exp)
        while videos := catalog.expired_videos(camera, cutoff_s):
            for video_id, path in videos:
                batch.run(partial(_expire_video, settings, store, video_id, path, report))
        while rows := catalog.expired_sightings(camera, cutoff_s, pad_s, BATCH):
            batch.run(partial(_expire_sightings, store, rows))
        batch.run(partial(_expire_boxes, catalog, camera, cutoff_s, pad_s))
    stale = _stale_clips(settings, catalog, limits, now_s) + _stale_queries(settings, catalog, now_s)
    report.clips = sum(1 for p in stale if p.startswith("clips/"))
    report.queries = len(stale) - report.clips
    if stale and not dry_run:
        with audit.change({"action": "retention.delete", "key_name": by, "clips": report.clips,
                           "queries": report.queries, "files": len(stale)}):  # fmt: skip
            catalog.journal_files(stale)
        _drain(settings, catalog)
    if not dry_run:
        store.save_if_followed()
    audit.append({"action": "retention.run", "key_name": by, "dry_run": dry_run,
                  "cameras": [asdict(c) for c in report.cameras], "clips": report.clips, "queries": report.queries})  # fmt: skip
    return report


class _Batch:
    """One deletion batch: its rows, journal lines and audit entry in one transaction; then the index follows and
    the files go."""

    def __init__(self, settings: Settings, store: Store, audit: AuditLog, record: dict[str, Any],
                 exp: CameraExpiry | None = None) -> None:  # fmt: skip
        self.settings, self.store, self.audit, self.record, self.exp = settings, store, audit, record, exp

    def run(self, body: Callable[[dict[str, Any]], None]) -> None:
        record = {**self.record, "videos": 0, "sightings": 0, "track_boxes": 0, "files": 0}
        with self.audit.change(record) as entry:
            body(entry)
            if not any(entry[k] for k in ("videos", "sightings", "track_boxes", "files")):
                entry.drop()
            kill_point("retention.batch")  # rows, journal and entry written, not committed
        if self.exp is not None:  # a day's batch counts its cameras itself (_drop_day)
            for k in ("videos", "sightings", "track_boxes", "files"):
                setattr(self.exp, k, getattr(self.exp, k) + entry[k])
        kill_point("retention.commit")  # committed; the index has not followed, no file is removed yet
        self.store.follow_removals()
        _drain(self.settings, self.store.catalog)


def _expire_video(settings: Settings, store: Store, video_id: int, path: str, report: RetentionReport,
                  entry: dict[str, Any]) -> None:  # fmt: skip
    sightings, boxes, crops = store.expire_video(video_id)
    files = list(crops)
    if (mine := _inside(settings, Path(path))) is not None:
        files.append(mine)
    else:
        report.left_in_place.append(path)
    store.catalog.journal_files(files)
    entry.update(videos=1, video_id=video_id, sightings=sightings, track_boxes=boxes, files=len(files))


def _drop_day(store: Store, day: int, expiries: dict[str, CameraExpiry], entry: dict[str, Any]) -> None:
    sightings, boxes, files = store.expire_day(day)
    entry.update(sightings=sum(sightings.values()), track_boxes=sum(boxes.values()), files=sum(files.values()),
                 cameras=sorted(set(sightings) | set(boxes)))  # fmt: skip
    for counts, key in ((sightings, "sightings"), (boxes, "track_boxes"), (files, "files")):
        for camera, n in counts.items():
            setattr(expiries[camera], key, getattr(expiries[camera], key) + n)


def _expire_sightings(store: Store, rows: list[tuple[int, str]], entry: dict[str, Any]) -> None:
    n = store.expire_sightings([i for i, _ in rows])
    store.catalog.journal_files([t for _, t in rows])
    entry.update(sightings=n, files=len(rows))


def _expire_boxes(catalog: Catalog, camera: str, cutoff_s: float, pad_s: float, entry: dict[str, Any]) -> None:
    entry.update(track_boxes=catalog.delete_expired_boxes(camera, cutoff_s, pad_s))


def _inside(settings: Settings, path: Path) -> str | None:
    """`path` relative to the data dir, or None if it lies outside (not ours to delete)."""
    try:
        return str(path.resolve().relative_to(settings.data_dir.resolve()))
    except ValueError:
        return None


def _stale_clips(settings: Settings, catalog: Catalog, limits: dict[str, float], now_s: float) -> list[str]:
    """Rendered clips and frames (clips/) of videos or sightings that are gone, or of spans that expired and no
    open case holds."""
    folder = settings.clips_dir
    if not folder.is_dir():
        return []
    clips: dict[str, tuple[int, float, float]] = {}
    frames: dict[str, int] = {}
    for f in folder.iterdir():
        if f.suffix == ".mp4":
            try:
                video_id, _, p0, p1 = parse_clip_id(f.stem)
            except VSearchError:
                continue
            clips[f.name] = (video_id, p0, p1)
        elif f.name.startswith("sighting-") and f.suffix == ".jpg" and f.stem[9:].isdigit():
            frames[f.name] = int(f.stem[9:])
    videos = catalog.video_ends(sorted({v for v, _, _ in clips.values()}))
    held = catalog.held_spans()
    pad = settings.clip_pad_s
    stale = []
    for name, (video_id, p0, p1) in clips.items():
        if video_id not in videos:
            stale.append(name)
            continue
        camera, start_ts = videos[video_id]
        days = limits.get(camera)
        expired = days is not None and start_ts + p1 < now_s - days * DAY_S
        if expired and not any(p0 <= h1 + pad and h0 - pad <= p1 for h0, h1 in held.get(video_id, ())):
            stale.append(name)
    present = set(catalog.sightings(frames.values()))
    stale += [name for name, sid in frames.items() if sid not in present]
    return [f"clips/{n}" for n in sorted(stale)]


def _stale_queries(settings: Settings, catalog: Catalog, now_s: float) -> list[str]:
    """Query images older than the default limit (by file time) that no open case cites."""
    folder = queries_dir(settings)
    if settings.retention_days is None or not folder.is_dir():
        return []
    cutoff_s = now_s - settings.retention_days * DAY_S
    held = catalog.held_query_sha256s()
    return [f"queries/{f.name}" for f in sorted(folder.iterdir())
            if f.is_file() and not f.name.endswith(".tmp") and f.stem not in held and f.stat().st_mtime < cutoff_s]  # fmt: skip


def _drain(settings: Settings, catalog: Catalog) -> None:
    """Remove the journal's files, then their lines (a file already gone is fine: a killed run removed it)."""
    root = settings.data_dir
    while paths := catalog.journaled_files():
        for p in paths:
            (root / p).unlink(missing_ok=True)
            kill_point("retention.unlink")
        catalog.unjournal_files(paths)


class RetentionSchedule:
    """`vsearch serve` / `vsearch watch`: a retention run every settings.retention_interval_s on a thread (the
    first one at start), while retention is configured; a failed run is logged and retried at the next tick."""

    def __init__(self, run: Callable[[], object], interval_s: float) -> None:
        self._run, self.interval_s = run, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vsearch-retention", daemon=True)

    def start(self) -> RetentionSchedule:
        if self.interval_s > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        import logging

        log = logging.getLogger("vsearch.retention")
        while not self._stop.is_set():
            try:
                self._run()
            except Exception as e:  # noqa: BLE001 - a schedule keeps going; the next tick retries
                log.error("retention run failed: %s", e)
            self._stop.wait(self.interval_s)
