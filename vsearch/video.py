"""Video in and out: open a file or a folder of frames, sample frames by time with absolute timestamps, read a
stretch of frames back, and write browser-playable H.264 MP4.

Live streams are recorded into files by record.py, which writes them with `write_mp4`.
"""

from __future__ import annotations

import configparser
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import VideoError
from vsearch.types import Frame

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".ts", ".mpg", ".mpeg"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
DEFAULT_FRAMES_FPS = 10.0  # a folder of frames with no seqinfo.ini beside it


@dataclass(frozen=True)
class VideoInfo:
    """What a source holds, read before any decoding of the whole stream."""

    path: Path
    kind: str  # "file" or "frames"
    fps: float
    frame_count: int
    resolution_wh: tuple[int, int]

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def is_video_source(path: Path) -> bool:
    """A video file by extension, or a folder that directly holds image frames."""
    if path.is_file():
        return path.suffix.lower() in VIDEO_EXTS
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in path.iterdir())


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def _frames_fps(folder: Path) -> float:
    """MOTChallenge folders keep the frame rate in ../seqinfo.ini; other folders get DEFAULT_FRAMES_FPS."""
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if ini.is_file():
            cp = configparser.ConfigParser()
            cp.read(ini)
            if cp.has_option("Sequence", "frameRate"):
                return float(cp.get("Sequence", "frameRate"))
    return DEFAULT_FRAMES_FPS


def probe(path: Path) -> VideoInfo:
    """Read a source's frame rate, length and size, and check that its first and last frames decode.

    Raises VideoError naming the file when it is missing, empty, not a video, or truncated (the container
    promises frames that cannot be decoded).
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise VideoError(f"{path}: folder holds no image frames ({', '.join(sorted(IMAGE_EXTS))})")
        first = cv2.imread(str(files[0]))
        if first is None:
            raise VideoError(f"{files[0]}: cannot decode image frame")
        h, w = first.shape[:2]
        return VideoInfo(path, "frames", _frames_fps(path), len(files), (w, h))
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: not a readable video (no decodable stream)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = cap.read()
        if not ok or first is None:
            raise VideoError(f"{path}: no frame could be decoded")
        if not (0 < fps < 1000):
            raise VideoError(f"{path}: container reports no usable frame rate ({fps})")
        promised, packets = _count_packets(path)
        if promised and packets is not None and packets < promised:
            # a truncated file keeps its header's frame count but its data ends early
            raise VideoError(f"{path}: truncated or corrupt: the header promises {promised} frames, the file holds {packets}")
        h, w = first.shape[:2]
        # the count (hence the duration) is what demuxing saw: a header without a frame count leaves FFmpeg to
        # estimate the duration from the timestamps near the end, wrong by far for a program stream (.mpg) whose
        # clock restarts part-way through (tests/test_probe_counts.py)
        return VideoInfo(path, "file", float(fps), max(packets if packets is not None else count, 1), (w, h))
    finally:
        cap.release()


def _count_packets(path: Path) -> tuple[int, int | None]:
    """(frames the container's header promises, 0 if none; video packets actually in the file, None if it does
    not demux). Demuxed, not decoded: milliseconds per minute of video."""
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            return int(stream.frames or 0), sum(1 for pk in c.demux(stream) if pk.size)
    except (av.FFmpegError, IndexError):
        return 0, None  # OpenCV decoded it; leave the verdict to the decode loop


def sample_bucket(pts_s: float, sample_fps: float) -> int:
    """The 1/sample_fps-second bucket a frame at `pts_s` falls in: the first frame of each bucket is sampled."""
    return int(pts_s / (1.0 / sample_fps) + 1e-6)


def sample_frames(
    info: VideoInfo, camera_id: str, start_ts_s: float, sample_fps: float, from_pts_s: float = 0.0
) -> Iterator[Frame]:
    """Yield frames at about `sample_fps` per second of video, from `from_pts_s` on.

    A frame is kept when it is the first of its 1/sample_fps time bucket, so sampling is the same whether an
    ingest starts at 0 or resumes mid-video. Positions come from the frame index and the container's constant
    frame rate; `ts_s` = `start_ts_s` + position.
    """
    last_bucket = -1

    def keep(index: int) -> float | None:
        nonlocal last_bucket
        pts = index / info.fps
        bucket = sample_bucket(pts, sample_fps)
        if bucket == last_bucket or pts < from_pts_s - 1e-6:
            return None
        last_bucket = bucket
        return pts

    if info.kind == "frames":
        for i, f in enumerate(_frame_files(info.path)):
            pts = keep(i)
            if pts is None:
                continue
            img = cv2.imread(str(f))
            if img is None:
                raise VideoError(f"{f}: cannot decode image frame")
            yield Frame(camera_id, i, pts, start_ts_s + pts, np.asarray(img, np.uint8))
        return

    cap = cv2.VideoCapture(str(info.path))
    if not cap.isOpened():
        raise VideoError(f"{info.path}: not a readable video")
    try:
        i = 0
        # grab() without retrieve() skips the colour conversion of frames we drop
        while cap.grab():
            pts = keep(i)
            if pts is not None:
                ok, img = cap.retrieve()
                if not ok or img is None:
                    raise VideoError(f"{info.path}: frame {i} cannot be decoded")
                yield Frame(camera_id, i, pts, start_ts_s + pts, np.ascontiguousarray(img, dtype=np.uint8))
            i += 1
        if i < info.frame_count * 0.98 - 2:
            raise VideoError(f"{info.path}: stream ended after {i} of {info.frame_count} frames (truncated or corrupt)")
    finally:
        cap.release()


def read_range(path: Path, first_frame: int, last_frame: int) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """Yield (index, BGR frame) for frames first_frame..last_frame (inclusive) of a video file or frame folder.

    For cutting a stretch out of a source (clips, single frames), not for ingest: a file is read from a seek to
    `first_frame` and the range ends early at its first undecodable frame; an undecodable image in a folder is
    skipped.
    """
    path = Path(path)
    if path.is_dir():
        for i, f in enumerate(_frame_files(path)[first_frame : last_frame + 1]):
            img = cv2.imread(str(f))
            if img is not None:
                yield first_frame + i, np.asarray(img, np.uint8)
        return
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, first_frame)
        for index in range(first_frame, last_frame + 1):
            ok, img = cap.read()
            if not ok:
                break
            yield index, np.asarray(img, np.uint8)
    finally:
        cap.release()


def read_frame_at(path: Path, pts_s: float) -> NDArray[np.uint8]:
    """Decode the single frame nearest `pts_s` (BGR). Used for thumbnails and query tools, not the hot path."""
    info = probe(path)
    index = min(info.frame_count - 1, max(0, round(pts_s * info.fps)))
    for _, img in read_range(path, index, index):
        return img
    raise VideoError(f"{path}: frame at {pts_s:.2f}s cannot be decoded")


def prefetch(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Decode ahead in a background thread (OpenCV releases the GIL) so decoding overlaps inference.

    Errors raised by the decoder (e.g. a truncated stream) are re-raised in the consumer, in order.
    """
    import queue

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for f in frames:
                while not stop.is_set():
                    try:
                        q.put(f, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, name="vsearch-decode", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def write_mp4(
    path: str | Path,
    frames: Iterable[tuple[int, NDArray[np.uint8]]],
    fps: float,
    draw: Callable[[int, NDArray[np.uint8]], None] | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Encode (index, BGR frame) pairs to H.264 High / yuv420p MP4 with the index first (+faststart, so browsers
    can play and seek at once). `draw(index, frame)` may annotate each frame in place; `metadata` goes into the
    container's tags. Returns frames written."""
    import av

    container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
    container.metadata.update(metadata or {})
    stream = None
    n = 0
    try:
        for idx, img in frames:
            if stream is None:
                h, w = img.shape[:2]
                stream = container.add_stream("libx264", rate=max(1, round(fps)))
                stream.width, stream.height = w - w % 2, h - h % 2  # yuv420p needs even sizes
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "preset": "veryfast"}
            if draw is not None:
                draw(idx, img)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: stream.height, : stream.width]), format="bgr24")
            container.mux(stream.encode(frame))
            n += 1
        if stream is None:
            raise VideoError(f"{path}: no frame to write")
        container.mux(stream.encode(None))
    finally:
        container.close()
    return n
