"""Record a live stream (RTSP/HTTP URL, camera device) into H.264 segment files with absolute start times.

Each finished segment is an ordinary video file, so everything that works on files (idempotent, resumable ingest;
evidence clips cut from the source) works on streams.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import VideoError
from vsearch.video import write_mp4


@dataclass(frozen=True)
class RecordedSegment:
    """A finished piece of a live stream, written to disk as an ordinary video file."""

    path: Path
    start_ts_s: float
    duration_s: float


def record_stream(
    url: str,
    out_dir: Path,
    segment_s: float = 60.0,
    max_s: float | None = None,
    stop: threading.Event | None = None,
    default_fps: float = 25.0,
) -> Iterator[RecordedSegment]:
    """Record a live stream (RTSP/HTTP URL, device index, or any source OpenCV opens) into H.264 segment files.

    Each finished segment is yielded as a file, so everything that works on files (idempotent, resumable ingest;
    evidence clips cut from the source) works on streams. Absolute time is the wall clock when the stream was
    opened plus the stream's own position; a source that reports no position uses the wall clock.
    """
    src: int | str = int(url) if url.isdigit() else url
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise VideoError(f"{url}: cannot open the stream")
    fps = cap.get(cv2.CAP_PROP_FPS)
    clock = _StreamClock(cap, time.time(), fps if 0 < fps < 1000 else default_fps, max_s, stop)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        while not clock.ended:
            seg_start = clock.now_ts
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seg_start)) + f"{seg_start % 1:.3f}"[1:]
            target = out_dir / f"{stamp}Z.mp4"
            fd, tmp = tempfile.mkstemp(prefix=".rec.", suffix=".mp4", dir=out_dir)
            os.close(fd)
            try:
                n = write_mp4(tmp, clock.frames_until(seg_start + segment_s), clock.fps)
                os.replace(tmp, target)
            except VideoError:
                n = 0  # the stream ended exactly at a segment boundary
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            if n:
                yield RecordedSegment(target, seg_start, n / clock.fps)
    finally:
        cap.release()


class _StreamClock:
    """Reads a live source and keeps its absolute time: wall clock at open + the stream's own position."""

    def __init__(
        self, cap: cv2.VideoCapture, opened_ts: float, fps: float, max_s: float | None, stop: threading.Event | None
    ) -> None:
        self.cap, self.opened_ts, self.fps, self.max_s, self.stop = cap, opened_ts, fps, max_s, stop
        self.position_s = 0.0
        self.ended = False

    @property
    def now_ts(self) -> float:
        return self.opened_ts + self.position_s

    def frames_until(self, end_ts: float) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        i = 0
        while self.now_ts < end_ts:
            if (self.stop is not None and self.stop.is_set()) or (self.max_s is not None and self.position_s >= self.max_s):
                self.ended = True
                return
            ok, img = self.cap.read()
            if not ok:
                self.ended = True
                return
            pos_ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            self.position_s = pos_ms / 1000 if pos_ms > 0 else time.time() - self.opened_ts
            yield i, np.asarray(img, np.uint8)
            i += 1
