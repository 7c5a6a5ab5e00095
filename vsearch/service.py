"""The one object the CLI, the API and the benchmarks hold: settings, the store and the models, wired once.

Models load lazily on first use; the store opens its index on first use (see store.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vsearch import __version__
from vsearch.attributes import AttributeModel
from vsearch.audit import AuditLog, SearchRecord
from vsearch.casework import Casework, check_cameras
from vsearch.catalog import CameraStats, Catalog, Mark
from vsearch.clips import check_clip_id, clip_id_for_sighting, render_clip, render_thumbnail
from vsearch.config import Settings
from vsearch.describe import Description
from vsearch.detect import PersonDetector
from vsearch.embed import Embedder, make_embedder
from vsearch.errors import IndexStateError, InputError, NotFoundError, VSearchError
from vsearch.find import FindResult, ReindexReport, find, reindex_attributes
from vsearch.ingest import IngestItem, Ingestor, IngestReport, ProgressFn
from vsearch.partitions import open_store
from vsearch.record import RetryPolicy, StopFlag, StreamGap, record_stream
from vsearch.retention import RetentionReport, RetentionSchedule, run_retention
from vsearch.search import (
    MAX_QUERY_IMAGES,
    NO_FEEDBACK,
    Feedback,
    SearchFilters,
    SearchResult,
    decode_image,
    query_crop,
    search,
)
from vsearch.store import Store, open_catalog
from vsearch.types import Sighting
from vsearch.watchlist import Matcher, Watchlists


@dataclass
class WatchResult:
    """What a watch did: one ingest report per recorded segment, and the camera's dropouts, in order."""

    reports: list[IngestReport] = field(default_factory=list)
    gaps: list[StreamGap] = field(default_factory=list)
    detect_gaps: list[StreamGap] = field(default_factory=list)  # the detection substream's dropouts, if it has one
    detect_paired: int = 0  # substream frames detected, each with the main stream's frame of the same instant
    detect_dropped: int = 0  # substream frames with no main-stream frame that close: not detected


class _Either:
    """A stop flag set by the caller's event or tripped from inside (the ingest worker failed)."""

    def __init__(self, stop: StopFlag | None) -> None:
        self._stop: StopFlag = stop or threading.Event()
        self._tripped = threading.Event()

    def trip(self) -> None:
        self._tripped.set()

    def is_set(self) -> bool:
        return self._stop.is_set() or self._tripped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set() and (deadline is None or time.monotonic() < deadline):
            self._tripped.wait(0.1)
        return self.is_set()


class VSearch:
    """vsearch's library facade over one data directory."""

    def __init__(
        self,
        settings: Settings,
        detector: PersonDetector | None = None,
        embedder: Embedder | None = None,
        follow_index: bool = True,
    ):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.detector = detector or PersonDetector(settings)
        catalog = open_catalog(settings)
        self._own_embedder = embedder is None  # the catalog's adapted embedder is followed (vsearch adapt)
        if embedder is None:
            from vsearch.adapt.versions import catalog_embedder

            embedder = catalog_embedder(settings, catalog) or make_embedder(settings)
        # the embedder and its store, swapped together (one assignment) when the catalog's embedder changes
        self._active = (embedder, open_store(settings, catalog, embedder.name, embedder.dim, follow_index))
        self._ingest_lock = threading.Lock()
        self.audit = AuditLog(self.catalog, settings.audit_log_path)  # a table of the catalog, mirrored to audit.jsonl
        self.casework = Casework(self.catalog, settings, self.audit, self.detector)  # cases, routes, exports (vsearch/casework.py)
        # wanted people; the store scores every new sighting against them as it commits it (vsearch/watchlist.py)
        self.watchlists = Watchlists(self.catalog, settings, self.audit, self.casework, self.detector, self.embedder)
        self.store.watcher = self.watchlists.matcher
        self.attributes = AttributeModel(settings, embedder=embedder.name)  # loaded on first use (vsearch/attributes.py)

    @property
    def embedder(self) -> Embedder:
        return self._active[0]

    @property
    def store(self) -> Store:
        return self._active[1]

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    def follow_catalog(self) -> None:
        """Use the embedder whose vectors the catalog holds when `vsearch adapt` (here or on another node) switched
        it: its model is loaded from the data dir and its index opened (built from the catalog) before the swap,
        so a search never runs one embedder's query against the other's vectors."""
        if not self._own_embedder:
            return
        stored = self.catalog.embedders()
        if len(stored) != 1 or stored[0] == self.embedder.name:
            return
        from vsearch.adapt.versions import embedder_named

        embedder = embedder_named(self.settings, self.catalog, stored[0])
        s = self.settings
        store = open_store(s, self.catalog, embedder.name, embedder.dim, self.store.follow)
        # matching goes on with the new embedder; entries embedded with the old one no longer match (not re-embedded)
        store.watcher = Matcher(self.catalog, embedder.name)
        if store.follow:
            store.catch_up()  # opens (builds) the new index now, not in the middle of a search
        self._active = (embedder, store)

    def close(self) -> None:
        self.store.close()

    # -- ingest --------------------------------------------------------------------------------------------
    def ingest(self, items: Sequence[IngestItem], progress: ProgressFn | None = None) -> list[IngestReport]:
        """Ingest each item in turn; one bad file is reported and the rest go on."""
        self.follow_catalog()
        with self._ingest_lock:
            ing = Ingestor(self.settings, self.detector, *self._active, self.attributes if self.settings.attributes else None)
            return [
                ing.ingest(it.path, it.camera_id, it.start_ts_s, progress, it.sample_fps, it.frame_interval_s)
                for it in items
            ]

    def watch(
        self,
        url: str,
        camera_id: str,
        segment_s: float = 60.0,
        max_s: float | None = None,
        stop: threading.Event | None = None,
        on_report: Callable[[IngestReport], None] | None = None,
        detect_url: str | None = None,
    ) -> WatchResult:
        """Record a live stream into segment files under data_dir/recordings/<camera>/ and make its sightings while
        it records (vsearch.live: each sampled frame detected, tracked, embedded and stored as it arrives, a
        track's first crops matched against the watchlists within seconds); `on_report` gets each segment's report
        once its last frame is processed. Runs until the stream ends, `max_s` passes or `stop` is set.

        A network stream that drops out is reconnected (settings.stream_*) and the dropout returned in `gaps`.
        Raises VideoError when the stream cannot be (re)connected within the retry budget, and VSearchError when
        the stream's frames cannot be ingested (recording stops then); either way after every frame recorded was
        handed to ingest.

        `detect_url`: the same camera's low-resolution substream: people are detected and tracked on its frames,
        their boxes mapped to the main stream's frame of the same instant, which is recorded and cropped
        (vsearch.substream). It is reconnected as the main stream is; one lost for good, or whose picture has
        another aspect ratio, ends the watch with a VideoError."""
        from vsearch.live import LiveIngest
        from vsearch.track import SegmentTracker

        s = self.settings
        self.follow_catalog()
        embedder, store = self._active
        # models (and the tracker's library) load before the stream opens, not while its first person walks in
        self.detector.load()
        embedder.load()
        SegmentTracker(s)
        result = WatchResult()
        halt = _Either(stop)

        def report(r: IngestReport) -> None:
            result.reports.append(r)
            if on_report is not None:
                on_report(r)

        live = LiveIngest(s, self.detector, embedder, store, camera_id, report, halt.trip,
                          self.attributes if s.attributes else None, detect_stream=detect_url is not None)  # fmt: skip
        t = threading.Thread(target=live.run, name="vsearch-watch-ingest", daemon=True)
        t.start()
        retry = RetryPolicy(s.stream_retries, s.stream_backoff_s, timeout_s=s.stream_timeout_s)
        sub_stop = _Either(halt)
        sub = None
        if detect_url is not None:
            sub = threading.Thread(target=live.follow_detect_stream, args=(detect_url, retry, sub_stop),
                                   name="vsearch-watch-detect", daemon=True)  # fmt: skip
            sub.start()
        try:
            for seg in record_stream(url, s.data_dir / "recordings" / camera_id, segment_s, max_s, halt, retry, tap=live):
                if isinstance(seg, StreamGap):
                    result.gaps.append(seg)
        finally:
            if sub is not None:
                sub_stop.trip()
                sub.join(s.stream_timeout_s + 1)  # a read blocked on the network ends at the stream's timeout
            live.close()
            t.join()
            if live.pairer is not None:
                result.detect_gaps = list(live.detect_gaps)
                result.detect_paired, result.detect_dropped = live.pairer.paired, live.pairer.dropped
            if live.refused is not None:
                raise live.refused
            if live.error is not None:
                e, path = live.error, live.failed_path
                raise VSearchError(
                    f"ingest of {path} failed ({type(e).__name__}: {e}); recording stopped, the recorded segments"
                    f" are kept in {path.parent if path else s.data_dir / 'recordings' / camera_id}"
                ) from e
        return result

    # -- search --------------------------------------------------------------------------------------------
    def search(
        self,
        images: bytes | Sequence[bytes],
        filters: SearchFilters,
        box: tuple[float, float, float, float] | None = None,
        feedback: Feedback = NO_FEEDBACK,
        marked_by: str = "library",
        record: SearchRecord | None = None,
    ) -> SearchResult:
        """Search with one or several uploaded images of one person (bytes), refined by an investigator's marks
        (stored in the catalog, by `marked_by`). Raises InputError for a non-image or bad filters, NotFoundError
        for a marked sighting that does not exist. `record`: the search's audit entry (vsearch.audit), written
        here with the query images' hashes, what was returned and the outcome, refused ones with the reason, for
        every shell alike; without one (an in-process caller) nothing is audited."""
        audit = self.audit if record is not None else None
        record = record if record is not None else SearchRecord({}, {})
        with record.audited(audit):
            return self._search([images] if isinstance(images, bytes) else list(images), filters, box, feedback,
                                marked_by, record)  # fmt: skip

    def _search(
        self, images: list[bytes], filters: SearchFilters, box: tuple[float, float, float, float] | None,
        feedback: Feedback, marked_by: str, record: SearchRecord,
    ) -> SearchResult:  # fmt: skip
        shas = record.query(images) if images else []  # each query image hashed once: the entry, marks, the result
        self._check_embedder()
        if not 1 <= len(images) <= MAX_QUERY_IMAGES:
            raise InputError(f"expected 1 to {MAX_QUERY_IMAGES} query images, got {len(images)}")
        if box is not None and len(images) > 1:
            raise InputError(f"a box picks the person in one image; got {len(images)} images")
        self._check_cameras(filters.cameras)
        t = time.perf_counter()
        decoded = [decode_image(b, self.settings.max_image_pixels) for b in images]  # refuse a bad image before any model runs
        crops = [query_crop(img, self.detector, self.settings, box) for img in decoded]
        detect_ms = (time.perf_counter() - t) * 1000
        embedder, store = self._active
        model = None
        if filters.description is not None:
            model = self.attributes.name
            if self.catalog.count_attributes(model) == 0:
                raise IndexStateError(f"no sighting has attribute probabilities from {model}: run vsearch "
                                      "reindex-attributes before searching with a description")  # fmt: skip
        result = search(crops, filters, embedder, store, self.settings, feedback, model)
        result.latency_ms = {"query_crop_ms": detect_ms, **result.latency_ms}
        result.query_sha256s = shas
        if feedback:
            sha = ",".join(shas)
            self.catalog.add_marks(
                [Mark(i, "same", sha, marked_by) for i in feedback.confirmed]
                + [Mark(i, "different", sha, marked_by) for i in feedback.rejected]
            )
        record.returned((h.sighting.id for c in result.clips for h in c.sightings), (c.id for c in result.clips))
        return result

    def find(self, description: Description, filters: SearchFilters) -> FindResult:
        """Clips of people matching a description inside the filters, ranked by joint probability (vsearch.find).
        IndexStateError for an empty catalog or one whose sightings have no attributes yet; InputError for an
        unknown camera."""
        self.follow_catalog()
        self._check_cameras(filters.cameras)
        return find(description, filters, self.catalog, self.attributes.name, self.settings)

    def reindex_attributes(self, progress: Callable[[int], None] | None = None) -> ReindexReport:
        """Attribute probabilities for every sighting stored without them (vsearch.find.reindex_attributes)."""
        return reindex_attributes(self.catalog, self.attributes, self.settings.data_dir, progress=progress)

    def _check_cameras(self, cameras: Sequence[str]) -> None:
        """An empty catalog or an unknown camera is an error, never an empty answer (a typo is not "not seen")."""
        if not self.catalog.camera_info():
            raise IndexStateError("the catalog holds no footage yet: ingest some before searching")
        check_cameras(self.catalog, cameras)

    def _check_embedder(self) -> None:
        self.follow_catalog()
        stored = self.catalog.embedders()
        if stored and self.embedder.name not in stored:
            raise IndexStateError(
                f"the catalog holds embeddings of {stored}, not of the configured embedder {self.embedder.name!r}:"
                f" set VSEARCH_EMBEDDER={stored[0]} or re-ingest"
            )

    # -- sightings, clips ------------------------------------------------------------------------------------
    def sighting(self, sighting_id: int) -> Sighting:
        return self.catalog.sighting(sighting_id)

    def clip_id_for(self, sighting_id: int) -> str:
        return clip_id_for_sighting(self.catalog, self.sighting(sighting_id), self.settings)

    def resolve_clip(self, ref: str) -> tuple[str, int]:
        """A clip id (as search returns it) or a sighting id -> (clip id, the sighting that represents the clip)."""
        if ref.isdigit():
            return self.clip_id_for(int(ref)), int(ref)
        video_id, track_id, p0, p1 = check_clip_id(self.catalog, ref, self.settings)
        held = self.catalog.track_sightings(video_id, track_id, p0 - 1e-3, p1 + 1e-3)
        if not held:
            raise NotFoundError(f"no clip {ref}: the catalog holds no sighting of it")
        return ref, held[len(held) // 2].id

    def clip_file(self, clip_id: str) -> Path:
        return render_clip(self.catalog, clip_id, self.settings)

    def crop_file(self, sighting_id: int) -> Path:
        p = self.settings.data_dir / self.sighting(sighting_id).thumb_path
        if not p.exists():
            raise NotFoundError(f"the stored crop of sighting {sighting_id} is missing")
        return p

    def frame_file(self, sighting_id: int) -> Path:
        return render_thumbnail(self.catalog, self.sighting(sighting_id), self.settings)

    # -- retention -------------------------------------------------------------------------------------------
    def retention(self, by: str, dry_run: bool = False, now_s: float | None = None) -> RetentionReport:
        """Delete what has expired, except what open cases hold (vsearch/retention.py); `dry_run`: count only."""
        return run_retention(self.settings, self.store, self.audit, by, dry_run, now_s)

    def retention_schedule(self) -> RetentionSchedule:
        """Retention every settings.retention_interval_s on a thread (serve, watch); stop() it before close()."""
        return RetentionSchedule(lambda: self.retention("retention:schedule"), self.settings.retention_interval_s).start()

    def cameras(self) -> list[CameraStats]:
        return self.catalog.cameras()

    def health(self) -> dict:
        return {
            "version": __version__,
            "index_size": self.store.ntotal,
            "embedder": self.embedder.name,
            "detector_backend": self.settings.detector_backend,
            "models_loaded": {
                "detector": self.detector.loaded,
                "embedder": bool(getattr(self.embedder, "loaded", True)),
            },
        }
