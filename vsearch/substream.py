"""A camera's detection substream: detect on its small frames, crop and store from the main stream's frame of the
same instant (`vsearch watch --detect-url`; vsearch.live runs it).

A camera sends its picture twice: the main stream (recorded; clips and crops come from it) and a low-resolution
substream (cheap to decode and detect on). `FramePairer` pairs each sampled substream frame with the main-stream
frame nearest in time. Both streams' times are absolute (record.stream_frames: the wall clock when the
connection opened plus the stream's own presentation times), so different frame rates and a start offset between
the two connections are absorbed. A pair is made only within `tolerance_s` (at least half a main-stream frame
interval): a substream frame with no main-stream frame that close (the main stream stalled, dropped, or lags by
more than the history held) is dropped, logged once per stretch and counted, so no box is ever stored against a
frame of another instant. The two streams are decoded in threads of their own, one running ahead of the other at
times (the main stream, also encoded for the recording, lags on a busy machine): substream frames wait for the
main stream (up to `max_pending` of them; the oldest is dropped beyond), until it has delivered nothing for
`stall_s` (it stalled or dropped out: what waits is dropped); main-stream frames are held for `keep_s`. `scale_detections` maps boxes and keypoints from the substream's pixels to the main
stream's; `check_same_shape` refuses a substream whose picture is not the main stream's scaled (another aspect
ratio: cropped or squeezed, which scaling cannot tell apart).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vsearch.errors import VideoError
from vsearch.types import Detections

log = logging.getLogger(__name__)

ASPECT_TOLERANCE = 0.03  # 3 %: 1920x1080 and 640x360 or 640x352 (rows to a multiple of 16) are one picture; 640x480 is not


@dataclass(frozen=True)
class Paired:
    """A sampled substream frame and the main-stream frame of the same instant."""

    ts_s: float  # the main-stream frame's absolute time: what boxes, sightings and clips are placed at
    main_bgr: NDArray[np.uint8]
    detect_ts_s: float
    detect_bgr: NDArray[np.uint8]


def check_same_shape(detect_wh: tuple[int, int], main_wh: tuple[int, int]) -> None:
    """Raise VideoError unless the substream's picture has the main stream's aspect ratio (within 3 %)."""
    a, b = detect_wh[0] / detect_wh[1], main_wh[0] / main_wh[1]
    if abs(a / b - 1) > ASPECT_TOLERANCE:
        raise VideoError(
            f"the detect stream is {detect_wh[0]}x{detect_wh[1]} (aspect {a:.3f}) but the main stream is"
            f" {main_wh[0]}x{main_wh[1]} (aspect {b:.3f}): boxes cannot be mapped from one to the other; use a"
            " substream with the main stream's aspect ratio"
        )


def scale_detections(dets: Detections, from_wh: tuple[int, int], to_wh: tuple[int, int]) -> Detections:
    """`dets` found in a frame of `from_wh` pixels, in the coordinates of the same picture at `to_wh`."""
    sx, sy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    xyxy = dets.xyxy * np.array([sx, sy, sx, sy], np.float32)
    kpts = dets.keypoints.copy()
    if kpts.size:
        kpts[..., 0] *= sx
        kpts[..., 1] *= sy
    return Detections(xyxy, dets.confidence.copy(), kpts, dets.tracker_id.copy())


class FramePairer:
    """Pairs sampled substream frames with the main stream's frame nearest in time (module docstring).

    `main(ts, frame)` is called with every main-stream frame (the recording thread), `detect(ts, frame)` with each
    sampled substream frame (the substream's thread); `emit(Paired)` is called, from either thread, in the
    substream's order. The main stream's last `keep_s` of frames are held (a substream that lags the main stream
    by more loses its frames); up to `max_pending` substream frames wait for the main stream, until it has
    delivered nothing for `stall_s` seconds of wall time.
    """

    def __init__(
        self, emit: Callable[[Paired], None], tolerance_s: float = 0.1, keep_s: float = 1.0, stall_s: float = 10.0,
        max_pending: int = 120,
    ) -> None:  # fmt: skip
        self.emit = emit
        self.tolerance_s, self.keep_s, self.stall_s, self.max_pending = tolerance_s, keep_s, stall_s, max_pending
        self._main_seen = time.monotonic()  # when the main stream last delivered a frame (or the pairing began)
        self._lock = threading.Lock()
        self._main: deque[tuple[float, NDArray[np.uint8]]] = deque()
        self._pending: deque[tuple[float, NDArray[np.uint8]]] = deque()
        self._interval_s = 0.0  # the main stream's last frame interval
        self._closed = False
        self.paired = 0
        self.dropped = 0
        self._dropping = False  # in a stretch of dropped frames (logged once at its start and once at its end)

    def tolerance(self) -> float:
        """How far apart a pair's frames may be: `tolerance_s`, or half a main-stream frame interval and a bit."""
        return max(self.tolerance_s, 0.55 * self._interval_s)

    def main(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None:
        with self._lock:
            if self._main and 0 < ts_s - self._main[-1][0] < 1.0:  # a frame interval, not a dropout
                self._interval_s = ts_s - self._main[-1][0]
            self._main.append((ts_s, frame_bgr))
            self._main_seen = time.monotonic()
            # a waiting substream frame is resolved once the main stream has passed it: its nearest frame is known
            # (the frames before a dropout still held: one may be the nearest)
            while self._pending and self._pending[0][0] <= ts_s:
                self._resolve(*self._pending.popleft())
            while self._main[0][0] < ts_s - self.keep_s:
                self._main.popleft()

    def detect(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None:
        with self._lock:
            self._pending.append((ts_s, frame_bgr))
            while self._pending and self._main and self._pending[0][0] <= self._main[-1][0]:
                self._resolve(*self._pending.popleft())
            if time.monotonic() - self._main_seen > self.stall_s:
                while self._pending:
                    self._drop(self._pending.popleft()[0], f"the main stream delivered no frame for {self.stall_s:.0f} s")
            while len(self._pending) > self.max_pending:
                self._drop(self._pending.popleft()[0], f"the main stream lags by more than {self.max_pending} frames")

    def close(self) -> None:
        """No more pairs: what waits is dropped (uncounted: the recording ended), later calls do nothing."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._main.clear()

    def _resolve(self, ts_s: float, frame_bgr: NDArray[np.uint8]) -> None:
        if self._closed:
            return
        best = min(self._main, key=lambda m: abs(m[0] - ts_s), default=None)
        if best is None or abs(best[0] - ts_s) > self.tolerance():
            gap = "none held" if best is None else f"nearest {best[0] - ts_s:+.3f} s"
            self._drop(ts_s, f"no main-stream frame within {self.tolerance():.3f} s ({gap})")
            return
        if self._dropping:
            log.warning("detect frames paired with the main stream again (%d dropped so far)", self.dropped)
            self._dropping = False
        self.paired += 1
        self.emit(Paired(best[0], best[1], ts_s, frame_bgr))

    def _drop(self, ts_s: float, why: str) -> None:
        if self._closed:
            return
        self.dropped += 1
        if not self._dropping:
            log.warning("detect frame at %.3f not detected: %s; no sighting is stored from such frames", ts_s, why)
            self._dropping = True
