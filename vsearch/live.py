"""Live ingest: sightings made while a stream is being recorded, not after each segment file closes.

`LiveIngest` is the recording's tap (record.SegmentTap): in the recording thread it registers each segment in the
catalog as it starts, keeps the first frame of each sampling bucket, and hands it to its worker (`run`, a thread of
its own), which detects, tracks, embeds and stores at once: a track's first crops are stored (and matched against
the watchlists, in their commit's transaction: store.py) about `live_crop_ages_s` after the person is first seen,
its other crops when its segment closes, as in a batch ingest. One tracker follows the whole stream, so a person in
view across a segment boundary is one track; the track belongs to the segment it began in (its sightings' and
boxes' positions are counted from that segment's start and may run past its end: clips.py reads on into the
next segment).

With a detection substream (`detect_stream`, vsearch.substream), the recording's frames are not sampled: the
substream's are (`detect_frame`, fed by `follow_detect_stream` in a thread of its own), each paired with the main
stream's frame of the same instant; the worker detects on the substream's frame, maps the boxes to the main
stream's pixels and tracks, crops and stores from the main stream's frame, at its time.

What a crash loses: the frames being processed (a live stream cannot be replayed); what was committed is kept
once. A segment's file takes its name only after the catalog holds its hash, so an ingest of the recordings folder
never stores its people a second time.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vsearch.attributes import AttributeModel
from vsearch.catalog import LIVE_SHA_PREFIX, Checkpoint, TrackBoxRow
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder
from vsearch.errors import VideoError
from vsearch.ingest import IngestReport, _Timed, new_sightings, source_sha256
from vsearch.record import RecordedSegment, RetryPolicy, StopFlag, StreamGap, stream_frames
from vsearch.schedule import DetectionSchedule
from vsearch.store import Store
from vsearch.substream import FramePairer, Paired, check_same_shape, scale_detections
from vsearch.track import Crop, SegmentTracker, TrackSegment
from vsearch.types import Frame
from vsearch.video import sample_bucket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Begin:
    video_id: int
    path: Path
    start_ts_s: float


@dataclass(frozen=True)
class _End:
    video_id: int
    segment: RecordedSegment


@dataclass(frozen=True)
class _Sampled:
    ts_s: float
    image_bgr: NDArray[np.uint8]
    detect_bgr: NDArray[np.uint8] | None = None  # the substream's frame of the same instant, detected instead


class LiveIngest:
    """Detect, track, embed and store a stream's frames as they are recorded (see the module's docstring)."""

    def __init__(
        self, settings: Settings, detector: PersonDetector, embedder: Embedder, store: Store, camera_id: str,
        on_report: Callable[[IngestReport], None] | None = None, on_fail: Callable[[], None] | None = None,
        attributes: AttributeModel | None = None, max_queued: int = 64, detect_stream: bool = False,
    ) -> None:  # fmt: skip
        """`attributes`: the model whose probabilities are stored with each sighting, as ingest does (None: none);
        `detect_stream`: frames to detect come from a substream (`detect_frame`), paired with the recording's."""
        self.settings, self.detector, self.embedder, self.store = settings, detector, embedder, store
        self.attributes = attributes
        self.catalog = store.catalog
        self.camera_id = camera_id
        self.on_report, self.on_fail = on_report, on_fail
        # sampled frames waiting for the worker: the recording waits when it is 32 s (at 2 a second) ahead, so that
        # memory stays bounded (a decoded 1080p frame is 6 MB) and a failing worker stops it soon after
        self._queue: queue.Queue[_Begin | _End | _Sampled | None] = queue.Queue(max_queued)
        self._t0: float | None = None  # the stream's first frame: tracker positions count from it
        self._bucket = -1
        self._video_id, self._fps = 0, 1.0  # the segment being recorded
        self.error: BaseException | None = None
        self.failed_path: Path | None = None
        # the substream: its sampling origin and bucket, the pairing, and why it ended the watch (if it did)
        self.pairer = FramePairer(self._paired, stall_s=settings.stream_timeout_s) if detect_stream else None
        self._detect_t0: float | None = None
        self._detect_bucket = -1
        self.detect_gaps: list[StreamGap] = []
        self.refused: VideoError | None = None

    # -- the recording thread (record.SegmentTap) -----------------------------------------------------------
    def begin(self, path: Path, start_ts_s: float, fps: float, resolution_wh: tuple[int, int]) -> None:
        # a placeholder hash until the file is written (end): nothing else can take it for a file's
        rec = self.catalog.begin_video(
            self.camera_id, str(path), LIVE_SHA_PREFIX + uuid.uuid4().hex, start_ts_s, fps, 0, resolution_wh, self.embedder.name
        )
        self._put(_Begin(rec.id, path, start_ts_s))
        self._video_id, self._fps = rec.id, fps

    def frame(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None:
        if self.pairer is not None:
            self.pairer.main(ts_s, frame_bgr)
            return
        if self._t0 is None:
            self._t0 = ts_s
        bucket = sample_bucket(ts_s - self._t0, self.settings.sample_fps)
        if bucket != self._bucket:
            self._bucket = bucket
            self._put(_Sampled(ts_s, frame_bgr))

    def end(self, written: Path, segment: RecordedSegment) -> None:
        self.catalog.finish_recorded_video(self._video_id, source_sha256(written), round(segment.duration_s * self._fps))
        self._put(_End(self._video_id, segment))

    def _put(self, item: _Begin | _End | _Sampled | None) -> None:
        while self.error is None:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """No more frames: the worker stores what its tracker still follows and returns."""
        if self.pairer is not None:
            self.pairer.close()
        self._put(None)

    # -- the substream's thread -------------------------------------------------------------------------------
    def follow_detect_stream(self, url: str, retry: RetryPolicy, stop: StopFlag) -> None:
        """Feed the substream's frames to `detect_frame` until `stop` is set; a substream lost for good (or never
        reachable), or one whose picture is not the main stream's, sets `refused` and calls `on_fail`."""
        try:
            for item in stream_frames(url, retry, stop):
                if isinstance(item, StreamGap):
                    log.warning("detect stream %s: no detection from %.3f to %.3f (%.1f s)", url, item.from_ts_s,
                                item.to_ts_s, item.duration_s)  # fmt: skip
                    self.detect_gaps.append(item)
                elif not stop.is_set():
                    self.detect_frame(*item)
        except VideoError as e:
            if not stop.is_set():
                self.refused = self.refused or VideoError(f"detect stream {e}")
                if self.on_fail is not None:
                    self.on_fail()

    def detect_frame(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None:
        """A substream frame: the first of each sampling bucket is paired with the main stream's (vsearch.substream)."""
        assert self.pairer is not None
        if self._detect_t0 is None:
            self._detect_t0 = ts_s
        bucket = sample_bucket(ts_s - self._detect_t0, self.settings.sample_fps)
        if bucket != self._detect_bucket:
            self._detect_bucket = bucket
            self.pairer.detect(ts_s, frame_bgr)

    def _paired(self, p: Paired) -> None:
        if self.refused is not None:
            return
        if self._t0 is None:
            detect_wh, main_wh = (p.detect_bgr.shape[1], p.detect_bgr.shape[0]), (p.main_bgr.shape[1], p.main_bgr.shape[0])
            try:
                check_same_shape(detect_wh, main_wh)
            except VideoError as e:
                self.refused = e
                if self.on_fail is not None:
                    self.on_fail()
                return
            log.info("detecting on the %dx%d substream, cropping from the %dx%d main stream", *detect_wh, *main_wh)
            self._t0 = p.ts_s
        self._put(_Sampled(p.ts_s, p.main_bgr, p.detect_bgr))

    # -- the worker -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Process the recording's frames until `close()`; an error is kept in `error` (and `on_fail` called)."""
        try:
            _Worker(self).run(self._queue)
        except BaseException as e:  # handed to the recording side, which stops and raises it
            self.error = e
            if self.on_fail is not None:
                self.on_fail()


class _Worker:
    def __init__(self, live: LiveIngest) -> None:
        self.live, self.s = live, live.settings
        self.videos: list[_Begin] = []
        self.reports: dict[int, IngestReport] = {}
        self.frames: dict[int, int] = {}  # sampled frames per video not yet counted in the catalog
        self.anchor: dict[int, _Begin] = {}  # track id -> the segment it began in
        self.tracker: SegmentTracker | None = None
        self.schedule = DetectionSchedule(live.detector, self.s, self.s.sample_fps)
        self.last_ts: float | None = None
        self.index = 0

    def run(self, items: queue.Queue[_Begin | _End | _Sampled | None]) -> None:
        while (item := items.get()) is not None:
            if isinstance(item, _Begin):
                self.videos.append(item)
                self.live.failed_path = item.path
                self.reports[item.video_id] = IngestReport(str(item.path), self.live.camera_id, "ingested", item.video_id)
            elif isinstance(item, _End):
                self._end(item)
            else:
                self._frame(item)
        if self.tracker is not None:
            self._store(self.tracker.flush(), [])

    def _frame(self, item: _Sampled) -> None:
        live, s = self.live, self.s
        video = self.videos[-1]
        report = self.reports[video.video_id]
        timer = _Timed(report.stage_s)
        assert live._t0 is not None
        f = Frame(live.camera_id, self.index, item.ts_s - live._t0, item.ts_s, item.image_bgr)
        self.index += 1
        detected = item.image_bgr if item.detect_bgr is None else item.detect_bgr
        closed: list[TrackSegment] = []
        with timer("track"):
            if self.tracker is not None and self.last_ts is not None and item.ts_s - self.last_ts > s.track_buffer_s:
                closed += self.tracker.flush()  # the camera dropped out: nobody is followed across the gap
                self.tracker = self._tracker(detected, self.tracker.next_track_id)
            if self.tracker is None:
                self.tracker = self._tracker(detected, 1)
        if item.detect_bgr is None:
            dets = self.schedule.detect([f], timer)[0]
        else:  # found in the substream's frame, placed in the main stream's
            small = Frame(live.camera_id, f.index, f.pts_s, f.ts_s, item.detect_bgr)
            dets = scale_detections(self.schedule.detect([small], timer)[0], small.resolution_wh, f.resolution_wh)
        with timer("track"):
            closed += self.tracker.update(f, dets)[1]
            early = self.tracker.early_crops(s.live_crop_ages_s)
        self.last_ts = item.ts_s
        report.frames_sampled += 1
        self.frames[video.video_id] = self.frames.get(video.video_id, 0) + 1
        if closed or early:
            self._store(closed, early)

    def _tracker(self, detected_bgr: NDArray[np.uint8], first_id: int) -> SegmentTracker:
        """A tracker starting tracks from the score the detector keeps for frames of the detected size."""
        conf = self.live.detector.conf_for((detected_bgr.shape[1], detected_bgr.shape[0]))
        return SegmentTracker(self.s, first_id, sample_fps=self.s.sample_fps, conf=conf)

    def _video_of(self, seg: TrackSegment) -> _Begin:
        """The segment a track began in (the last one that started at or before its first box)."""
        if seg.track_id not in self.anchor:
            assert self.live._t0 is not None
            ts = self.live._t0 + seg.start_pts_s
            self.anchor[seg.track_id] = next((v for v in reversed(self.videos) if v.start_ts_s <= ts + 1e-6), self.videos[0])
        return self.anchor[seg.track_id]

    def _store(self, closed: Sequence[TrackSegment], early: Sequence[tuple[TrackSegment, Crop]]) -> None:
        """Embed and commit new crops and closed segments' boxes, one transaction per segment file they belong to."""
        live = self.live
        assert live._t0 is not None
        t0 = live._t0
        crops = [(seg, c) for seg in closed for c in seg.crops if not any(c is o for o in seg.sent)] + list(early)
        timer = _Timed(self.reports[self.videos[-1].video_id].stage_s)
        with timer("embed"):
            vecs = live.embedder.embed([c.crop_rgb for _, c in crops]) if crops else np.zeros((0, live.embedder.dim), np.float32)
        by_video: dict[int, tuple[_Begin, list[tuple[int, Crop, float]], list[NDArray[np.float32]], list[TrackBoxRow]]] = {}
        for (seg, c), v in zip(crops, vecs):
            video = self._video_of(seg)
            entry = by_video.setdefault(video.video_id, (video, [], [], []))
            entry[1].append((seg.track_id, c, c.ts_s - video.start_ts_s))
            entry[2].append(v)
        for seg in closed:
            video = self._video_of(seg)
            entry = by_video.setdefault(video.video_id, (video, [], [], []))
            entry[3].extend((seg.track_id, t0 + b.pts_s - video.start_ts_s, b.xyxy, b.confidence) for b in seg.boxes)
        for video, found, vs, boxes in by_video.values():
            self._commit(video, found, vs, boxes)

    def _commit(
        self, video: _Begin, found: list[tuple[int, Crop, float]], vecs: list[NDArray[np.float32]], boxes: list[TrackBoxRow],
    ) -> None:  # fmt: skip
        live, s = self.live, self.s
        report = self.reports[video.video_id]
        with _Timed(report.stage_s)("store"):
            thumbs = s.thumbs_dir / f"live-v{video.video_id}"
            thumbs.mkdir(parents=True, exist_ok=True)
            matrix = np.array(vecs, np.float32).reshape(len(vecs), live.embedder.dim)
            model = live.attributes
            probs = None
            if model is not None and found:
                probs = model.for_sightings([c.crop_rgb for _, c, _ in found], matrix, live.embedder.name)
            new = new_sightings(live.camera_id, found, matrix, thumbs, s.data_dir, probs, "" if model is None else model.name)
            until = (self.last_ts or video.start_ts_s) - video.start_ts_s
            cp = Checkpoint(new, boxes, max(0.0, until), self.frames.pop(video.video_id, 0), False, None)
            ids = live.store.commit_chunk(video.video_id, cp)
        report.sightings_added += len(ids)

    def _end(self, item: _End) -> None:
        """A segment file is written: count its frames in the catalog and report it."""
        video = next(v for v in self.videos if v.video_id == item.video_id)
        self._commit(video, [], [], [])
        report = self.reports[item.video_id]
        report.video_s = item.segment.duration_s
        report.wall_s = time.time() - item.segment.start_ts_s  # from the segment's start to its last frame processed
        if self.live.on_report is not None:
            self.live.on_report(report)
        log.debug("segment %s done", item.segment.path)
