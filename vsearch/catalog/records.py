"""The catalog's records: plain frozen values that go in and come out of it (the API and the library import them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# the placeholder hash of a live segment while it is recorded (vsearch.live); its file's hash replaces it when written
LIVE_SHA_PREFIX = "live:"
TrackBoxRow = tuple[int, float, tuple[float, float, float, float], float]  # (track_id, pts_s, xyxy, confidence)


@dataclass(frozen=True)
class CameraStats:
    """A camera and what the catalog holds of it."""

    id: str
    videos: int
    footage_s: float
    first_ts_s: float | None
    last_ts_s: float | None
    sightings: int


@dataclass(frozen=True)
class VideoRecord:
    id: int
    camera_id: str
    path: str
    sha256: str
    start_ts_s: float
    fps: float
    frame_count: int
    status: str
    processed_until_s: float
    frames_sampled: int
    error: str | None
    embedder: str
    resume_state: str | None = None  # JSON the ingest left at its last checkpoint (track.TrackerState)


@dataclass(frozen=True)
class NewSighting:
    """A sighting about to be stored (its id is assigned by the catalog)."""

    camera_id: str
    track_id: int
    ts_s: float
    pts_s: float
    xyxy: tuple[float, float, float, float]
    confidence: float
    quality: float
    thumb_path: str
    embedding: NDArray[np.float32]
    upper_color: str | None = None
    lower_color: str | None = None
    attributes: NDArray[np.float32] | None = None  # probabilities in vsearch.attributes.COLUMNS order
    attribute_model: str = ""  # the model that gave them



@dataclass(frozen=True)
class Checkpoint:
    """One ingest checkpoint, stored atomically: its sightings and track boxes, and the video's progress.

    `processed_until_s` is the video position (s) the ingest has finished; `frames_sampled` the frames it read
    since the previous checkpoint; `done` ends the video (and releases its lease); `resume_state` is the
    tracker's state as JSON, for a resumed ingest to continue from (dropped when done).
    """

    sightings: Sequence[NewSighting] = field(default_factory=tuple)
    boxes: Sequence[TrackBoxRow] = field(default_factory=tuple)
    processed_until_s: float = 0.0
    frames_sampled: int = 0
    done: bool = False
    resume_state: str | None = None

@dataclass(frozen=True)
class Changes:
    """Sightings of one embedder added and removed after a log sequence number, in log order.

    `ops` lists (sighting_id, vector) in order: a vector for an addition, None for a removal. An addition whose
    sighting was removed later carries no vector either; its removal follows it.
    """

    ops: list[tuple[int, NDArray[np.float32] | None]]
    last_seq: int  # the sequence number these changes bring a follower to


@dataclass(frozen=True)
class CameraInfo:
    """Optional metadata of a camera: a display name and WGS84 coordinates (degrees)."""

    id: str
    name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Case:
    """An investigation: a name, notes, and who opened it when."""

    id: int
    name: str
    notes: str
    created_by: str
    created_at: float  # epoch seconds
    updated_at: float
    items: int = 0  # how many confirmed items it holds
    closed_at: float | None = None  # closed: it holds no footage from expiring any more
    close_reason: str | None = None


@dataclass(frozen=True)
class NewCaseItem:
    """A confirmed clip or sighting about to be added to a case, with where and when it is (checked by the
    caller against the catalog) and the search that found it, if any."""

    kind: str  # "clip" or "sighting"
    ref: str  # the clip id, or the sighting id as text
    camera_id: str
    video_id: int
    track_id: int
    start_ts_s: float
    end_ts_s: float
    start_pts_s: float
    end_pts_s: float
    sighting_id: int  # the sighting whose crop and frame represent it
    query_sha256: str | None = None
    search_filters: str | None = None  # the search's filters as JSON text
    note: str = ""


@dataclass(frozen=True)
class CaseItem:
    """A confirmed item of a case: a NewCaseItem with its id, who added it and when."""

    id: int
    case_id: int
    kind: str
    ref: str
    camera_id: str
    video_id: int
    track_id: int
    start_ts_s: float
    end_ts_s: float
    start_pts_s: float
    end_pts_s: float
    sighting_id: int
    query_sha256: str | None
    search_filters: str | None
    note: str
    added_by: str
    added_at: float


@dataclass(frozen=True)
class Mark:
    """An investigator's verdict on a search result: the sighting is the person searched for ("same") or not
    ("different"); with the query images' sha256s (comma-separated) and who marked it."""

    sighting_id: int
    mark: str  # "same" or "different"
    query_sha256: str
    marked_by: str
    ts_s: float = 0.0  # when it was stored (epoch seconds); set by the catalog



@dataclass(frozen=True)
class WatchEntry:
    """A watchlist entry: a wanted person's name, where and how closely to match them, and who added them."""

    id: int
    name: str
    case_id: int | None
    cameras: tuple[str, ...]  # empty: every camera
    min_score: float  # cosine similarity an alert needs
    expires_at: float | None  # epoch seconds; None: never
    status: str  # "active", "paused" or "removed"
    embedder: str
    created_by: str
    created_at: float
    updated_at: float
    vectors: int = 0  # embeddings held (images and confirmed sightings)
    webhook_url: str | None = None  # where new alerts are POSTed (signed with the entry's secret, never shown)

    def active_at(self, now_s: float) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now_s)


@dataclass(frozen=True)
class WatchVector:
    """One embedding of an entry: from an image (`image:<sha256>`), a sighting (`sighting:<id>`) or a sighting an
    investigator confirmed for it (`confirmed:<id>`)."""

    entry_id: int
    source: str
    embedding: NDArray[np.float32]
    image_path: str | None = None  # the crop it was embedded from, relative to the data dir


@dataclass(frozen=True)
class Alert:
    """A watchlisted person seen: the best-scoring sighting of one track (or of several tracks of one appearance,
    folded by the entry's rate limit: `tracks`), and what an investigator said of it."""

    id: int
    entry_id: int
    camera_id: str
    video_id: int
    track_id: int
    sighting_id: int  # the best-scoring crop so far
    score: float
    ts_s: float  # time of the best crop
    first_ts_s: float
    last_ts_s: float
    tracks: int
    status: str  # "new", "confirmed" or "false"
    acked_by: str | None
    acked_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Delivery:
    """One alert's webhook delivery: pending (due at `next_at_s`), delivered, or dead (every attempt failed)."""

    id: int
    alert_id: int
    entry_id: int
    url: str
    status: str  # "pending", "delivered" or "dead"
    attempts: int
    next_at_s: float
    last_error: str | None
    created_at: float
    delivered_at: float | None
