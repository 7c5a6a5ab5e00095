"""Evidence clips: find a person's continuous presence around a sighting, cut it from the source video with the
box drawn and the absolute time burned in, and write a browser-playable H.264 MP4 plus a JPEG thumbnail.

Encoder choice: PyAV's bundled FFmpeg has libx264, so clips are H.264 High, yuv420p, with `+faststart` (the index
at the front, so a browser can start playing and seek before the whole file arrives).
"""

from __future__ import annotations

import bisect
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import LIVE_SHA_PREFIX, Catalog, VideoRecord
from vsearch.config import Settings
from vsearch.errors import InputError, NotFoundError, VideoError
from vsearch.types import Sighting, ts_to_iso
from vsearch.video import probe, read_range, write_mp4

CLIP_MAX_S = 120.0
BOX_BGR = (0, 0, 255)

TrackBoxes = list[tuple[float, tuple[float, float, float, float], float]]


def clip_span(boxes: TrackBoxes, pts_s: float, settings: Settings) -> tuple[float, float]:
    """The run of a track's sampled boxes around `pts_s` with no gap over `clip_gap_s` (at most CLIP_MAX_S)."""
    if not boxes:
        return (pts_s, pts_s)
    times = [b[0] for b in boxes]
    i = min(max(bisect.bisect_left(times, pts_s), 0), len(times) - 1)
    lo = hi = i
    while lo > 0 and times[lo] - times[lo - 1] <= settings.clip_gap_s and pts_s - times[lo - 1] <= CLIP_MAX_S / 2:
        lo -= 1
    while hi < len(times) - 1 and times[hi + 1] - times[hi] <= settings.clip_gap_s and times[hi + 1] - pts_s <= CLIP_MAX_S / 2:
        hi += 1
    return (min(times[lo], pts_s), max(times[hi], pts_s))


CLIP_ID = re.compile(r"^(\d{1,18})-(\d{1,18})-(\d{1,12})-(\d{1,12})$")  # fits SQLite integers


def parse_clip_id(clip_id: str) -> tuple[int, int, float, float]:
    """'<video_id>-<track_id>-<start_ms>-<end_ms>' -> (video_id, track_id, start_pts_s, end_pts_s)."""
    m = CLIP_ID.match(clip_id)
    if not m:
        raise InputError(f"expected a clip id like 3-12-45000-61500, got {clip_id!r}")
    v, t, a, b = (int(x) for x in m.groups())
    if b < a or (b - a) / 1000 > CLIP_MAX_S + 1:
        raise InputError(f"clip id {clip_id!r} spans an invalid time range")
    return v, t, a / 1000, b / 1000


def track_clip(video_id: int, track_id: int, boxes: TrackBoxes, pts_s: float, settings: Settings) -> tuple[str, float, float]:
    """The id and span (start_pts_s, end_pts_s) of the clip around a sighting of the track at `pts_s`: the one
    place clip ids are made, by search and by the check before a clip is rendered."""
    p0, p1 = clip_span(boxes, pts_s, settings)
    return f"{video_id}-{track_id}-{round(p0 * 1000)}-{round(p1 * 1000)}", p0, p1


def clip_id_for_sighting(catalog: Catalog, sighting: Sighting, settings: Settings) -> str:
    boxes = catalog.track_boxes(sighting.video_id, sighting.track_id)
    return track_clip(sighting.video_id, sighting.track_id, boxes, sighting.pts_s, settings)[0]


def check_clip_id(catalog: Catalog, clip_id: str, settings: Settings) -> tuple[int, int, float, float]:
    """Parse `clip_id` and vouch for it: NotFoundError unless it is the clip of a stored sighting (as search
    returns it), so nobody can have arbitrary spans rendered."""
    video_id, track_id, p0, p1 = parse_clip_id(clip_id)
    boxes = catalog.track_boxes(video_id, track_id)
    if not any(track_clip(video_id, track_id, boxes, t, settings)[0] == clip_id
               for t in catalog.track_sighting_pts(video_id, track_id)):  # fmt: skip
        raise NotFoundError(f"{clip_id} is not a clip of any stored sighting (clip ids come from search results)")
    return video_id, track_id, p0, p1


def _evict(folder: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used files of the clip cache until it holds at most `max_bytes` (never `keep`)."""
    files = []
    for p in folder.iterdir():
        if p.name.startswith(".") or p == keep:  # temp files being written, the file just made
            continue
        try:
            st = p.stat()
        except FileNotFoundError:  # evicted by another request meanwhile
            continue
        files.append((max(st.st_atime, st.st_mtime), st.st_size, p))
    total = sum(size for _, size, _ in files) + keep.stat().st_size
    for _, size, p in sorted(files):
        if total <= max_bytes:
            break
        p.unlink(missing_ok=True)
        total -= size


def interpolated_box(boxes: TrackBoxes, t: float, max_gap_s: float) -> tuple[float, ...] | None:
    """The track's box at time t, linearly interpolated between sampled boxes; None outside its presence (more
    than `max_gap_s` between samples, or over 0.25 s before its first or after its last)."""
    times = [b[0] for b in boxes]
    i = bisect.bisect_left(times, t)
    if i < len(times) and abs(times[i] - t) < 1e-6:
        return boxes[i][1]
    if i == 0 or i == len(times):
        edge = boxes[0] if i == 0 else boxes[-1]
        return edge[1] if abs(edge[0] - t) <= 0.25 else None
    (t0, b0, _), (t1, b1, _) = boxes[i - 1], boxes[i]
    if t1 - t0 > max_gap_s:
        return None
    a = (t - t0) / (t1 - t0)
    return tuple((1 - a) * np.array(b0) + a * np.array(b1))


def _annotate(img: NDArray[np.uint8], box: tuple[float, ...] | None, label: str, stamp: str) -> None:
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), BOX_BGR, 2)
        cv2.putText(img, label, (x1, max(14, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_BGR, 1, cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (8 + 8 * len(stamp), 22), (0, 0, 0), -1)
    cv2.putText(img, stamp, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def read_on(
    catalog: Catalog, video: VideoRecord, first: int, last: int, what: str
) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(index, BGR frame) for frames first..last of `video` (indexes at its frame rate from its start), read on
    into the camera's next recorded segments when the range runs past its end: a live track that crossed a
    segment boundary belongs to the segment it began in (vsearch.live). NotFoundError, naming `what`, when a file
    it needs is gone or still being recorded."""
    t_first, t_last = video.start_ts_s + first / video.fps, video.start_ts_s + last / video.fps
    cur: VideoRecord | None = video
    while cur is not None:
        if cur.sha256.startswith(LIVE_SHA_PREFIX) and cur.status != "done":
            raise NotFoundError(f"{what}: its footage is still being recorded; try again when the segment closes")
        src = Path(cur.path)
        if not src.exists():
            raise NotFoundError(f"{what}: the source video {src.name} is no longer on disk")
        n = cur.frame_count if cur.frame_count > 0 else probe(src).frame_count
        a = max(0, round((t_first - cur.start_ts_s) * cur.fps))
        b = min(n - 1, round((t_last - cur.start_ts_s) * cur.fps))
        if a <= b:
            for i, img in read_range(src, a, b):
                yield round((cur.start_ts_s + i / cur.fps - video.start_ts_s) * video.fps), img
        end_ts = cur.start_ts_s + n / cur.fps
        if t_last < end_ts - 0.5 / cur.fps:
            return
        nxt = catalog.video_after(cur.camera_id, end_ts - 0.5, 1.0)  # the next segment, recorded back to back
        # a video shorter than half a second is its own "next" (read again forever, until memory ran out)
        cur = nxt if nxt is not None and nxt.start_ts_s > cur.start_ts_s else None


def render_clip(catalog: Catalog, clip_id: str, settings: Settings) -> Path:
    """Write (once, then reuse) the annotated MP4 for `clip_id` under the data dir's clips/ and return its path.
    Only clips of stored sightings are made (check_clip_id); the cache keeps to `clip_cache_max_bytes`, the least
    recently used clips leaving first."""
    check_clip_id(catalog, clip_id, settings)  # a cached clip too: its sightings may have expired since
    out = settings.clips_dir / f"{clip_id}.mp4"
    if out.exists():
        os.utime(out)  # recently used: last to be evicted
        return out
    cut_clip(catalog, clip_id, settings, out)
    _evict(out.parent, settings.clip_cache_max_bytes, keep=out)
    return out


FrameFilter = Callable[[Iterator[tuple[int, NDArray[np.uint8]]], int, int, int, int], Iterator[tuple[int, NDArray[np.uint8]]]]


def cut_clip(catalog: Catalog, clip_id: str, settings: Settings, out: Path, frame_filter: FrameFilter | None = None) -> Path:
    """Write the annotated MP4 of `clip_id` (a clip of a stored sighting: check_clip_id) to `out`, atomically.
    `frame_filter(frames, video_id, track_id, first, last)` may change the frames before they are annotated
    (vsearch.evidence redacts them there); the source file is only read."""
    video_id, track_id, p0, p1 = check_clip_id(catalog, clip_id, settings)
    video = catalog.video(video_id)
    boxes = catalog.track_boxes(video_id, track_id)
    a = max(0, int((p0 - settings.clip_pad_s) * video.fps))
    b = int(np.ceil((p1 + settings.clip_pad_s) * video.fps))
    frames: Iterator[tuple[int, NDArray[np.uint8]]] = iter(list(read_on(catalog, video, a, b, f"clip {clip_id}")))
    if frame_filter is not None:  # every file was checked above, before the (slow) filter and the clip are made
        frames = frame_filter(frames, video_id, track_id, a, b)
    label = f"{video.camera_id} track {track_id}"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".clip.", suffix=".mp4", dir=out.parent)
    os.close(fd)
    try:
        write_mp4(
            tmp, frames, video.fps,
            lambda idx, img: _annotate(
                img, interpolated_box(boxes, idx / video.fps, settings.clip_gap_s), label,
                f"{video.camera_id}  {ts_to_iso(video.start_ts_s + idx / video.fps)}",
            ),
        )  # fmt: skip
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def sighting_frame(catalog: Catalog, sighting: Sighting) -> NDArray[np.uint8]:
    """The full BGR frame of a sighting, as decoded from its source (not annotated)."""
    video = catalog.video(sighting.video_id)
    i = round(sighting.pts_s * video.fps)
    img = next((f for _, f in read_on(catalog, video, i, i, f"sighting {sighting.id}")), None)
    if img is None:
        raise VideoError(f"{video.path}: frame at {sighting.pts_s:.2f}s cannot be decoded")
    return img


def annotate_sighting(img: NDArray[np.uint8], sighting: Sighting) -> None:
    """Draw a sighting's box, camera and track, and its time on its frame, in place."""
    _annotate(img, sighting.xyxy, f"{sighting.camera_id} track {sighting.track_id}", f"{sighting.camera_id}  {sighting.time_iso}")


def write_jpeg(img: NDArray[np.uint8], out: Path, quality: int = 90) -> Path:
    """Write a BGR image as JPEG to `out`, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".thumb.", suffix=".jpg", dir=out.parent)
    os.close(fd)
    cv2.imwrite(tmp, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    os.replace(tmp, out)
    return out


def render_thumbnail(catalog: Catalog, sighting: Sighting, settings: Settings) -> Path:
    """Full frame of a sighting with its box drawn, as JPEG (cached under clips/)."""
    out = settings.clips_dir / f"sighting-{sighting.id}.jpg"
    if out.exists():
        return out
    img = sighting_frame(catalog, sighting)
    annotate_sighting(img, sighting)
    return write_jpeg(img, out)
