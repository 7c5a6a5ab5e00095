"""The ingest pipeline: video -> sampled frames -> detections -> tracks -> best crops -> embeddings -> catalog + index.

Resumable: every `checkpoint_every_s` of video, the open track segments are closed, their crops embedded, and
the sightings, track boxes and the video's progress are committed in one catalog transaction; the index is then
updated and saved atomically. A run that dies is re-run with the same command: it skips finished files (by
content hash) and resumes an unfinished one at its last checkpoint, so nothing is lost or stored twice.
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

from vsearch.catalog import Catalog, Checkpoint, NewSighting
from vsearch.colors import crop_keypoints, name_colors
from vsearch.config import Settings
from vsearch.detect import MotionRegions, PersonDetector, StaticSceneGate, small_gray
from vsearch.embed import Embedder
from vsearch.errors import InputError, LeaseLostError, StorageError, VideoError
from vsearch.store import Store
from vsearch.track import SegmentTracker, TrackerState, TrackSegment
from vsearch.types import Detections, Frame
from vsearch.video import is_video_source, prefetch, probe, sample_bucket, sample_frames

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


def plan_ingest(
    paths: Sequence[Path], camera_id: str | None, start_ts_s: float | None, frame_interval_s: float | None = None
) -> list[IngestItem]:
    """Expand files, frame folders and camera folders (DIR/<camera>/<video files>) into ingest items.

    Start times: with `start_ts_s`, the files of one camera are taken as consecutive recordings in name order
    (each starts where the previous ended). Without it, a file is taken to end at its modification time, as a
    recorder leaves it. `frame_interval_s` marks frame folders as stills taken that many seconds apart.
    """
    groups: dict[str, list[Path]] = {}
    for p in (Path(p) for p in paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if is_video_source(p):
            groups.setdefault(camera_id or p.parent.name or "cam", []).append(p)
            continue
        if not p.is_dir():
            raise InputError(f"{p}: not a video file ({p.suffix or 'no extension'}) nor a folder")
        # a folder of cameras, or a camera folder of videos
        found = False
        for child in sorted(p.iterdir()):
            if is_video_source(child):
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

    def __init__(self, settings: Settings, detector: PersonDetector, embedder: Embedder, store: Store) -> None:
        self.settings = settings
        self.detector = detector
        self.embedder = embedder
        self.store = store
        self.catalog = store.catalog

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
        conf = self.detector.conf_for(info.resolution_wh)  # SD footage is tracked from a lower score
        track_settings = s.model_copy(update={"sample_fps": sample_fps, "detector_conf": conf})
        next_track_id = self.catalog.max_track_id(rec.id) + 1
        tracker = SegmentTracker(track_settings, next_track_id, TrackerState.from_json(rec.resume_state))
        thumbs_dir = s.thumbs_dir / sha[:16]
        thumbs_dir.mkdir(parents=True, exist_ok=True)

        gate = StaticSceneGate() if s.skip_static_frames else None
        regions = (
            MotionRegions(self.detector.imgsz_for, s.detector_full_every,
                          reach=min(1.0, MotionRegions.WALK_HEIGHTS_PER_S / sample_fps))  # fmt: skip
            if s.detector_regions and s.detector_backend == "openvino"
            else None
        )
        closed: list[TrackSegment] = []
        frames_in_chunk = 0
        chunk_start = from_pts
        last_pts = from_pts
        step_s = 1.0 / sample_fps

        def commit(done: bool) -> None:
            nonlocal closed, frames_in_chunk, chunk_start
            with timer("track"):
                closed.extend(tracker.flush())
            crops = [(seg, c) for seg in closed for c in seg.crops]
            boxes = [(seg.track_id, b.pts_s, b.xyxy, b.confidence) for seg in closed for b in seg.boxes]
            with timer("embed"):
                vecs = self.embedder.embed([c.crop_rgb for _, c in crops])
            new = []
            with timer("store"):
                for (seg, c), v in zip(crops, vecs):
                    thumb = thumbs_dir / f"t{seg.track_id}_{round(c.pts_s * 1000):09d}.jpg"
                    if not cv2.imwrite(str(thumb), c.crop_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92]):
                        # OpenCV reports a failed write (a full disk) only by returning False
                        raise StorageError(f"{thumb}: cannot write the thumbnail (no space left?); nothing was stored")
                    upper, lower = name_colors(c.crop_rgb, crop_keypoints(c.keypoints, c.xyxy))
                    new.append(
                        NewSighting(camera_id, seg.track_id, c.ts_s, c.pts_s, c.xyxy, c.confidence, c.quality,
                                    str(thumb.relative_to(s.data_dir)), v, upper, lower)
                    )  # fmt: skip
            # the next resume starts at the first sampling bucket after the last processed frame
            until = info.duration_s + step_s if done else (sample_bucket(last_pts, sample_fps) + 1) * step_s
            with timer("store"):
                cp = Checkpoint(new, boxes, until, frames_in_chunk, done, tracker.state().to_json())
                ids = self.store.commit_chunk(rec.id, cp, lease.owner)
            report.sightings_added += len(ids)
            closed, frames_in_chunk, chunk_start = [], 0, last_pts
            if gate is not None:
                gate.reset()  # a resumed run starts with a fresh gate: so does this one, to stay identical
            if regions is not None:
                regions.reset()

        frames = prefetch(sample_frames(info, camera_id, start_ts_s, sample_fps, from_pts_s=from_pts))
        for batch in _batches(frames, s.detector_batch, timer):
            with timer("motion"):
                # one thumbnail per frame serves both the static-scene gate and the region planner
                smalls = [small_gray(f.image_bgr) for f in batch] if gate or regions else []
            if regions is None:
                with timer("motion"):
                    run = gate.needs_detection([f.image_bgr for f in batch], smalls) if gate else [True] * len(batch)
                with timer("detect"):
                    found = iter(self.detector.detect([f.image_bgr for f, r in zip(batch, run) if r]))
                    dets = [next(found) if r else gate.reused() for r in run] if gate else list(found)
                if gate and run[-1]:
                    gate.observe(batch[-1].image_bgr, dets[-1], smalls[-1])
            else:
                # frame by frame: a frame unchanged since the last detected one keeps its persons; each other
                # frame's region is planned from the persons found in the frame just before (half a second ago, not
                # a batch ago: a person crossing a near camera stays inside a small crop); in a crowd, where every
                # frame is detected whole, the rest of the batch goes with it (one frame is prepared while another
                # is in inference)
                by_frame: dict[int, Detections] = {}
                pending = list(range(len(batch)))
                while pending:
                    with timer("motion"):
                        group = [pending.pop(0)]
                        if gate is not None and gate.unchanged(smalls[group[0]]):
                            by_frame[group[0]] = gate.reused()
                            continue
                        plans = [regions.plan(batch[group[0]].image_bgr, smalls[group[0]])]
                        while plans[0] is None and regions.crowded and pending:
                            group.append(pending.pop(0))
                            plans.append(regions.plan(batch[group[-1]].image_bgr, smalls[group[-1]]))
                    with timer("detect"):
                        for k, d in zip(group, self.detector.detect([batch[k].image_bgr for k in group], regions=plans)):
                            regions.observe(d)
                            by_frame[k] = d
                    if gate is not None:
                        gate.observe(batch[group[-1]].image_bgr, by_frame[group[-1]], smalls[group[-1]])
                dets = [by_frame[k] for k in range(len(batch))]
            with timer("track"):
                for f, d in zip(batch, dets):
                    closed.extend(tracker.update(f, d)[1])
                    if stills:  # seconds between stills: each one's people are segments of their own
                        segs = tracker.flush()
                        closed.extend(segs)
                        next_track_id = max((g.track_id + 1 for g in segs), default=next_track_id)
                        tracker = SegmentTracker(track_settings, next_track_id)
            frames_in_chunk += len(batch)
            report.frames_sampled += len(batch)
            last_pts = batch[-1].pts_s
            if progress is not None:
                progress(last_pts, info.duration_s)
            lease.renew()
            # checkpoint when nobody is being tracked, so that a resumed run tracks exactly as this one goes on;
            # a scene that never empties is checkpointed anyway after checkpoint_max_s (tracks in view then split)
            since = last_pts - chunk_start
            if since >= s.checkpoint_every_s and (tracker.idle or since >= s.checkpoint_max_s):
                commit(done=False)
        commit(done=True)
        report.frames_skipped = gate.skipped if gate else 0
        report.video_s = info.duration_s - from_pts
        if progress is not None:
            progress(info.duration_s, info.duration_s)


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
