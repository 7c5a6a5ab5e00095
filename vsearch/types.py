"""Plain typed values that flow between the stages. Boxes are xyxy pixels; times carry their unit in the name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray


def ts_to_iso(ts_s: float) -> str:
    """Absolute epoch seconds -> ISO 8601 in UTC with millisecond precision."""
    return datetime.fromtimestamp(ts_s, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Frame:
    """One decoded, sampled frame of a camera's video."""

    camera_id: str
    index: int  # frame number in the source video (0-based)
    pts_s: float  # position in the source video
    ts_s: float  # absolute time: camera/video start + pts_s (epoch seconds, UTC)
    image_bgr: NDArray[np.uint8]

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])


@dataclass
class Detections:
    """Person detections of one frame, one aligned numpy array per field (supervision style).

    `keypoints` holds COCO-17 pose keypoints as (n, 17, 3) = x, y, visibility, or shape (n, 0, 3) when the
    detector has no pose head. `tracker_id` is -1 until a tracker assigns one.
    """

    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    keypoints: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    tracker_id: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __post_init__(self) -> None:
        # A field of another length is a bug in the code that built it (detector adapter, tracker), not bad user
        # input: ValueError, not InputError. Length-0 keypoints / tracker ids are the defaults: none yet.
        n = len(self.xyxy)
        for name in ("confidence", "keypoints", "tracker_id"):
            m = len(getattr(self, name))
            if m != n and not (m == 0 and name != "confidence"):
                raise ValueError(f"Detections.{name} has {m} rows, expected {n} (one per box)")
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(n, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(n)
        kpts = self.keypoints if len(self.keypoints) == n else np.zeros((n, 0, 3), np.float32)
        self.keypoints = np.asarray(kpts, dtype=np.float32)
        ids = self.tracker_id if len(self.tracker_id) == n else np.full(n, -1, np.int64)
        self.tracker_id = np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, mask: NDArray[np.bool_] | NDArray[np.int64] | slice) -> Detections:
        return Detections(self.xyxy[mask], self.confidence[mask], self.keypoints[mask], self.tracker_id[mask])

    @property
    def area(self) -> NDArray[np.float32]:
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return (wh[:, 0] * wh[:, 1]).astype(np.float32)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@dataclass(frozen=True)
class IdSet:
    """Sighting ids as the index is asked to search them: id ranges [lo, hi) (of some camera slots) plus single
    ids. `count` is how many sightings the filter selects (at most as many as the ranges and ids hold; it tunes how
    widely the index searches and is reported as the search's candidates)."""

    ranges: tuple[tuple[int, int], ...] = ()
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    count: int = 0
    # id ranges among `ranges` whose sightings are only partly selected (a time window's first and last minutes):
    # the store drops, by their times, those the index returns that are outside the window
    partial: tuple[tuple[int, int], ...] = ()
    # how many sightings `ranges` hold, the partial minutes whole (>= count; 0: not known): the store asks the index
    # for k * spanned / count so that k usually remain once those outside the window are dropped
    spanned: int = 0
    # camera slots (vsearch.ids): only the ids in `ranges` of these slots are selected (None: of any slot); `ids`
    # are selected whatever their slot
    slots: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Sighting:
    """One stored appearance of a person: a crop of one track at one instant, with its embedding row id."""

    id: int
    camera_id: str
    video_id: int
    video_path: str
    track_id: int
    ts_s: float
    pts_s: float
    xyxy: tuple[float, float, float, float]
    confidence: float
    thumb_path: str
    upper_color: str | None = None  # dominant clothing colours (vsearch.colors.COLOR_NAMES)
    lower_color: str | None = None

    @property
    def time_iso(self) -> str:
        return ts_to_iso(self.ts_s)


@dataclass(frozen=True)
class SearchHit:
    """A sighting and its similarity to the query (cosine, higher is closer)."""

    sighting: Sighting
    score: float


@dataclass(frozen=True)
class Clip:
    """Nearby sightings of one track on one camera, merged: what an investigator plays as evidence."""

    # "<video_id>-<track_id>-<start_ms>-<end_ms>", the span's video positions in ms: built by search.group_clips
    # (and clips.clip_id_for_sighting), read back by clips.parse_clip_id
    id: str
    camera_id: str
    video_id: int
    video_path: str
    track_id: int
    start_ts_s: float
    end_ts_s: float
    start_pts_s: float
    end_pts_s: float
    score: float  # best score of its sightings
    best: Sighting  # the best-scoring sighting; its thumbnail represents the clip
    sightings: tuple[SearchHit, ...]

    @property
    def duration_s(self) -> float:
        return self.end_ts_s - self.start_ts_s


def parse_time(text: str) -> float:
    """ISO 8601 date-time -> epoch seconds. A time without a zone is taken as UTC (say so in the UI)."""
    from vsearch.errors import InputError

    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise InputError(f"expected an ISO 8601 time like 2026-03-01T14:00:00, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
