"""Response models (they document the API at /docs) and converters from vsearch's typed values."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from vsearch.search import SearchResult, result_to_dict, sighting_to_dict
from vsearch.types import Sighting, ts_to_iso


class SightingOut(BaseModel):
    """One stored appearance of a person: time, place, box, and URLs of its crop, frame and clip
    (vsearch.search.sighting_to_dict plus the URLs)."""

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
    clip_id: str | None = Field(default=None, description="The clip around this sighting.")
    score: float | None = Field(default=None, description="Cosine similarity to the query, in a search result.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return f"/sightings/{self.id}/thumbnail.jpg"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def frame_url(self) -> str:
        return f"/sightings/{self.id}/frame.jpg"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clip_url(self) -> str | None:
        return f"/clips/{self.clip_id}.mp4" if self.clip_id else None


class ClipOut(BaseModel):
    """One track's continuous presence on one camera, ranked by its best sighting's score; its thumbnail and frame
    are those of its best sighting."""

    id: str
    camera_id: str
    video_id: int
    track_id: int
    score: float
    start: str
    end: str
    start_ts_s: float
    end_ts_s: float
    duration_s: float
    best: SightingOut
    sightings: list[SightingOut]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return self.best.thumbnail_url

    @computed_field  # type: ignore[prop-decorator]
    @property
    def frame_url(self) -> str:
        return self.best.frame_url

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clip_url(self) -> str:
        return f"/clips/{self.id}.mp4"


class QueryOut(BaseModel):
    """What was searched for: the crop's source (whole image, detected person, given box), its box, every
    person detected in the photo (to offer a choice) and the image's sha256 (as in the audit log)."""

    source: str
    box_xyxy: list[float]
    persons_xyxy: list[list[float]]
    image_sha256: str


class UnsearchedOut(BaseModel):
    """A time range [from, to) that a search could not search (null: open at that end)."""

    model_config = {"populate_by_name": True}

    from_: str | None = Field(alias="from")
    to: str | None
    from_ts_s: float | None
    to_ts_s: float | None


class SearchOut(BaseModel):
    """A search's answer (vsearch.search.result_to_dict, with media URLs): the query, how many sightings passed
    the filters, timings and the ranked clips."""

    query: QueryOut = Field(description="The first query image.")
    queries: list[QueryOut] = Field(description="Every query image, in upload order (searched together).")
    demoted: int = Field(description="Sightings shown last because they were rejected or look like a rejected one.")
    candidates: int
    latency_ms: dict[str, float]
    clips: list[ClipOut]
    unsearched: list[UnsearchedOut] = Field(
        default_factory=list,
        description="Time ranges of the filters that were NOT searched (a shard owner of a partitioned index was "
        "down): the answer is partial there. Empty: everything in the filters was searched.",
    )


class CameraOut(BaseModel):
    """A camera with footage: how much, over which span of time, and how many sightings it holds."""

    id: str = Field(description="Camera id, as given at ingest.")
    videos: int = Field(description="Videos (files or frame folders) ingested for this camera.")
    footage_s: float = Field(description="Total length of its footage, seconds.")
    first_ts_s: float | None = Field(description="Start of its earliest video, epoch seconds UTC (null: no video).")
    last_ts_s: float | None = Field(description="End of its latest video, epoch seconds UTC (null: no video).")
    sightings: int = Field(description="Stored sightings (person crops) on this camera.")

    @computed_field(description="first_ts_s as ISO 8601 UTC, as the CLI prints it.")  # type: ignore[prop-decorator]
    @property
    def first(self) -> str | None:
        return ts_to_iso(self.first_ts_s) if self.first_ts_s is not None else None

    @computed_field(description="last_ts_s as ISO 8601 UTC.")  # type: ignore[prop-decorator]
    @property
    def last(self) -> str | None:
        return ts_to_iso(self.last_ts_s) if self.last_ts_s is not None else None


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
    description: str | None = Field(None, description="The description phrase (an image search with one).")
    gender: str | None = Field(None, description="Description option: gender.")
    carrying: list[str] | None = Field(None, description="Description option: carried items.")
    age: str | None = Field(None, description="Description option: age.")


class AuditEntry(BaseModel):
    """One search attempt in the audit log: who asked, when, with which image and filters, how it was answered and
    what came back.

    Keys the log line does not hold are left out: a refused attempt has `error`, and only the fields known by the
    time it was refused (a request without a valid key has `key` instead of a key name)."""

    model_config = ConfigDict(extra="allow")  # case changes, exports and camera edits carry their own fields

    seq: int | None = Field(default=None, description="The entry's number: 1, 2, 3... in commit order, no gaps.")
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


def sighting_out(s: Sighting, clip_id: str | None = None) -> SightingOut:
    """A sighting as the API shows it."""
    return SightingOut.model_validate(sighting_to_dict(s, clip_id=clip_id))


class FindOut(BaseModel):
    """A description search's answer (vsearch.find.find_result_to_dict, with media URLs): the attributes searched
    for, how many sightings passed the filters, how many have no attributes yet, timings and the ranked clips
    (score: the joint probability of the described attributes)."""

    description: dict[str, Any]
    candidates: int
    without_attributes: int = Field(description="Sightings not scored yet (vsearch reindex-attributes).")
    latency_ms: dict[str, float]
    clips: list[ClipOut]


def search_out(r: SearchResult) -> SearchOut:
    """A search result as the API shows it."""
    return SearchOut.model_validate(result_to_dict(r))


def camera_out(camera: Any) -> CameraOut:
    """A camera's statistics (a CameraStats-like object or a dict with the same names) as the API shows them."""
    return CameraOut.model_validate(camera, from_attributes=True)
