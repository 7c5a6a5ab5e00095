"""Video in and out: open a file or a folder of frames, sample frames by time with absolute timestamps, read a
stretch of frames back, and write browser-playable H.264 MP4.

Live streams are recorded into files by record.py, which writes them with `write_mp4`.
"""

from __future__ import annotations

import configparser
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    info: VideoInfo, camera_id: str, start_ts_s: float, sample_fps: float, from_pts_s: float = 0.0,
    decode_threads: int | None = None,
) -> Iterator[Frame]:
    """Yield frames at about `sample_fps` per second of video, from `from_pts_s` on.

    A frame is kept when it is the first of its 1/sample_fps time bucket, so sampling is the same whether an
    ingest starts at 0 or resumes mid-video. Positions come from the frame index and the container's constant
    frame rate; `ts_s` = `start_ts_s` + position. H.264 in MP4/MOV/MKV is decoded with PyAV on `decode_threads`
    (None: every core this process may use), decoding only the frames the sampled ones need (_decode_planned);
    other files through OpenCV, every frame decoded but only the sampled ones converted.
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

    if info.path.suffix.lower() in PLANNED_EXTS and _codec(info.path) == "h264":
        for index, img in _decode_planned(info.path, keep, decode_threads, info.frame_count):
            yield Frame(camera_id, index, index / info.fps, start_ts_s + index / info.fps, img)
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


# containers whose packets carry presentation timestamps, so that a frame's index is known before decoding it
PLANNED_EXTS = {".mp4", ".mov", ".m4v", ".mkv"}


def _codec(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as c:
            return str(c.streams.video[0].codec_context.name)
    except (av.FFmpegError, IndexError):
        return None


@dataclass(frozen=True)
class _Nal:
    """What the slice NAL units of one H.264 access unit say: whether other frames may reference it, and
    whether it is an IDR picture (no frame after it references one before it)."""

    ref: bool
    idr: bool


def _h264_nal(data: bytes, length_size: int) -> _Nal:
    """Parse the NAL unit headers of a packet: length-prefixed (MP4's avcC, `length_size` bytes) or, with
    `length_size` 0, Annex B start codes. Anything unreadable counts as a reference frame (decoded)."""
    headers = []
    if length_size:
        i = 0
        while i + length_size < len(data):
            n = int.from_bytes(data[i : i + length_size], "big")
            headers.append(data[i + length_size])
            i += length_size + n
    else:
        i = data.find(b"\0\0\1")
        while i >= 0 and i + 3 < len(data):
            headers.append(data[i + 3])
            i = data.find(b"\0\0\1", i + 3)
    slices = [h for h in headers if h & 0x1F in (1, 5)]
    if not slices:
        return _Nal(True, False)
    return _Nal(any(h & 0x60 for h in slices), any(h & 0x1F == 5 for h in slices))


def _decode_planned(
    path: Path, keep: Callable[[int], float | None], threads: int | None, frame_count: int
) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(index, BGR image) of the sampled frames of an H.264 file, decoding only what they need.

    The packets are read one GOP (keyframe to keyframe) ahead; each one's frame index is its rank by presentation
    time. A packet is decoded when its frame is sampled, or when it is a reference frame that a sampled frame
    later in its GOP may need. So frames no other frame references and are not sampled (non-reference B or P
    frames) are never decoded, nor is the tail of a GOP after its last sampled frame when the next GOP starts
    with an IDR picture (a whole GOP with no sampled frame is skipped: keyframe-only decoding when the sampling
    interval spans GOPs). Only sampled frames are converted to BGR. The pixels are those of decoding every frame
    (tests/test_video.py).
    """
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({e})") from e
    with container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        extradata = bytes(cc.extradata or b"")
        length_size = (extradata[4] & 3) + 1 if extradata[:1] == b"\1" and len(extradata) > 4 else 0
        cc.thread_type = "AUTO"  # frame and slice threads
        cc.thread_count = threads or len(os.sched_getaffinity(0))
        index_of: dict[int, int] = {}  # pts -> frame index, for the packets sent to the decoder
        wanted: set[int] = set()
        counted = 0  # frames (not discarded packets) in the GOPs planned so far
        sent = produced = 0

        def decode(packet: Any) -> Iterator[tuple[int, NDArray[np.uint8]]]:
            nonlocal produced
            try:
                frames = cc.decode(packet)
            except av.FFmpegError as e:
                raise VideoError(f"{path}: a frame cannot be decoded ({e})") from e
            for fr in frames:
                index = index_of.pop(fr.pts, None) if fr.pts is not None else None
                if index in wanted:
                    wanted.discard(index)
                    produced += 1
                    yield index, np.ascontiguousarray(fr.to_ndarray(format="bgr24"), dtype=np.uint8)

        def plan(gop: list[Any], next_is_idr: bool) -> Iterator[Any]:
            nonlocal counted
            if any(p.pts is None for p in gop) or len({p.pts for p in gop}) < len(gop):
                raise VideoError(f"{path}: packets without distinct timestamps; cannot place frames in time")
            shown = sorted(p.pts for p in gop if not p.is_discard)
            rank = {pts: counted + k for k, pts in enumerate(shown)}
            counted += len(shown)
            sampled = {pts for pts, i in rank.items() if keep(i) is not None}
            nals = [_h264_nal(bytes(p), length_size) for p in gop]
            last = max((k for k, p in enumerate(gop) if p.pts in sampled), default=-1)
            if not next_is_idr:  # an open GOP: the next one's leading frames may reference this one's last frames
                last = len(gop)
            for k, (p, nal) in enumerate(zip(gop, nals)):
                if p.pts in sampled or (nal.ref and k < last):
                    if p.pts in rank:
                        index_of[p.pts] = rank[p.pts]
                    if p.pts in sampled:
                        wanted.add(rank[p.pts])
                    yield p

        gop: list[Any] = []
        packets = (p for p in container.demux(stream) if p.size)
        try:
            for p in packets:
                if p.is_keyframe and gop:
                    for q in plan(gop, _h264_nal(bytes(p), length_size).idr):
                        sent += 1
                        yield from decode(q)
                    gop = []
                gop.append(p)
            for q in plan(gop, True):
                sent += 1
                yield from decode(q)
            yield from decode(None)
        except av.FFmpegError as e:
            raise VideoError(f"{path}: cannot read the stream ({e})") from e
        if wanted:
            raise VideoError(f"{path}: frame {min(wanted)} cannot be decoded (truncated or corrupt)")
        if counted < frame_count * 0.98 - 2:
            raise VideoError(f"{path}: stream ended after {counted} of {frame_count} frames (truncated or corrupt)")


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
