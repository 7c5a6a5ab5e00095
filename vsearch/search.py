"""Query image -> embedding -> filtered index search -> ranked sightings -> clips."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from vsearch import images
from vsearch.catalog import Catalog
from vsearch.catalog.attributes import AttributeFilter, Term
from vsearch.clips import track_clip
from vsearch.config import MAX_TOP_K, Settings
from vsearch.describe import Description
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder
from vsearch.errors import InputError, NotFoundError
from vsearch.ranking import fuse_mean, fused_scores, near_duplicates, rerank_scores, rescore
from vsearch.store import IndexFilter, Store
from vsearch.types import Clip, SearchHit, Sighting, ts_to_iso


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
    description: Description | None = None  # attributes (vsearch.describe): filter and re-rank (search())

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
        if not -1.0 <= self.min_score <= 1.0:  # also refuses nan
            raise InputError(f"min_score is a cosine similarity in [-1, 1], got {self.min_score}")

    @property
    def where(self) -> IndexFilter | None:
        """The part of the filters the index applies (None: every sighting may match)."""
        f = IndexFilter(self.from_ts_s, self.to_ts_s, self.cameras, self.upper_color, self.lower_color)
        return None if f == IndexFilter() else f

    def index_filter(self, attribute_model: str | None, min_p: float) -> IndexFilter | None:
        """`where` with the description's filter (its joint probability under `attribute_model` >= `min_p`)."""
        if self.description is None:
            return self.where
        if attribute_model is None:
            raise InputError("a search with a description needs the catalog's attribute model")
        f = AttributeFilter(attribute_model, tuple(self.description.terms()), min_p)
        return replace(self.where or IndexFilter(), attributes=f)


def parse_cameras(values: Sequence[str] | None) -> tuple[str, ...]:
    """Camera ids from repeated and/or comma-separated values (`--camera a,b`, `cameras=a,b`), in order, without
    blanks or repeats."""
    ids = (c.strip() for v in values or () for c in v.split(","))
    return tuple(dict.fromkeys(c for c in ids if c))


@dataclass
class QueryCrop:
    """The person the query is about: the crop that was embedded and where it came from in the uploaded image."""

    crop_rgb: NDArray[np.uint8]
    xyxy: tuple[float, float, float, float]
    source: Literal["whole image", "detected person", "given box"]
    persons: list[tuple[float, float, float, float]] = field(default_factory=list)  # all persons found


MAX_MARKS = 200  # confirmed plus rejected sightings in one refinement
MAX_QUERY_IMAGES = 16  # images of one person in one search


@dataclass(frozen=True)
class Feedback:
    """An investigator's marks on earlier results: sightings confirmed as the person searched for ("same person"),
    and sightings rejected ("not this person")."""

    confirmed: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        bad = [i for i in (*self.confirmed, *self.rejected) if not 0 < i < 2**63]
        if bad:
            raise InputError(f"sighting ids are positive 64-bit integers, got {bad[:5]}")
        both = sorted(set(self.confirmed) & set(self.rejected))
        if both:
            raise InputError(f"sightings {both} are both confirmed and rejected")
        if len(self.confirmed) + len(self.rejected) > MAX_MARKS:
            raise InputError(f"at most {MAX_MARKS} marked sightings per search, got {len(self.confirmed) + len(self.rejected)}")

    def __bool__(self) -> bool:
        return bool(self.confirmed or self.rejected)


NO_FEEDBACK = Feedback()


@dataclass
class SearchResult:
    queries: list[QueryCrop]  # one per query image, in upload order
    clips: list[Clip]
    hits: list[SearchHit]
    candidates: int  # sightings that passed the filters
    latency_ms: dict[str, float]
    demoted: int = 0  # hits pushed below the others as rejected or near-duplicates of a rejected sighting
    query_sha256s: list[str] = field(default_factory=list)  # of the query images, in order (Service.search)
    # time ranges (epoch s, [from, to); None: open) of the filters that were not searched: a shard owner of a
    # partitioned index was down (vsearch.partitions). Empty: every sighting in the filters was searched
    unsearched: tuple[tuple[float | None, float | None], ...] = ()

    @property
    def query(self) -> QueryCrop:
        """The first query image's crop."""
        return self.queries[0]


def sighting_to_dict(s: Sighting, score: float | None = None, clip_id: str | None = None) -> dict[str, Any]:
    """A sighting as plain JSON-able data (no server path): the one shape of the CLI's --json and the API's body."""
    return {
        "id": s.id, "camera_id": s.camera_id, "video_id": s.video_id, "track_id": s.track_id, "time": s.time_iso,
        "ts_s": s.ts_s, "pts_s": s.pts_s, "box_xyxy": [float(v) for v in s.xyxy], "confidence": s.confidence,
        "upper_color": s.upper_color, "lower_color": s.lower_color, "clip_id": clip_id, "score": score,
    }  # fmt: skip


def result_to_dict(r: SearchResult) -> dict[str, Any]:
    """A search result as plain JSON-able data, the one shape of the CLI's --json and the API's body.
    No server path: a clip names its video by id."""
    queries = [
        {"source": q.source, "box_xyxy": [float(v) for v in q.xyxy], "persons_xyxy": [list(p) for p in q.persons],
         "image_sha256": sha}
        for q, sha in zip(r.queries, r.query_sha256s, strict=True)
    ]  # fmt: skip
    return {
        "query": queries[0], "queries": queries, "demoted": r.demoted, "candidates": r.candidates,
        "latency_ms": {k: round(v, 2) for k, v in r.latency_ms.items()},
        "clips": [clip_to_dict(c) for c in r.clips], "unsearched": unsearched_to_list(r.unsearched),
    }  # fmt: skip


def unsearched_to_list(ranges: Sequence[tuple[float | None, float | None]]) -> list[dict[str, Any]]:
    """Time ranges not searched as plain data: ISO times and epoch seconds, [from, to), None for an open end."""
    return [{"from": None if f is None else ts_to_iso(f), "to": None if t is None else ts_to_iso(t),
             "from_ts_s": f, "to_ts_s": t} for f, t in ranges]  # fmt: skip


def clip_to_dict(c: Clip) -> dict[str, Any]:
    """A ranked clip as plain JSON-able data (image and description search alike)."""
    return {
        "id": c.id, "camera_id": c.camera_id, "video_id": c.video_id, "track_id": c.track_id, "score": c.score,
        "start": ts_to_iso(c.start_ts_s), "end": ts_to_iso(c.end_ts_s), "start_ts_s": c.start_ts_s,
        "end_ts_s": c.end_ts_s, "duration_s": c.duration_s, "best": sighting_to_dict(c.best, c.score, c.id),
        "sightings": [sighting_to_dict(h.sighting, h.score, c.id) for h in c.sightings],
    }  # fmt: skip


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """'x1,y1,x2,y2' (pixels) -> a box; None or '' -> None."""
    if not text:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"expected a box as x1,y1,x2,y2 in pixels, got {text!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise InputError(f"a box is x1,y1,x2,y2 in pixels, finite numbers; got {text!r}")
    return (x1, y1, x2, y2)


def decode_image(data: bytes, max_pixels: int) -> NDArray[np.uint8]:
    """Bytes of a JPEG/PNG/BMP/WebP image -> BGR array, its size checked against `max_pixels` before decoding
    (vsearch.images)."""
    return images.decode_image(data, max_pixels)


def query_crop(
    image_bgr: NDArray[np.uint8],
    detector: PersonDetector,
    settings: Settings,
    box: tuple[float, float, float, float] | None = None,
) -> QueryCrop:
    """Choose the person to search for: a given box; else the whole image when it is itself a person crop (person
    shaped and small: then no detector runs and `persons` is empty; or its largest detected person spans most of
    it: a detector's partial box of a crop must not replace the crop); else the largest detected person of the
    photo; else (nobody detected) the whole image."""
    h, w = image_bgr.shape[:2]
    rgb = image_bgr[:, :, ::-1]
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 4 or y2 - y1 < 8:
            raise InputError(f"box {box} lies outside the {w}x{h} image or is too small")
        return QueryCrop(np.ascontiguousarray(rgb[y1:y2, x1:x2]), (x1, y1, x2, y2), "given box")
    if is_person_shaped((w, h), settings):  # a crop already: no detector to load (persons stays empty)
        return QueryCrop(np.ascontiguousarray(rgb), (0, 0, w, h), "whole image")
    dets = detector.detect([image_bgr], conf=settings.detector_conf)[0]
    persons = [tuple(float(v) for v in b) for b in dets.xyxy]
    whole = QueryCrop(np.ascontiguousarray(rgb), (0, 0, w, h), "whole image", persons)  # type: ignore[arg-type]
    if not len(dets) or is_person_crop((w, h), dets.xyxy, settings):
        return whole
    i = int(np.argmax(dets.area))
    x1, y1, x2, y2 = np.clip(np.round(dets.xyxy[i]), 0, [w, h, w, h]).astype(int)
    return QueryCrop(np.ascontiguousarray(rgb[y1:y2, x1:x2]), (x1, y1, x2, y2), "detected person", persons)  # type: ignore[arg-type]


def is_person_shaped(size_wh: tuple[int, int], settings: Settings) -> bool:
    """True when an image of this size is a person crop by its shape alone: tall and small."""
    w, h = size_wh
    return h / w >= settings.query_person_min_aspect and max(w, h) <= settings.query_person_max_side_px


def is_person_crop(size_wh: tuple[int, int], persons_xyxy: NDArray[np.float32], settings: Settings) -> bool:
    """True when an image of this size with these detected persons is itself a crop of one person."""
    w, h = size_wh
    if is_person_shaped(size_wh, settings):
        return True
    if not len(persons_xyxy):
        return False
    wh = persons_xyxy[:, 2:] - persons_xyxy[:, :2]
    i = int(np.argmax(wh[:, 0] * wh[:, 1]))
    fills_area = wh[i, 0] * wh[i, 1] >= settings.query_whole_photo_max_fill * w * h
    spans = wh[i, 1] >= settings.query_person_min_height_fill * h and wh[i, 0] >= settings.query_person_min_width_fill * w
    return bool(fills_area or spans)


def search(
    queries: QueryCrop | Sequence[QueryCrop],
    filters: SearchFilters,
    embedder: Embedder,
    store: Store,
    settings: Settings,
    feedback: Feedback = NO_FEEDBACK,
    attribute_model: str | None = None,
) -> SearchResult:
    """Embed the query crops (several images of one person) and return the best clips inside the filters.

    The images are fused into one vector (the mean of their embeddings: better than the max of similarities on
    held-out PKU ids, benchmarks/eval_search.py); each confirmed sighting stands beside it, and a candidate scores
    its best similarity to any of them. Candidates come from filtered index searches (filter inside FAISS); with
    `settings.search_rerank` the top `rerank_top_n` of them are re-ranked among themselves, never past the filter.
    With `search_track_level` they are scored by their tracks' mean vectors and each track is returned once; with
    `search_camera_norm` each camera's mean vector is taken out first (test_time_vectors).
    Rejected sightings, the rest of their tracks and near-duplicates of them are ranked after all others.
    With a description (`filters.description`, probabilities of `attribute_model`) only sightings whose joint
    probability is at least `settings.search_attribute_min_p` are candidates (inside the index search, like the
    colours), and they score appearance + `search_attribute_weight` x joint probability.
    Raises NotFoundError when a marked sighting does not exist.
    """
    crops = [queries] if isinstance(queries, QueryCrop) else list(queries)
    if not crops:
        raise InputError("expected at least one query image")
    lat: dict[str, float] = {}
    t = time.perf_counter()
    catalog = store.catalog
    confirmed = marked_vectors(catalog, feedback.confirmed, "confirmed", embedder.dim)
    rejected = marked_vectors(catalog, feedback.rejected, "rejected", embedder.dim)
    qset = np.vstack([fuse_mean(embedder.embed([q.crop_rgb for q in crops]))[None, :], confirmed])
    lat["embed_ms"] = (time.perf_counter() - t) * 1000
    # several crops per track segment: fetch enough vectors to fill top_k distinct clips
    k = filters.top_k * settings.crops_per_segment * 4
    t = time.perf_counter()
    where = filters.index_filter(attribute_model, settings.search_attribute_min_p)
    found = [store.search(v, k, where) for v in qset]
    lat["search_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    ids, scores = found[0].ids, found[0].scores
    rerank = settings.search_rerank
    helped = settings.search_track_level or settings.search_camera_norm
    if len(qset) > 1 or rerank != "none" or len(rejected) or helped:
        # rescore the union of the candidates exactly, from their stored vectors (work grows with k, not the index)
        ids, vecs = catalog.embeddings(np.unique(np.concatenate([f.ids for f in found])))
        qv, gv = qset, vecs
        if helped and len(ids):
            qv, gv = test_time_vectors(qset, feedback.confirmed, ids, vecs, store, settings)
        scores = fused_scores(qv, gv, "max") if len(ids) else np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")
        if settings.search_track_level and len(ids):  # each track once, shown by its crop most like the query
            order = one_per_track(order, ids, fused_scores(qset, vecs, "max"), catalog)
        ids, vecs, gv, scores = ids[order], vecs[order], gv[order], scores[order]
        keep = scores >= filters.min_score
        ids, vecs, gv, scores = ids[keep], vecs[keep], gv[keep], scores[keep]
        if rerank != "none" and len(ids):
            n = max(settings.rerank_top_n, filters.top_k * settings.crops_per_segment)
            ids, vecs, gv = ids[:n], vecs[:n], gv[:n]
            scores = rerank_scores(qv, gv, "max", rerank)
            order = np.argsort(-scores, kind="stable")
            ids, vecs, scores = ids[order], vecs[order], scores[order]
        dup = near_duplicates(vecs, rejected, settings.feedback_reject_similarity)
    else:
        keep = scores >= filters.min_score
        ids, scores = ids[keep], scores[keep]
        dup = np.zeros(len(ids), bool)
    if filters.description is not None and attribute_model is not None and settings.search_attribute_weight > 0:
        scores = scores + settings.search_attribute_weight * joint_probability(
            catalog, attribute_model, filters.description.terms(), ids)
        order = np.argsort(-scores, kind="stable")
        ids, scores, dup = ids[order], scores[order], dup[order]
    sightings = catalog.sightings(ids.tolist())
    hits = [SearchHit(sightings[int(i)], float(sc)) for sc, i in zip(scores, ids) if int(i) in sightings]
    demote = {int(i) for i, d in zip(ids, dup) if d} | set(feedback.rejected)
    if feedback.rejected:
        tracks = {(x.video_id, x.track_id) for x in catalog.sightings(feedback.rejected).values()}
        demote |= {h.sighting.id for h in hits if (h.sighting.video_id, h.sighting.track_id) in tracks}
    kept = [h for h in hits if h.sighting.id not in demote]
    pushed = [h for h in hits if h.sighting.id in demote]
    clips = spread_cameras(group_clips(kept, catalog, settings), settings.camera_spread_margin)
    clips = (clips + group_clips(pushed, catalog, settings))[: filters.top_k]
    shown = {h.sighting.id for c in clips for h in c.sightings}
    lat["group_ms"] = (time.perf_counter() - t) * 1000
    unsearched = tuple(sorted({r for f in found for r in f.unsearched}, key=lambda r: (r[0] or -1e300, r[1] or 1e300)))
    return SearchResult(
        crops, clips, [h for h in hits if h.sighting.id in shown], found[0].candidates, lat, len(shown & demote),
        unsearched=unsearched,
    )


def joint_probability(
    catalog: Catalog, model: str, terms: Sequence[Term], ids: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Each sighting's joint probability of `terms` under attribute `model` (0 without its probabilities), as
    the catalog's statement computes it (Term.sql)."""
    from vsearch.attributes import COLUMNS

    stored = catalog.attributes(ids.tolist())
    out = np.zeros(len(ids), np.float32)
    for n, i in enumerate(ids.tolist()):
        if i in stored and stored[i][0] == model:
            p = stored[i][1]
            out[n] = np.prod([1 - p[[COLUMNS.index(c) for c in t.columns]].sum() if t.negated
                              else p[[COLUMNS.index(c) for c in t.columns]].sum() for t in terms])  # fmt: skip
    return out


def test_time_vectors(
    qset: NDArray[np.float32],
    confirmed: Sequence[int],
    ids: NDArray[np.int64],
    vecs: NDArray[np.float32],
    store: Store,
    settings: Settings,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The query rows and the candidates' rows as the test-time help compares them (vsearch.ranking.rescore):
    with `search_track_level` each candidate by its track's mean stored vector; with `search_camera_norm` each
    candidate minus its camera's mean (Store.camera_means), each confirmed sighting (rows 1.. of `qset`) minus
    its own camera's, and the uploaded images (row 0), which have no camera, minus the mean of every camera's
    latest vectors (better than leaving them as they are: models/reid/README.md, "Test-time help in search");
    only when every one of those cameras' means comes from at least `camera_norm_min_tracks` tracks, otherwise
    no camera's."""
    catalog = store.catalog
    seen = catalog.sightings([*ids.tolist(), *confirmed])
    at = [seen[int(i)] for i in ids]
    tracks = None
    if settings.search_track_level:
        means = catalog.track_vectors(store.embedder, {(x.video_id, x.track_id) for x in at})
        tracks = np.stack([means.get((x.video_id, x.track_id), v) for x, v in zip(at, vecs)])
    cams = qcams = None
    if settings.search_camera_norm:
        marked = [seen[i].camera_id for i in sorted(set(confirmed)) if i in seen]  # marked_vectors' order
        wanted = [None, *(x.camera_id for x in at), *marked]
        cm = store.camera_means(wanted, settings.camera_mean_sample, settings.camera_mean_max_age_s,
                                settings.camera_norm_min_tracks)  # fmt: skip
        if all(c in cm for c in wanted):  # all or none: a centred score and a raw one are not comparable
            cams = np.stack([cm[x.camera_id] for x in at])
            qcams = np.stack([cm[None], *(cm[c] for c in marked)])
    return rescore(qset, vecs, tracks, cams, qcams)


def one_per_track(
    order: NDArray[np.int64], ids: NDArray[np.int64], raw: NDArray[np.float32], catalog: Catalog
) -> NDArray[np.int64]:
    """`order` (positions into `ids`, best first) keeping one position per track: its candidate most like the
    query by its own crop (`raw`), at the track's place."""
    seen = catalog.sightings(ids.tolist())
    best: dict[tuple[int, int], int] = {}
    for p in order.tolist():
        x = seen[int(ids[p])]
        key = (x.video_id, x.track_id)
        if key not in best or raw[p] > raw[best[key]]:
            best[key] = p
    firsts = list(dict.fromkeys((seen[int(ids[p])].video_id, seen[int(ids[p])].track_id) for p in order.tolist()))
    return np.array([best[k] for k in firsts], np.int64)


def marked_vectors(catalog: Catalog, ids: Sequence[int], what: str, dim: int) -> NDArray[np.float32]:
    """The stored embeddings of marked sightings (n, d); NotFoundError naming the ids that do not exist."""
    if not ids:
        return np.zeros((0, dim), np.float32)
    got, vecs = catalog.embeddings(np.array(sorted(set(ids)), np.int64))
    missing = sorted(set(ids) - set(got.tolist()))
    if missing:
        raise NotFoundError(f"{what} sightings {missing} do not exist")
    return vecs


def spread_cameras(clips: list[Clip], margin: float) -> list[Clip]:
    """Clips (best first) reordered so that the best clip of each camera scoring within `margin` of the top clip
    comes before every camera's second clip; the rest keep score order."""
    if not clips or margin <= 0:
        return clips
    firsts: dict[str, Clip] = {}
    for c in clips:
        if c.score >= clips[0].score - margin:
            firsts.setdefault(c.camera_id, c)
    lead = {id(c) for c in firsts.values()}
    return list(firsts.values()) + [c for c in clips if id(c) not in lead]


def group_clips(hits: list[SearchHit], catalog: Catalog, settings: Settings) -> list[Clip]:
    """Merge hits of one track that fall in one continuous presence on camera into a clip; best clip first."""
    by_track: dict[tuple[int, int], list[SearchHit]] = defaultdict(list)
    for h in hits:
        by_track[(h.sighting.video_id, h.sighting.track_id)].append(h)
    clips: list[Clip] = []
    for (video_id, track_id), track_hits in by_track.items():
        boxes = catalog.track_boxes(video_id, track_id)
        start_ts_s = track_hits[0].sighting.ts_s - track_hits[0].sighting.pts_s
        spans: dict[tuple[str, float, float], list[SearchHit]] = defaultdict(list)
        for h in track_hits:
            spans[track_clip(video_id, track_id, boxes, h.sighting.pts_s, settings)].append(h)
        for (clip_id, p0, p1), hs in spans.items():
            hs.sort(key=lambda h: -h.score)
            best = hs[0].sighting
            clips.append(
                Clip(
                    id=clip_id,
                    camera_id=best.camera_id, video_id=video_id, video_path=best.video_path, track_id=track_id,
                    start_ts_s=start_ts_s + p0, end_ts_s=start_ts_s + p1, start_pts_s=p0, end_pts_s=p1,
                    score=hs[0].score, best=best, sightings=tuple(hs),
                )  # fmt: skip
            )
    clips.sort(key=lambda c: -c.score)
    return clips
