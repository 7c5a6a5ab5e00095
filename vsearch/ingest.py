"""The ingest pipeline: video -> sampled frames -> detections -> tracks -> best crops -> embeddings -> catalog + index.

One file reads as probe -> schedule (schedule.py: when and where to detect) -> track -> checkpoint -> store.
Resumable: every `checkpoint_every_s` of video (when nobody is tracked), the open track segments are closed,
their crops embedded, and the sightings, track boxes and the video's progress are committed in one catalog
transaction; the index then follows the catalog, and is saved at the end of each file (store.py: a crash
replays the catalog's log from the saved index). A run that dies is re-run with the same command: it skips
finished files (by content hash) and resumes an unfinished one at its last checkpoint, so nothing is lost or
stored twice.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.attributes import AttributeModel
from vsearch.catalog import Catalog, Checkpoint, NewSighting, VideoRecord
from vsearch.colors import crop_keypoints, name_colors
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder
from vsearch.errors import InputError, LeaseLostError, StorageError, VideoError
from vsearch.images import image_size
from vsearch.schedule import DetectionSchedule
from vsearch.store import Store
from vsearch.track import Crop, SegmentTracker, TrackerState, TrackSegment
from vsearch.types import Detections, Frame
from vsearch.video import (
    IMAGE_EXTS,
    VideoInfo,
    is_video_source,
    prefetch,
    probe,
    sample_bucket,
    sample_frames,
)

ProgressFn = Callable[[float, float], None]  # (video seconds done, video seconds total)


@dataclass
class IngestReport:
    """What one file's ingest did, with per-stage wall times."""

    path: str
    camera_id: str
    status: str  # "ingested", "resumed", "already ingested", "failed" or "busy" (another process is ingesting it)
    video_id: int | None = None
    frames_sampled: int = 0
    frames_skipped: int = 0  # sampled frames unchanged since the last detected one: its detections, no detector
    sightings_added: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    error: str | None = None

    @property
    def speed(self) -> float:
        """Seconds of video processed per second of wall time."""
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class IngestItem:
    """One source to ingest, with its camera and absolute start time."""

    path: Path
    camera_id: str
    start_ts_s: float
    sample_fps: float | None = None  # None: the settings' rate
    # a frame folder of stills taken this many seconds apart (not video): every still is ingested, and past the
    # tracker's buffer nobody is followed from one still to the next (None: the folder's frame rate, video)
    frame_interval_s: float | None = None


def _not_camera_frames(folder: Path) -> str | None:
    """Why a folder of stills found by scanning is not a camera's frames (None: it is): a camera's frames are at
    least two images of one size; query crops and photos are not."""
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    sizes = set()
    for f in files:
        with open(f, "rb") as fh:
            head = fh.read(1 << 16)  # the size is in the header (a JPEG's may follow a large EXIF block)
        try:
            try:
                sizes.add(image_size(head)[1:])
            except InputError:
                sizes.add(image_size(f.read_bytes())[1:])
        except InputError:
            return f"{f.name} is not a readable image"
        if len(sizes) > 1:
            return "its images differ in size (query crops or photos, not a camera's frames)"
    return None if len(files) >= 2 else "a single image (a query or a photo, not a camera's frames)"


def plan_ingest(
    paths: Sequence[Path], camera_id: str | None, start_ts_s: float | None, frame_interval_s: float | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> list[IngestItem]:
    """Expand files, frame folders and camera folders (DIR/<camera>/<video files>) into ingest items.

    A file, or a folder holding only images, given explicitly is ingested as given; other folders are scanned: video files are ingested; a subfolder
    of still images is a camera's frames when it holds at least two images of one size, else (query crops,
    photos) it is skipped; other files (stray stills, notes) are skipped. Each skip is reported to `on_skip`.

    Start times: with `start_ts_s`, the files of one camera are taken as consecutive recordings in name order
    (each starts where the previous ended). Without it, a file is taken to end at its modification time, as a
    recorder leaves it. `frame_interval_s` marks frame folders as stills taken that many seconds apart.
    """
    groups: dict[str, list[Path]] = {}
    for p in (Path(p) for p in paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if is_video_source(p) and not (p.is_dir() and any(c.is_dir() or is_video_source(c) for c in p.iterdir())):
            groups.setdefault(camera_id or p.parent.name or "cam", []).append(p)
            continue
        if not p.is_dir():
            raise InputError(f"{p}: not a video file ({p.suffix or 'no extension'}) nor a folder")
        # a folder of cameras, or a camera folder of videos
        found = False
        skip = on_skip or (lambda path, why: None)
        for child in sorted(p.iterdir()):
            if child.is_file() and not is_video_source(child):
                skip(child, "not a video file")
            elif child.is_dir() and is_video_source(child) and (why := _not_camera_frames(child)):
                skip(child, why)
            elif is_video_source(child):
                groups.setdefault(camera_id or (p.name if child.is_file() else child.name), []).append(child)
                found = True
            elif child.is_dir():
                for grand in sorted(child.iterdir()):
                    if is_video_source(grand):
                        groups.setdefault(camera_id or child.name, []).append(grand)
                        found = True
        if not found:
            raise InputError(f"{p}: holds no video files or frame folders")
    if frame_interval_s is not None and not frame_interval_s > 0:
        raise InputError(f"the interval between stills must be positive seconds, got {frame_interval_s}")
    items = []
    for cam, files in groups.items():
        t = start_ts_s
        for f in sorted(files):
            interval = frame_interval_s if f.is_dir() else None
            try:
                info = probe(f)
                duration = info.frame_count * interval if interval else info.duration_s
            except Exception:
                duration = 0.0  # the ingest itself reports the bad file
            if t is None:
                items.append(IngestItem(f, cam, os.path.getmtime(f) - duration, frame_interval_s=interval))
            else:
                items.append(IngestItem(f, cam, t, frame_interval_s=interval))
                t += duration
    return items


def source_sha256(path: Path) -> str:
    """Content hash of a video file, or of a folder of frames (names and bytes, in order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while b := fh.read(1 << 20):
                h.update(b)
    return h.hexdigest()


class _Timed:
    """Accumulates wall time per stage: `with timer("detect"): ...`."""

    def __init__(self, stage_s: dict[str, float]) -> None:
        self.stage_s = stage_s

    def __call__(self, stage: str) -> _Timed:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stage_s[self._stage] += time.perf_counter() - self._t0


class Ingestor:
    """Runs the pipeline for one file at a time into a store (the catalog, with the index following it)."""

    def __init__(
        self, settings: Settings, detector: PersonDetector, embedder: Embedder, store: Store,
        attributes: AttributeModel | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.detector = detector
        self.embedder = embedder
        self.store = store
        self.catalog = store.catalog
        self.attributes = attributes  # None: sightings are stored without attribute probabilities

    def ingest(
        self,
        path: Path,
        camera_id: str,
        start_ts_s: float,
        progress: ProgressFn | None = None,
        sample_fps: float | None = None,
        frame_interval_s: float | None = None,
    ) -> IngestReport:
        """Ingest one video file or folder of frames (of stills `frame_interval_s` apart, see IngestItem). Bad input
        gives a 'failed' report, never an exception."""
        path = Path(path).resolve()
        report = IngestReport(str(path), camera_id, "ingested")
        t0 = time.perf_counter()
        lease = _Lease(self.catalog, self.settings.ingest_lease_s)
        try:
            self._ingest(
                path, camera_id, start_ts_s, progress, report, sample_fps or self.settings.sample_fps, lease,
                frame_interval_s,
            )  # fmt: skip
        except VideoError as e:
            report.status, report.error = "failed", str(e)
            if report.video_id is not None:
                self.catalog.fail_video(report.video_id, str(e), lease.owner)
        except LeaseLostError as e:
            report.status, report.error = "busy", str(e)
        finally:
            lease.release()  # Ctrl-C or an error: let a re-run take over at once (a killed process's lease expires)
        report.wall_s = time.perf_counter() - t0
        return report

    def _ingest(
        self,
        path: Path,
        camera_id: str,
        start_ts_s: float,
        progress: ProgressFn | None,
        report: IngestReport,
        sample_fps: float,
        lease: _Lease,
        frame_interval_s: float | None = None,
    ) -> None:
        s = self.settings
        timer = _Timed(report.stage_s)
        with timer("probe"):
            info = probe(path)
            sha = source_sha256(path)
        stills = False
        if frame_interval_s is not None and info.kind == "frames":
            info = replace(info, fps=1.0 / frame_interval_s)
            sample_fps = info.fps  # every still
            stills = frame_interval_s > s.track_buffer_s
        rec = self.catalog.begin_video(
            camera_id, str(path), sha, start_ts_s, info.fps, info.frame_count, info.resolution_wh, self.embedder.name
        )
        report.video_id = rec.id
        if rec.status == "done":
            report.status = "already ingested"
            report.frames_sampled = rec.frames_sampled
            return
        lease.claim(rec.id)  # one process ingests a file at a time; others get "busy"
        rec = self.catalog.video(rec.id)  # what the last holder committed before we took over
        if rec.status == "done":
            report.status = "already ingested"
            report.frames_sampled = rec.frames_sampled
            return
        if rec.camera_id != camera_id or abs(rec.start_ts_s - start_ts_s) > 1e-3:
            # resuming keeps the first run's camera and start time: the stored sightings already use them
            camera_id, start_ts_s = rec.camera_id, rec.start_ts_s
            report.camera_id = camera_id
        from_pts = rec.processed_until_s
        if from_pts > 0:
            report.status = "resumed"
        schedule = DetectionSchedule(self.detector, s, sample_fps)
        run = _FileRun(self, rec, info, camera_id, sample_fps, stills, report, lease, timer)
        frames = prefetch(sample_frames(info, camera_id, start_ts_s, sample_fps, from_pts_s=from_pts, decode_threads=s.decode_threads))
        for batch in _batches(frames, s.detector_batch, timer):
            run.track(batch, schedule.detect(batch, timer))
            if progress is not None:
                progress(run.last_pts, info.duration_s)
            lease.renew()
            if run.checkpoint_due():
                run.checkpoint(done=False)
                schedule.reset()  # a resumed run starts with a fresh schedule: so does this one, to stay identical
        run.checkpoint(done=True)
        report.frames_skipped = schedule.skipped
        report.video_s = info.duration_s - from_pts
        if progress is not None:
            progress(info.duration_s, info.duration_s)


class _FileRun:
    """One file's ingest after its probe: tracks its detections and stores its checkpoints (sightings, track
    boxes, progress and the tracker's state, in one catalog commit each)."""

    def __init__(
        self, ingestor: Ingestor, rec: VideoRecord, info: VideoInfo, camera_id: str, sample_fps: float, stills: bool,
        report: IngestReport, lease: _Lease, timer: _Timed,
    ) -> None:  # fmt: skip
        self.ing, self.rec, self.info, self.camera_id = ingestor, rec, info, camera_id
        self.sample_fps, self.stills, self.report, self.lease, self.timer = sample_fps, stills, report, lease, timer
        s = ingestor.settings
        self.conf = ingestor.detector.conf_for(info.resolution_wh)  # SD footage is tracked from a lower score
        self.next_track_id = ingestor.catalog.max_track_id(rec.id) + 1
        self.tracker = self._tracker(TrackerState.from_json(rec.resume_state))
        self.thumbs_dir = s.thumbs_dir / rec.sha256[:16]
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        self.closed: list[TrackSegment] = []
        self.frames_in_chunk = 0
        self.chunk_start = self.last_pts = rec.processed_until_s

    def _tracker(self, state: TrackerState | None = None) -> SegmentTracker:
        return SegmentTracker(self.ing.settings, self.next_track_id, state, sample_fps=self.sample_fps, conf=self.conf)

    def track(self, batch: Sequence[Frame], dets: Sequence[Detections]) -> None:
        """Feed a batch's detections to the tracker; keep the segments that closed."""
        with self.timer("track"):
            for f, d in zip(batch, dets):
                self.closed.extend(self.tracker.update(f, d)[1])
                if self.stills:  # seconds between stills: each one's people are segments of their own
                    segs = self.tracker.flush()
                    self.closed.extend(segs)
                    self.next_track_id = max((g.track_id + 1 for g in segs), default=self.next_track_id)
                    self.tracker = self._tracker()
        self.frames_in_chunk += len(batch)
        self.report.frames_sampled += len(batch)
        self.last_pts = batch[-1].pts_s

    def checkpoint_due(self) -> bool:
        """Checkpoint when nobody is being tracked, so that a resumed run tracks exactly as this one goes on; a
        scene that never empties is checkpointed anyway after checkpoint_max_s (tracks in view then split)."""
        s = self.ing.settings
        since = self.last_pts - self.chunk_start
        return since >= s.checkpoint_every_s and (self.tracker.idle or since >= s.checkpoint_max_s)

    def checkpoint(self, done: bool) -> None:
        """Embed the closed segments' crops, write their thumbnails, and commit them with the file's progress."""
        timer, s = self.timer, self.ing.settings
        with timer("track"):
            self.closed.extend(self.tracker.flush())
        crops = [(seg, c) for seg in self.closed for c in seg.crops]
        boxes = [(seg.track_id, b.pts_s, b.xyxy, b.confidence) for seg in self.closed for b in seg.boxes]
        with timer("embed"):
            vecs = self.ing.embedder.embed([c.crop_rgb for _, c in crops])
        model = self.ing.attributes
        with timer("attributes"):
            probs = None if model is None else model.for_sightings([c.crop_rgb for _, c in crops], vecs, self.ing.embedder.name)
        with timer("store"):
            new = new_sightings(self.camera_id, [(seg.track_id, c, c.pts_s) for seg, c in crops], vecs,
                                self.thumbs_dir, s.data_dir, probs, "" if model is None else model.name)  # fmt: skip
        # the next resume starts at the first sampling bucket after the last processed frame
        step_s = 1.0 / self.sample_fps
        until = self.info.duration_s + step_s if done else (sample_bucket(self.last_pts, self.sample_fps) + 1) * step_s
        with timer("store"):
            cp = Checkpoint(new, boxes, until, self.frames_in_chunk, done, self.tracker.state().to_json())
            ids = self.ing.store.commit_chunk(self.rec.id, cp, self.lease.owner)
        self.report.sightings_added += len(ids)
        self.closed, self.frames_in_chunk, self.chunk_start = [], 0, self.last_pts


def new_sightings(
    camera_id: str, crops: Sequence[tuple[int, Crop, float]], vecs: NDArray[np.float32], thumbs_dir: Path, data_dir: Path,
    probs: NDArray[np.float32] | None = None, attribute_model: str = "",
) -> list[NewSighting]:  # fmt: skip
    """Sightings of (track id, crop, its position in the stored video) with their embeddings (and attribute
    probabilities of `attribute_model`, one row per crop, or None); each crop's thumbnail is written under
    `thumbs_dir` first (StorageError if it cannot be: nothing is stored then)."""
    new = []
    for n, ((track_id, c, pts_s), v) in enumerate(zip(crops, vecs)):
        thumb = thumbs_dir / f"t{track_id}_{round(pts_s * 1000):09d}.jpg"
        if not cv2.imwrite(str(thumb), c.crop_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92]):
            # OpenCV reports a failed write (a full disk) only by returning False
            raise StorageError(f"{thumb}: cannot write the thumbnail (no space left?); nothing was stored")
        upper, lower = name_colors(c.crop_rgb, crop_keypoints(c.keypoints, c.xyxy))
        new.append(
            NewSighting(camera_id, track_id, c.ts_s, pts_s, c.xyxy, c.confidence, c.quality,
                        str(thumb.relative_to(data_dir)), v, upper, lower, None if probs is None else probs[n],
                        attribute_model)
        )  # fmt: skip
    return new


class _Lease:
    """This process's claim on one video's ingest, renewed while it works (catalog.claim_video)."""

    def __init__(self, catalog: Catalog, lease_s: float) -> None:
        self.catalog = catalog
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.video_id: int | None = None
        self._renewed = 0.0

    def claim(self, video_id: int) -> None:
        holder = self.catalog.claim_video(video_id, self.owner, self.lease_s)
        if holder is not None and _dead_here(holder):  # its process is gone: no need to wait for the lease to expire
            holder = self.catalog.claim_video(video_id, self.owner, self.lease_s, take_from=holder)
        if holder is not None:
            raise LeaseLostError(f"being ingested by another process ({holder}); run again later to resume it if it stops")
        self.video_id, self._renewed = video_id, time.monotonic()

    def renew(self) -> None:
        if self.video_id is not None and time.monotonic() - self._renewed > self.lease_s / 4:
            holder = self.catalog.claim_video(self.video_id, self.owner, self.lease_s)
            if holder is not None:
                raise LeaseLostError(f"another process ({holder}) took over this ingest; stopping without storing more")
            self._renewed = time.monotonic()

    def release(self) -> None:
        if self.video_id is not None:
            self.catalog.release_video(self.video_id, self.owner)
            self.video_id = None


def _dead_here(holder: str) -> bool:
    """True when a lease holder ('host:pid:nonce') ran on this host and its process no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _batches(frames: Iterator[Frame], n: int, timer: _Timed) -> Iterator[list[Frame]]:
    """Group frames into lists of n, timing the decode of each frame as the 'decode' stage."""
    while True:
        batch = []
        with timer("decode"):
            for f in frames:
                batch.append(f)
                if len(batch) == n:
                    break
        if not batch:
            return
        yield batch
