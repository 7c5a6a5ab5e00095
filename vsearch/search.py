"""Query image -> embedding -> filtered index search -> ranked sightings -> clips."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import Catalog
from vsearch.clips import clip_span
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder
from vsearch.errors import InputError
from vsearch.store import IndexFilter, Store
from vsearch.types import Clip, SearchHit, ts_to_iso

MAX_TOP_K = 1000


@dataclass(frozen=True)
class SearchFilters:
    """Which sightings may match: time window (epoch seconds, inclusive), cameras, how many clips, min score."""

    from_ts_s: float | None = None
    to_ts_s: float | None = None
    cameras: tuple[str, ...] = ()
    top_k: int = 20
    min_score: float = -1.0
    upper_color: str | None = None  # e.g. "red": only sightings whose upper-body colour has that name
    lower_color: str | None = None

    def __post_init__(self) -> None:
        from vsearch.colors import COLOR_NAMES

        for part, name in (("upper", self.upper_color), ("lower", self.lower_color)):
            if name is not None and name not in COLOR_NAMES:
                raise InputError(f"unknown {part}-body colour {name!r}; expected one of {', '.join(COLOR_NAMES)}")
        if self.from_ts_s is not None and self.to_ts_s is not None and self.from_ts_s > self.to_ts_s:
            raise InputError(
                f"time window ends before it starts (from {ts_to_iso(self.from_ts_s)} > to {ts_to_iso(self.to_ts_s)})"
            )
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise InputError(f"top_k must be between 1 and {MAX_TOP_K}, got {self.top_k}")
        if not -1.0 <= self.min_score <= 1.0:
            raise InputError(f"min_score is a cosine similarity in [-1, 1], got {self.min_score}")

    @property
    def where(self) -> IndexFilter | None:
        """The part of the filters the index applies (None: every sighting may match)."""
        f = IndexFilter(self.from_ts_s, self.to_ts_s, self.cameras, self.upper_color, self.lower_color)
        return None if f == IndexFilter() else f


@dataclass
class QueryCrop:
    """The person the query is about: the crop that was embedded and where it came from in the uploaded image."""

    crop_rgb: NDArray[np.uint8]
    xyxy: tuple[float, float, float, float]
    source: Literal["whole image", "detected person", "given box"]
    persons: list[tuple[float, float, float, float]] = field(default_factory=list)  # all persons found


@dataclass
class SearchResult:
    query: QueryCrop
    clips: list[Clip]
    hits: list[SearchHit]
    candidates: int  # sightings that passed the filters
    latency_ms: dict[str, float]


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """'x1,y1,x2,y2' (pixels) -> a box; None or '' -> None."""
    if not text:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"expected a box as x1,y1,x2,y2 in pixels, got {text!r}") from None
    return (x1, y1, x2, y2)


def decode_image(data: bytes) -> NDArray[np.uint8]:
    """Bytes of a JPEG/PNG/BMP/WebP image -> BGR array, or InputError saying what arrived."""
    if not data:
        raise InputError("expected an image, got an empty upload")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        head = data[:16]
        raise InputError(f"expected an image (JPEG, PNG, BMP or WebP), got {len(data)} bytes that do not decode as one (starting {head!r})")
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise InputError(f"image too small to hold a person: {img.shape[1]}x{img.shape[0]} pixels")
    return np.asarray(img, np.uint8)


def query_crop(
    image_bgr: NDArray[np.uint8],
    detector: PersonDetector,
    settings: Settings,
    box: tuple[float, float, float, float] | None = None,
) -> QueryCrop:
    """Choose the person to search for: a given box; else the whole image when it is itself a person crop (person
    shaped and small, or its largest detected person spans most of it: a detector's partial box of a crop must not
    replace the crop); else the largest detected person of the photo; else (nobody detected) the whole image."""
    h, w = image_bgr.shape[:2]
    rgb = image_bgr[:, :, ::-1]
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 4 or y2 - y1 < 8:
            raise InputError(f"box {box} lies outside the {w}x{h} image or is too small")
        return QueryCrop(np.ascontiguousarray(rgb[y1:y2, x1:x2]), (x1, y1, x2, y2), "given box")
    dets = detector.detect([image_bgr], conf=settings.detector_conf)[0]
    persons = [tuple(float(v) for v in b) for b in dets.xyxy]
    whole = QueryCrop(np.ascontiguousarray(rgb), (0, 0, w, h), "whole image", persons)  # type: ignore[arg-type]
    if not len(dets) or is_person_crop((w, h), dets.xyxy, settings):
        return whole
    i = int(np.argmax(dets.area))
    x1, y1, x2, y2 = np.clip(np.round(dets.xyxy[i]), 0, [w, h, w, h]).astype(int)
    return QueryCrop(np.ascontiguousarray(rgb[y1:y2, x1:x2]), (x1, y1, x2, y2), "detected person", persons)  # type: ignore[arg-type]


def is_person_crop(size_wh: tuple[int, int], persons_xyxy: NDArray[np.float32], settings: Settings) -> bool:
    """True when an image of this size with these detected persons is itself a crop of one person."""
    w, h = size_wh
    if h / w >= settings.query_person_min_aspect and max(w, h) <= settings.query_person_max_side_px:
        return True
    if not len(persons_xyxy):
        return False
    wh = persons_xyxy[:, 2:] - persons_xyxy[:, :2]
    i = int(np.argmax(wh[:, 0] * wh[:, 1]))
    fills_area = wh[i, 0] * wh[i, 1] >= settings.query_whole_photo_max_fill * w * h
    return bool(fills_area or wh[i, 1] >= settings.query_person_min_height_fill * h)


def search(
    query: QueryCrop,
    filters: SearchFilters,
    embedder: Embedder,
    store: Store,
    settings: Settings,
) -> SearchResult:
    """Embed the query crop and return the best clips inside the filters (filter applied inside FAISS)."""
    lat: dict[str, float] = {}
    t = time.perf_counter()
    qvec = embedder.embed([query.crop_rgb])[0]
    lat["embed_ms"] = (time.perf_counter() - t) * 1000
    # several crops per track segment: fetch enough vectors to fill top_k distinct clips
    k = filters.top_k * settings.crops_per_segment * 4
    t = time.perf_counter()
    found = store.search(qvec, k, filters.where)
    lat["search_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    scores, ids = found.scores, found.ids
    keep = scores >= filters.min_score
    catalog = store.catalog
    sightings = catalog.sightings(ids[keep].tolist())
    hits = [SearchHit(sightings[int(i)], float(sc)) for sc, i in zip(scores[keep], ids[keep]) if int(i) in sightings]
    clips = group_clips(hits, catalog, settings)[: filters.top_k]
    kept = {h.sighting.id for c in clips for h in c.sightings}
    lat["group_ms"] = (time.perf_counter() - t) * 1000
    return SearchResult(query, clips, [h for h in hits if h.sighting.id in kept], found.candidates, lat)


def group_clips(hits: list[SearchHit], catalog: Catalog, settings: Settings) -> list[Clip]:
    """Merge hits of one track that fall in one continuous presence on camera into a clip; best clip first."""
    by_track: dict[tuple[int, int], list[SearchHit]] = defaultdict(list)
    for h in hits:
        by_track[(h.sighting.video_id, h.sighting.track_id)].append(h)
    clips: list[Clip] = []
    for (video_id, track_id), track_hits in by_track.items():
        boxes = catalog.track_boxes(video_id, track_id)
        start_ts_s = track_hits[0].sighting.ts_s - track_hits[0].sighting.pts_s
        spans: dict[tuple[float, float], list[SearchHit]] = defaultdict(list)
        for h in track_hits:
            spans[clip_span(boxes, h.sighting.pts_s, settings)].append(h)
        for (p0, p1), hs in spans.items():
            hs.sort(key=lambda h: -h.score)
            best = hs[0].sighting
            clips.append(
                Clip(
                    id=f"{video_id}-{track_id}-{round(p0 * 1000)}-{round(p1 * 1000)}",
                    camera_id=best.camera_id, video_id=video_id, video_path=best.video_path, track_id=track_id,
                    start_ts_s=start_ts_s + p0, end_ts_s=start_ts_s + p1, start_pts_s=p0, end_pts_s=p1,
                    score=hs[0].score, best=best, sightings=tuple(hs),
                )  # fmt: skip
            )
    clips.sort(key=lambda c: -c.score)
    return clips
