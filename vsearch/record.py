"""Record a live stream (RTSP/HTTP URL, camera device) into H.264 segment files with absolute start times.

A frame's absolute time is the camera's own when the stream carries it (RTSP: the capture time its RTCP sender
reports give, within CAMERA_CLOCK_TRUST_S of this machine's clock), so that two streams of one camera (a main
stream and its substream, vsearch.substream) place a picture at the same instant however far apart they were
connected; otherwise the wall clock when the connection opened plus the stream's own position since its first
frame.

Each finished segment is an ordinary video file, so everything that works on files (idempotent, resumable ingest;
evidence clips cut from the source) works on streams. A network camera that drops out is reconnected with
exponential backoff up to a retry budget: the segment in progress is closed at the last frame received, the
missing stretch is yielded as a `StreamGap` between the segments, and a camera that does not come back within
the budget (or never answers) ends the recording with a VideoError.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import VideoError
from vsearch.video import write_mp4

log = logging.getLogger(__name__)

CAMERA_CLOCK_TRUST_S = 60.0  # a camera clock further off than this from ours is not used (ours places its frames)


class StopFlag(Protocol):
    """What recording needs of a stop signal: a threading.Event, or anything with its `is_set` and `wait`."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class SegmentTap(Protocol):
    """Sees a recording as it is made (vsearch.live): each segment's start, every frame as it is decoded, and each
    finished file before it takes its name (so the catalog can know the file before anyone can see it)."""

    def begin(self, path: Path, start_ts_s: float, fps: float, resolution_wh: tuple[int, int]) -> None: ...
    def frame(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None: ...
    def end(self, written: Path, segment: RecordedSegment) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a dropped or unreachable network stream is retried: `retries` reconnects after `backoff_s`, doubling
    up to `max_backoff_s`; `timeout_s` without data counts as a dropout."""

    retries: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class StreamGap:
    """A stretch the camera did not deliver: from its last frame before a dropout to its first after."""

    from_ts_s: float
    to_ts_s: float

    @property
    def duration_s(self) -> float:
        return self.to_ts_s - self.from_ts_s


@dataclass(frozen=True)
class RecordedSegment:
    """A finished piece of a live stream, written to disk as an ordinary video file."""

    path: Path
    start_ts_s: float
    duration_s: float


@dataclass(frozen=True)
class _Lost:
    """The source is gone for good (retry budget spent, or never reachable)."""

    error: str


def record_stream(
    url: str,
    out_dir: Path,
    segment_s: float = 60.0,
    max_s: float | None = None,
    stop: StopFlag | None = None,
    retry: RetryPolicy | None = None,
    default_fps: float = 25.0,
    tap: SegmentTap | None = None,
) -> Iterator[RecordedSegment | StreamGap]:
    """Record a live stream (RTSP/HTTP URL, /dev/video device or index, or a file played as a stream) into H.264
    segment files of `segment_s` seconds, yielding each as it is finished, and each dropout (StreamGap) as the
    stream comes back.

    Absolute time is the wall clock when a connection opened plus the stream's own position since then. A file is
    read as fast as it decodes and ends the recording at its end; a network source that ends or stalls is
    reconnected (see RetryPolicy). Raises VideoError, after yielding every segment recorded, when the source
    cannot be (re)connected within the retry budget. A `tap` sees the recording as it is made (SegmentTap).
    """
    source = _Source(url, retry or RetryPolicy(), stop, default_fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = source.items()
    first_ts: float | None = None
    nxt = next(items, None)
    while nxt is not None:
        if isinstance(nxt, _Lost):
            raise VideoError(nxt.error)
        if isinstance(nxt, StreamGap):
            yield nxt
            nxt = next(items, None)
            continue
        seg_start = nxt[0]
        first_ts = seg_start if first_ts is None else first_ts
        if max_s is not None and seg_start - first_ts >= max_s:
            return

        end_ts = seg_start + segment_s if max_s is None else min(seg_start + segment_s, first_ts + max_s)

        def frames(end_ts: float = end_ts) -> Iterator[tuple[int, NDArray[np.uint8]]]:
            """This segment's frames: until its end time or a dropout."""
            nonlocal nxt
            i = 0
            while isinstance(nxt, tuple) and nxt[0] < end_ts:
                if tap is not None:
                    tap.frame(*nxt)
                yield i, nxt[1]
                i += 1
                nxt = next(items, None)

        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seg_start)) + f"{seg_start % 1:.3f}"[1:]
        target = out_dir / f"{stamp}Z.mp4"
        fd, tmp = tempfile.mkstemp(prefix=".rec.", suffix=".mp4", dir=out_dir)
        os.close(fd)
        if tap is not None:
            tap.begin(target, seg_start, source.fps, (nxt[1].shape[1], nxt[1].shape[0]))
        try:
            # the start time goes into the file: two segments with the same pictures (a still scene, a replayed
            # feed) must not hash alike, or the second would be taken as already ingested
            n = write_mp4(tmp, frames(), source.fps, metadata={"comment": f"vsearch segment from {seg_start:.3f}"})
            done = RecordedSegment(target, seg_start, n / source.fps)
            if tap is not None:
                tap.end(Path(tmp), done)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        yield done


def stream_frames(
    url: str, retry: RetryPolicy | None = None, stop: StopFlag | None = None, default_fps: float = 25.0
) -> Iterator[tuple[float, NDArray[np.uint8]] | StreamGap]:
    """A live source's decoded frames as (absolute ts, BGR frame), reconnected as `record_stream` does, without
    recording them (a camera's detection substream: vsearch.substream), and a StreamGap after each dropout.
    Raises VideoError when the source cannot be (re)connected within the retry budget."""
    for item in _Source(url, retry or RetryPolicy(), stop, default_fps).items():
        if isinstance(item, _Lost):
            raise VideoError(item.error)
        yield item


class _Source:
    """Decoded frames of one source with their absolute times, reconnecting a network source that drops."""

    def __init__(self, url: str, retry: RetryPolicy, stop: StopFlag | None, default_fps: float) -> None:
        self.url, self.retry, self.stop, self.fps = url, retry, stop, default_fps
        self.network = "://" in url and not url.startswith("file://")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _open(self):  # type: ignore[no-untyped-def]
        import av

        if self.url.isdigit() or self.url.startswith("/dev/video"):
            device = f"/dev/video{self.url}" if self.url.isdigit() else self.url
            return av.open(device, format="v4l2", timeout=self.retry.timeout_s)
        options = {"rtsp_transport": "tcp"} if self.url.startswith("rtsp") else {}
        return av.open(self.url, options=options, timeout=(self.retry.timeout_s, self.retry.timeout_s))

    def _camera_clock(self, container, opened_ts: float) -> float | None:  # type: ignore[no-untyped-def]
        """The camera's time of the stream's position 0 (FFmpeg's start_time_realtime, from RTSP's RTCP sender
        reports), or None when the stream has none or the camera's clock is off by more than CAMERA_CLOCK_TRUST_S."""
        rt = getattr(container, "start_time_realtime", None)
        if not rt:
            return None
        camera_s = float(rt) / 1e6
        if abs(camera_s - opened_ts) > CAMERA_CLOCK_TRUST_S:
            log.warning("%s: the camera's clock is %.0f s off this machine's; its frames are placed by this machine's",
                        self.url, camera_s - opened_ts)  # fmt: skip
            return None
        return camera_s

    def items(self) -> Iterator[tuple[float, NDArray[np.uint8]] | StreamGap | _Lost]:
        """(absolute ts, BGR frame) in order; a StreamGap after a dropout; a _Lost as the last item if the source
        is gone for good."""
        import av

        attempt, last_ts, last_error = 0, None, ""
        while not self._stopped():
            opened_ts = time.time()
            try:
                container = self._open()
            except (av.FFmpegError, OSError) as e:
                if not self.network:
                    yield _Lost(f"{self.url}: cannot open the stream ({e})")
                    return
                last_error = str(e)
            else:
                got = 0
                try:
                    stream = container.streams.video[0]
                    rate = stream.average_rate or stream.guessed_rate
                    self.fps = float(rate) if rate and 0 < float(rate) < 1000 else self.fps
                    t0: float | None = None
                    camera_s = self._camera_clock(container, opened_ts)
                    for frame in container.decode(stream):
                        pos = frame.time if frame.time is not None else None
                        if camera_s is not None:  # the camera's capture time of this picture
                            ts = camera_s + (pos if pos is not None else got / self.fps)
                        else:
                            if t0 is None:
                                t0 = pos if pos is not None else 0.0
                            ts = opened_ts + (pos - t0 if pos is not None else got / self.fps)
                        if last_ts is not None and got == 0 and ts - last_ts > 1.5 / self.fps:
                            log.warning("%s: stream back after %.1f s without frames", self.url, ts - last_ts)
                            yield StreamGap(last_ts, ts)
                        got += 1
                        last_ts = ts
                        yield ts, frame.to_ndarray(format="bgr24")
                        if self._stopped():
                            return
                    last_error = "the stream ended"
                except (av.FFmpegError, OSError) as e:
                    last_error = str(e)
                finally:
                    container.close()
                if not self.network:
                    if got == 0:
                        yield _Lost(f"{self.url}: cannot open the stream (no frame could be decoded)")
                    return  # a file (or device) that ends has ended
                if got:
                    attempt = 0  # it was working: a fresh budget for this dropout
                    log.warning("%s: stream lost (%s), reconnecting", self.url, last_error)
            if attempt >= self.retry.retries:
                yield _Lost(
                    f"{self.url}: cannot {'reconnect to' if last_ts is not None else 'connect to'} the stream after"
                    f" {attempt + 1} attempts: {last_error}"
                )
                return
            delay = min(self.retry.backoff_s * 2**attempt, self.retry.max_backoff_s)
            attempt += 1
            if self.stop is not None:
                self.stop.wait(delay)
            else:
                time.sleep(delay)
