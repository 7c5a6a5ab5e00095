"""All settings in one place. Pass a Settings instance down; nothing reads the environment behind your back."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from vsearch.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_TOP_K = 1000  # clips one search may return (here, not in vsearch.search, so the CLI's --help imports no model)
# `vsearch adapt`'s defaults (vsearch.adapt.AdaptOptions; here so the CLI's --help imports no model): wall seconds
# of fine-tuning and re-cluster / train rounds within them. 1,800 s in 5 rounds against 600 s in 3 gained +6.6
# rank-1 on Market's unseen cameras (67.2 -> 73.8) and +2.1 on CUHK03's (41.0 -> 43.1), one run each on a loaded
# 2-core CPU (models/reid/README.md, "Adapting to new cameras")
ADAPT_BUDGET_S = 1800.0
ADAPT_ROUNDS = 5


class ApiKey(BaseModel):
    """One API client: `investigator` may search and view; `admin` may also ingest and read the audit log."""

    name: str
    key: str = Field(min_length=16)
    role: Literal["investigator", "admin"]


class Settings(BaseSettings):
    """vsearch settings; every field can be set from the environment as VSEARCH_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="VSEARCH_", extra="ignore")

    # where the catalog, index, thumbnails and clips live
    data_dir: Path = Field(default=Path("vsearch_data"))
    # a shared catalog for several ingest workers and API nodes: postgresql://user@host:port/db (None: the SQLite
    # file in data_dir). Thumbnails live under data_dir: nodes that share a catalog share that folder too.
    catalog_url: str | None = None
    # exported model cache (OpenVINO / ONNX files keyed by the source weights' sha256)
    model_cache_dir: Path = Field(default=PROJECT_ROOT / "models" / "cache")

    # video sampling
    sample_fps: float = Field(default=2.0, gt=0, le=60)

    # detector
    detector_backend: Literal["openvino", "onnx", "torch"] = "openvino"
    device: str = "cpu"  # "cpu" or "cuda" / "cuda:0" (torch backend only)
    # inference size in pixels (longest side); None = the frame's longest side, clamped to 640..detector_max_imgsz:
    # a 1080p frame shrunk to 640 loses most of its pedestrians (tests/test_detect.py) ...
    detector_imgsz: int | None = None
    # 1920 detects 1080p footage at its own scale: distant people found, at more time per frame and more false
    # boxes, for when the CPU allows (benchmarks/README.md, "Recall by person height")
    detector_max_imgsz: int = Field(default=1280, ge=640)
    # ... except SD frames (longest side <= 640 px: CIF, SD, VGA), enlarged to this size so that their small
    # people reach a size the detector sees, and tracked from a lower score: as many found as at a larger size in
    # less time, with no more false boxes (benchmarks/README.md, "Recall by person height")
    detector_sd_imgsz: int = Field(default=768, ge=32)
    detector_sd_conf: float = Field(default=0.2, ge=0, le=1)
    detector_conf: float = Field(default=0.35, ge=0, le=1)  # a track's score to start, and a sighting's to be kept
    detector_batch: int = Field(default=4, ge=1)
    # letterbox to the frame's aspect plus a grey margin instead of a square: fewer pixels for a wide frame, and as
    # many people found as the square (without the margin, people at the frame's edges are missed)
    detector_rect: bool = True
    detector_margin_px: int = Field(default=32, ge=0)
    # OpenVINO infer requests in flight. 1: each frame runs on all cores (OpenVINO's LATENCY hint); more: that
    # many frames at once, one core each (THROUGHPUT). An ingest's batches mix whole frames and small crops and
    # each batch waits for its slowest frame, so 1 is faster (benchmarks/README.md, bench_ingest).
    # With detector_regions, frames are detected one at a time (each planned from the one before): more requests
    # only help the whole-frame ingest (regions off, or a backend other than OpenVINO)
    detector_requests: int = Field(default=1, ge=1)
    # CPU threads of one model run (OpenVINO detector, ONNX Runtime embedder); None: all cores. For many ingest
    # workers on one many-core machine (on 2 cores, workers of 1 thread gain nothing: benchmarks/README.md)
    inference_threads: int | None = Field(default=None, ge=1)
    # threads decoding an H.264 file (PyAV, frame and slice threads); None: every core this process may use
    decode_threads: int | None = Field(default=None, ge=1)
    # the OpenVINO detector's arithmetic: "auto" is the CPU's fastest (bf16 where the CPU has AVX-512 BF16 or AMX,
    # else f32); "f32" everywhere gives the boxes of an AVX2-only host, and how fast the ingest is without bf16
    detector_precision: Literal["auto", "f32"] = "auto"
    min_person_height_px: int = 24  # low: SD footage's distant people are this small (bench_recall)
    # detect only in a crop around motion and the last frame's persons, with the whole frame every Nth detected
    # frame (schedule.MotionRegions; OpenVINO backend); motion within half a body height of a known person is taken
    # as that person walking, and detected at the scale where the smallest known person is 160 px tall
    # (the whole frame too while more than 4 persons are in view, and until a frame's persons are known: crowds
    # lost people to crops; benchmarks/README.md, bench_recall and bench_ingest)
    detector_regions: bool = True
    # small people in HD (issue 29): frames larger than their inference size are also detected in overlapping
    # square tiles of detector_tile_px at detector_tile_scale (1.0: the frame's own pixels), merged with the
    # whole-frame pass; every frame of such footage is then detected whole (no motion regions). Off: it costs far
    # more than the whole-frame pass (benchmarks/README.md, bench_tiles)
    detector_tiles: bool = False
    detector_tile_px: int = Field(default=640, ge=64)
    detector_tile_scale: float = Field(default=1.0, gt=0, le=4)
    # small people in HD (issue 29): after a whole-frame pass of a frame larger than its inference size, a band of
    # detector_band_px rows across the frame, around the heads of the smallest persons that pass found (where more
    # distant people stand), is detected again at detector_band_scale times the frame's own pixels and merged
    # with it (detect.far_band; OpenVINO; whole-frame passes only, not motion-region crops; benchmarks/README.md,
    # bench_tiles)
    detector_far_band: bool = False
    detector_band_px: int = Field(default=192, ge=32)
    detector_band_scale: float = Field(default=1.75, gt=0, le=4)
    detector_full_every: int = Field(default=8, ge=1)
    # skip the detector on a frame unchanged since the last detected one (an empty scene hardly changed, or the same
    # picture with persons in it); it keeps that frame's detections (schedule.StaticSceneGate)
    skip_static_frames: bool = True

    # tracking and segment selection
    track_buffer_s: float = 3.0  # how long a lost track may be re-found
    # ByteTrack's gate: a detection joins a track when 1 - IoU x score is below it. 0.9 (IoU x score >= 0.1, not
    # ultralytics' 0.8): at 2 samples a second a person crossing a near camera moves most of a body width
    # (benchmarks/README.md, bench_ingest)
    track_match_thresh: float = Field(default=0.9, gt=0, le=1)
    # ... on boxes grown on every side by this many of their own widths and heights per second between samples
    # (0.5 at 2 samples a second, at most 1): a walker (0.8 body heights a second, about 2 body widths) would
    # otherwise leave no overlap between samples and start a new track at each (benchmarks/README.md,
    # "Tracking at 2 samples a second")
    track_box_margin_per_s: float = Field(default=1.0, ge=0)
    segment_max_s: float = 10.0
    crops_per_segment: int = Field(default=3, ge=1)
    # live (vsearch watch): a track's crops stored before its segment closes, at these seconds after it was first
    # seen (the best crop so far each time; at most crops_per_segment - 1), so that it is matched against the
    # watchlists within seconds; the segment's last crop is still chosen among all of its crops when it closes
    live_crop_ages_s: tuple[float, ...] = (1.0, 3.0)
    checkpoint_every_s: float = 60.0  # video seconds between durable commits, taken when nobody is tracked
    checkpoint_max_s: float = 300.0  # ... or after this many video seconds even with people in view
    ingest_lease_s: float = Field(default=60.0, gt=0)  # wall seconds a killed ingest blocks its file for others

    # live streams (vsearch watch): a camera that drops out or does not answer is retried this many times, after
    # stream_backoff_s doubling up to 30 s (1 s, 2 s, ... 30 s: about 3 minutes in all); no data for
    # stream_timeout_s counts as a dropout
    stream_retries: int = Field(default=8, ge=0)
    stream_backoff_s: float = Field(default=1.0, gt=0)
    stream_timeout_s: float = Field(default=10.0, gt=0)

    # embedder
    # the learned ReID model (models/reid/README.md); "reid-mnv2" (its predecessor, 102 identities),
    # "mobilenetv2-imagenet" and "hsv-parts" are baselines
    embedder: str = "reid-g-all"
    embed_batch: int = Field(default=16, ge=1)
    # attribute probabilities per sighting at ingest (vsearch.attributes; free when the embedder is the one the
    # heads read, one more embedding per crop otherwise)
    attributes: bool = True
    # the checkpoint `vsearch adapt` fine-tunes (None: models/reid/<embedder>.pt, written by training beside the
    # shipped model); set by the operator, never by a request
    adapt_base: Path | None = None

    # index: exact search up to this many vectors, then IVF-SQ8, then IVF-PQ (vsearch.index.factory_for; benchmarks/README.md)
    index_flat_max: int = 1_000_000
    # the index partitioned across a Ray cluster (vsearch.partitions): this many shard owners (Ray actors, spread
    # over the cluster's nodes; RAY_ADDRESS, or a local cluster), each holding the time shards of
    # partition_span_minutes (a day) whose number modulo partition_owners is its own; a search asks only the owners
    # its time window touches, and says which time ranges it could not search while an owner is down (restarted
    # by Ray from its saved shards). 0: the whole index in this process (a single machine; no Ray)
    partition_owners: int = Field(default=0, ge=0, le=1024)
    partition_span_minutes: int = Field(default=1440, ge=1)
    # how long a search waits for an owner before answering without its time ranges (flagged as unsearched)
    partition_timeout_s: float = Field(default=5.0, gt=0)

    # search
    # query selection (search.query_crop): the upload is taken whole when it is itself a person crop, i.e. person
    # shaped (height/width >= query_person_min_aspect and longest side <= query_person_max_side_px), or its largest
    # detected person fills >= query_whole_photo_max_fill of its area, or spans >= query_person_min_height_fill of
    # its height and >= query_person_min_width_fill of its width (a tall person in a wide frame is not a crop);
    # otherwise that largest person is cropped out of the photo
    query_whole_photo_max_fill: float = Field(default=0.6, ge=0, le=1)
    query_person_min_height_fill: float = Field(default=0.65, ge=0, le=1)
    query_person_min_width_fill: float = Field(default=0.5, ge=0, le=1)
    query_person_min_aspect: float = Field(default=1.5, gt=0)
    query_person_max_side_px: int = Field(default=640, ge=8)
    # re-ranking of the top candidates inside the filters (vsearch.ranking). Off: on held-out ids and footage
    # k-reciprocal lowers rank-1 everywhere, and aqe raises mAP on crops but lowers rank-5 and does not help on
    # footage (benchmarks/README.md, "Search quality")
    search_rerank: Literal["none", "k-reciprocal", "aqe"] = "none"
    # an image search with a description (search.search): only sightings whose joint probability of it is at least
    # search_attribute_min_p are candidates (inside the index search), and candidates are ranked by appearance +
    # search_attribute_weight x joint probability (0: filter only). On held-out Market identities 0.003 keeps
    # 93-99 % of the person's true matches and 19-49 % of the gallery, and weight 0.1 raises mAP by 2-3 points
    # (training/results/attributes/image_search.json; README "Search by description")
    search_attribute_min_p: float = Field(default=0.003, ge=0, le=1)
    search_attribute_weight: float = Field(default=0.1, ge=0, le=10)
    rerank_top_n: int = Field(default=100, ge=2, le=5000)
    # test-time help (search.test_time_vectors; measured in models/reid/README.md, "Test-time help in search"):
    # search_track_level: candidates compared by their track's mean stored vector, each track returned once, shown
    # by its crop most like the query: on held-out people better on every set, cameras seen in training or not.
    # search_camera_norm: each candidate minus its camera's mean vector (unlabelled), the query minus the mean of
    # every camera's (the mean of the camera's / every camera's latest camera_mean_sample vectors, read again from
    # the catalog once it changed and the cached mean is camera_mean_max_age_s old): beside track-level, +5.1,
    # +3.8 and +1.0 rank-1 on the three leave-one-source-out models' cameras, which they never saw, up to 2.5
    # lower on cameras a model was trained on. On by default: a deployment's cameras are cameras the model never
    # saw. Scores are then cosines of the centred vectors (lower than raw cosines; thresholds on raw vectors,
    # vsearch.embed.THRESHOLDS, are not affected)
    search_track_level: bool = True
    search_camera_norm: bool = True
    # a camera's mean only from a sample of at least camera_norm_min_tracks distinct tracks (else no camera is
    # centred in that search): means from 5 tracks a camera cost 3.3 and 2.0 rank-1 on two of the three held-out
    # sets, from 20 they helped on all three (+2.0, +1.5, +0.3), from 50 by +4.3, +2.7 and +0.8
    # (training/results/testtime/camera_mean_tracks.json)
    camera_norm_min_tracks: int = Field(default=50, ge=1)
    camera_mean_sample: int = Field(default=2000, ge=1)
    camera_mean_max_age_s: float = Field(default=60.0, ge=0)
    # investigator feedback: a rejected sighting's own track and sightings at least this similar to it are demoted
    feedback_reject_similarity: float = Field(default=0.9, ge=-1, le=1)
    # "on which cameras?": each camera's best clip scoring within this margin of the top clip is listed before any
    # camera's second clip (a person's own camera holds many near-identical views that would bury every other
    # camera's: README, "Using it"); 0 keeps pure score order
    camera_spread_margin: float = Field(default=0.2, ge=0, le=2)
    clip_gap_s: float = 4.0  # sightings of one track closer than this merge into one clip
    clip_pad_s: float = 3.0  # seconds of video either side of a clip
    clip_cache_max_bytes: int = Field(default=2 * 1024**3, ge=0)  # rendered clips kept in clips/, LRU evicted

    # API (api/): keys with roles, where server-side footage may be read from, upload limits
    api_keys: list[ApiKey] = Field(default_factory=list)  # env VSEARCH_API_KEYS='[{"name":..,"key":..,"role":..}]'
    footage_root: Path | None = None  # POST /ingest may read server-side paths only inside this folder
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = Field(default=40_000_000, ge=64)  # read from the header, refused before decoding
    max_video_bytes: int = 2 * 1024 * 1024 * 1024

    # retention (vsearch/retention.py): footage and everything derived from it older than this many days is deleted,
    # except what an open case holds (None: kept forever; `vsearch cameras set ID --retention-days N` per camera);
    # `vsearch serve` and `vsearch watch` run it every retention_interval_s (0: only `vsearch retention run`)
    retention_days: float | None = Field(default=None, gt=0)
    retention_interval_s: float = Field(default=3600.0, ge=0)

    # webhooks (vsearch/webhooks.py) may POST only to these hosts: host names (exact, any case) and CIDR networks
    # (an address alone is its own network), env VSEARCH_WEBHOOK_ALLOW="hooks.example.org, 10.20.0.0/16".
    # Empty (the default): no webhook URL is accepted, so no investigator can make the server POST to an internal
    # address (SSRF). At send time the name's resolved addresses are checked again: each must be in a listed
    # network or public (a listed name resolving to loopback, link-local or private space is not sent to)
    webhook_allow: Annotated[tuple[str, ...], NoDecode] = ()

    # access with a reason: a search, a clip view and an export must name a case or give a reason (audited)
    require_reason: bool = False

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _allow_list(cls, v: object) -> object:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            return items
        out = []
        for item in (str(i).strip().lower().rstrip(".") for i in items):
            if not item:
                continue
            if "/" in item or item.replace(".", "").isdigit() or ":" in item:
                try:
                    item = str(ipaddress.ip_network(item.strip("[]"), strict=False))
                except ValueError as e:
                    raise ValueError(f"{item!r} is neither a host name nor a CIDR network ({e})") from None
            elif not all(part and len(part) <= 63 and part.replace("-", "").replace("_", "").isalnum()
                         for part in item.split(".")):  # fmt: skip
                raise ValueError(f"{item!r} is neither a host name nor a CIDR network")
            out.append(item)
        return tuple(out)

    @property
    def audit_log_path(self) -> Path:
        return self.data_dir / "audit.jsonl"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    @property
    def clips_dir(self) -> Path:
        return self.data_dir / "clips"

    @property
    def yolo_config_dir(self) -> Path:
        return self.model_cache_dir / "ultralytics-config"


def load_settings(**values: object) -> Settings:
    """Settings from the environment (and `values`); ConfigError naming the VSEARCH_ variable that is malformed."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        field, *where = (str(p) for p in err["loc"])
        place = f" (item {where[0]}{' ' + '.'.join(where[1:]) if where[1:] else ''})" if where else ""
        got = f", got {err['input']!r}" if not isinstance(err["input"], dict | list) and field != "api_keys" else ""
        raise ConfigError(f"VSEARCH_{field.upper()}{place}: {err['msg']}{got}") from None
    except SettingsError as e:  # a complex value (a list) that is not JSON
        field = str(e).split('"')[1] if '"' in str(e) else "?"
        cause = f" ({e.__cause__})" if e.__cause__ else ""
        raise ConfigError(f"VSEARCH_{field.upper()}: not valid JSON{cause}") from None
