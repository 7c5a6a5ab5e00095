"""Response models (they document the API at /docs) and converters from vsearch's typed values."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vsearch.search import SearchResult
from vsearch.types import Clip, SearchHit, Sighting, ts_to_iso


class SightingOut(BaseModel):
    """One stored appearance of a person: time, place, box, and URLs of its crop, frame and clip."""

    id: int
    camera_id: str
    video_id: int
    track_id: int
    time: str
    ts_s: float
    pts_s: float
    box_xyxy: list[float]
    confidence: float
    upper_color: str | None
    lower_color: str | None
    thumbnail_url: str
    frame_url: str
    clip_url: str | None = None
    score: float | None = None


class ClipOut(BaseModel):
    """One track's continuous presence on one camera, ranked by its best sighting's score."""

    id: str
    camera_id: str
    track_id: int
    score: float
    start: str
    end: str
    start_ts_s: float
    end_ts_s: float
    duration_s: float
    thumbnail_url: str
    frame_url: str
    clip_url: str
    best: SightingOut
    sightings: list[SightingOut]


class QueryOut(BaseModel):
    """What was searched for: the crop's source (whole image, detected person, given box), its box, every
    person detected in the photo (to offer a choice) and the image's sha256 (as in the audit log)."""

    source: str
    box_xyxy: list[float]
    persons_xyxy: list[list[float]]
    image_sha256: str


class SearchOut(BaseModel):
    """A search's answer: the query, how many sightings passed the filters, timings and the ranked clips."""

    query: QueryOut = Field(description="The first query image.")
    queries: list[QueryOut] = Field(description="Every query image, in upload order (searched together).")
    demoted: int = Field(description="Sightings shown last because they were rejected or look like a rejected one.")
    candidates: int
    latency_ms: dict[str, float]
    clips: list[ClipOut]


class CameraOut(BaseModel):
    """A camera with footage: how much, over which span of time, and how many sightings it holds."""

    id: str = Field(description="Camera id, as given at ingest.")
    videos: int = Field(description="Videos (files or frame folders) ingested for this camera.")
    footage_s: float = Field(description="Total length of its footage, seconds.")
    first_ts_s: float | None = Field(description="Start of its earliest video, epoch seconds UTC (null: no video).")
    last_ts_s: float | None = Field(description="End of its latest video, epoch seconds UTC (null: no video).")
    sightings: int = Field(description="Stored sightings (person crops) on this camera.")


class ModelsLoaded(BaseModel):
    """Which models are in memory (they load on first use)."""

    detector: bool = Field(description="The person detector is loaded.")
    embedder: bool = Field(description="The appearance embedder is loaded.")


class HealthOut(BaseModel):
    """The service is up: its version, index size, models and the ingest queue."""

    status: str = Field(description='Always "ok" when the service answers.')
    version: str = Field(description="vsearch version.")
    index_size: int = Field(description="Vectors in the search index (stored sightings of the current embedder).")
    embedder: str = Field(description="Name of the appearance embedder the index was built with.")
    detector_backend: str = Field(description="Inference backend of the person detector (torch, onnx, openvino).")
    models_loaded: ModelsLoaded
    jobs: dict[str, int] = Field(description="Ingest jobs per status (queued, running, done, failed).")


class AuditFilters(BaseModel):
    """The search's form fields as the caller sent them (before validation: a refused value is kept)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from", description="Window start as sent.")
    to: str | None = Field(description="Window end as sent.")
    cameras: list[str] = Field(description="Camera ids asked for (empty: all).")
    top_k: int = Field(description="Clips asked for.")
    min_score: float = Field(description="Minimum cosine similarity asked for.")
    box: str | None = Field(description="Person box in the query image, x1,y1,x2,y2, as sent.")
    upper: str | None = Field(description="Upper-body colour filter.")
    lower: str | None = Field(description="Lower-body colour filter.")


class AuditEntry(BaseModel):
    """One search attempt in the audit log: who asked, when, with which image and filters, how it was answered and
    what came back.

    Keys the log line does not hold are left out: a refused attempt has `error`, and only the fields known by the
    time it was refused (a request without a valid key has `key` instead of a key name)."""

    model_config = ConfigDict(extra="allow")  # case changes, exports and camera edits carry their own fields

    action: str | None = Field(default=None, description="What was done, for other than searches: case.create,"
                               " case.add, case.remove, case.export, camera.set, ...")
    time: str = Field(description="When the request was answered, ISO 8601 UTC.")
    method: str | None = Field(default=None, description="HTTP method.")
    path: str | None = Field(default=None, description="Route asked for.")
    status: int | None = Field(default=None, description="HTTP status of the answer.")
    key_name: str | None = Field(default=None, description="Name of the API key that searched.")
    role: str | None = Field(default=None, description="That key's role (investigator or admin).")
    key: str | None = Field(default=None, description="No valid key: `missing` or `unknown` (the key is never logged).")
    client: str | None = Field(default=None, description="Client address, when known.")
    query_sha256: str | None = Field(default=None, description="SHA-256 of the (first) query image's bytes.")
    query_bytes: int | None = Field(default=None, description="Size of the query image (of all of them, for several).")
    query_sha256s: list[str] | None = Field(default=None, description="SHA-256 of each query image, when several.")
    confirmed: list[int] | None = Field(default=None, description="Sightings marked 'same person' in this search.")
    rejected: list[int] | None = Field(default=None, description="Sightings marked 'not this person' in this search.")
    filters: AuditFilters | None = None
    returned_sighting_ids: list[int] | None = Field(default=None, description="Sightings returned, in the order shown.")
    returned_clip_ids: list[str] | None = Field(default=None, description="Clips returned, best first.")
    error: str | None = Field(default=None, description="Why the attempt was refused, if it was.")


class Detail(BaseModel):
    """Every error's body."""

    detail: str


def sighting_out(s: Sighting, score: float | None = None, clip_id: str | None = None) -> SightingOut:
    """A sighting as the API shows it."""
    return SightingOut(
        id=s.id, camera_id=s.camera_id, video_id=s.video_id, track_id=s.track_id, time=s.time_iso, ts_s=s.ts_s,
        pts_s=s.pts_s, box_xyxy=list(s.xyxy), confidence=s.confidence, upper_color=s.upper_color,
        lower_color=s.lower_color, thumbnail_url=f"/sightings/{s.id}/thumbnail.jpg",
        frame_url=f"/sightings/{s.id}/frame.jpg", clip_url=f"/clips/{clip_id}.mp4" if clip_id else None, score=score,
    )  # fmt: skip


def _hit_out(h: SearchHit, clip_id: str) -> SightingOut:
    return sighting_out(h.sighting, h.score, clip_id)


def clip_out(c: Clip) -> ClipOut:
    """A clip as the API shows it, its thumbnail and frame those of its best sighting."""
    return ClipOut(
        id=c.id, camera_id=c.camera_id, track_id=c.track_id, score=c.score, start=ts_to_iso(c.start_ts_s),
        end=ts_to_iso(c.end_ts_s), start_ts_s=c.start_ts_s, end_ts_s=c.end_ts_s, duration_s=c.duration_s,
        thumbnail_url=f"/sightings/{c.best.id}/thumbnail.jpg", frame_url=f"/sightings/{c.best.id}/frame.jpg",
        clip_url=f"/clips/{c.id}.mp4", best=sighting_out(c.best, c.score, c.id),
        sightings=[_hit_out(h, c.id) for h in c.sightings],
    )  # fmt: skip


def search_out(r: SearchResult, image_sha256s: list[str]) -> SearchOut:
    """A search result as the API shows it (`image_sha256s`: of the query images, in order)."""
    queries = [
        QueryOut(source=q.source, box_xyxy=[float(v) for v in q.xyxy], persons_xyxy=[list(p) for p in q.persons],
                 image_sha256=sha)
        for q, sha in zip(r.queries, image_sha256s)
    ]  # fmt: skip
    return SearchOut(
        query=queries[0], queries=queries, demoted=r.demoted, candidates=r.candidates, latency_ms={k: round(v, 2) for k, v in r.latency_ms.items()},
        clips=[clip_out(c) for c in r.clips],
    )  # fmt: skip



def camera_out(camera: Any) -> CameraOut:
    """A camera's statistics (a CameraStats-like object or a dict with the same names) as the API shows them."""
    return CameraOut.model_validate(camera, from_attributes=True)
