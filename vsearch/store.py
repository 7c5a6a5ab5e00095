"""Sightings in; the catalog and the vector index kept consistent; filtered search out.

The one owner of the invariant "the index holds exactly the catalog's sightings of this embedder". The catalog
commits first and logs every addition and removal with a sequence number; the index follows the log, in this
process (right after its own commits) and from other processes' commits (before each search, one cheap
`last_seq` query). The index file is saved with a small metadata file (the log sequence it reflects, its size and
sha256), at the end of each ingested file and on close, not at every checkpoint: after a crash the index loads
at its saved sequence and replays the log from there. An index file that does not match its metadata (torn
write, bit rot, another embedder) is rebuilt from the catalog, never trusted.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import Catalog, Checkpoint, NewSighting, PostgresCatalog, SqliteCatalog
from vsearch.catalog.attributes import AttributeFilter
from vsearch.config import Settings
from vsearch.errors import IndexStateError
from vsearch.faults import kill_point
from vsearch.ids import Window
from vsearch.index import FLAT_MAX_VECTORS, VectorIndex, factory_for
from vsearch.types import IdSet
from vsearch.weights import sha256_file


def write_json_atomic(path: Path, obj: object) -> None:
    """Write JSON to a temp file beside `path` (named .index.*: removed at the next open if a crash leaves it),
    fsync, rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=".index.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def open_catalog(settings: Settings) -> Catalog:
    """The catalog the settings name: PostgreSQL at `catalog_url`, else the SQLite file in the data dir."""
    if settings.catalog_url:
        return PostgresCatalog(settings.catalog_url)  # psycopg is loaded only here
    return SqliteCatalog(settings.catalog_path)


def apply_changes(index: VectorIndex, ops: Sequence[tuple[int, NDArray[np.float32] | None]]) -> None:
    """Apply change-log entries (Changes.ops: a vector for an addition, None for a removal) to an index, in log
    order; runs of additions and of removals each in one call. Replaying an entry already applied is harmless."""
    adds: list[tuple[int, NDArray[np.float32]]] = []
    removals: list[int] = []
    for sid, vec in ops:
        if vec is not None:
            if removals:
                index.remove(np.array(removals, np.int64))
                removals = []
            adds.append((sid, vec))
        else:
            _add(index, adds)
            adds = []
            removals.append(sid)
    _add(index, adds)
    if removals:
        index.remove(np.array(removals, np.int64))


def _add(index: VectorIndex, adds: list[tuple[int, NDArray[np.float32]]]) -> None:
    if adds:
        ids = np.array([a[0] for a in adds], np.int64)
        index.remove(ids)  # replaying an entry already applied must not store a vector twice
        index.add(ids, np.stack([a[1] for a in adds]))


class SightingWatcher(Protocol):
    """Called inside the transaction that stores new sightings (vsearch.watchlist.Matcher): what it writes commits
    with them, or not at all."""

    def match(self, video_id: int, ids: Sequence[int], sightings: Sequence[NewSighting]) -> list[int]: ...


@dataclass(frozen=True)
class IndexFilter:
    """Which sightings a search may return: time window (epoch seconds, inclusive), cameras, clothing colours,
    attributes."""

    from_ts_s: float | None = None
    to_ts_s: float | None = None
    cameras: tuple[str, ...] = ()
    upper_color: str | None = None
    lower_color: str | None = None
    attributes: AttributeFilter | None = None  # a description's joint probability at least a threshold


@dataclass(frozen=True)
class Matches:
    """The nearest sightings to a query inside a filter, best first."""

    scores: NDArray[np.float32]
    ids: NDArray[np.int64]
    candidates: int  # sightings that passed the filter
    # time ranges (epoch s, inclusive; None: open) of the filter that were not searched: a partitioned index's
    # shard owner was down (vsearch.partitions). Empty: the answer is complete
    unsearched: tuple[tuple[float | None, float | None], ...] = ()


class Searchable(Protocol):
    """What a filtered search runs on: the in-process VectorIndex, or a fan-out to shard owners."""

    @property
    def ntotal(self) -> int: ...

    def search(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...


class Store:
    """The catalog and the vector index of one embedder, kept consistent. Thread-safe."""

    def __init__(
        self,
        catalog: Catalog,
        index_dir: Path,
        embedder: str,
        dim: int,
        flat_max: int = FLAT_MAX_VECTORS,
        follow: bool = True,
    ) -> None:
        self.catalog = catalog
        self.follow = follow  # False: an ingest worker that only writes; the index is followed where searches run
        self.embedder = embedder
        self.dim = dim
        self.flat_max = flat_max
        self.index_path = Path(index_dir) / f"{embedder}.faiss"
        self.meta_path = self.index_path.with_suffix(".json")
        self._index: VectorIndex | None = None
        self._seq = 0  # the catalog log sequence the in-memory index reflects
        self._lock = threading.RLock()
        self.watcher: SightingWatcher | None = None  # scores new sightings against the watchlists
        # (camera or None for all, sample) -> (mean vector or None, the log sequence and the monotonic time it was
        # computed at)
        self._camera_means: dict[tuple[str | None, int], tuple[NDArray[np.float32] | None, int, int, float]] = {}
        self._camera_lock = threading.Lock()

    # -- writes: catalog first, then the index follows ------------------------------------------------------
    def commit_chunk(self, video_id: int, cp: Checkpoint, owner: str | None = None) -> list[int]:
        """Commit one ingest checkpoint to the catalog (see Catalog.commit_chunk) and bring the index up to date;
        at the end of a file (`done`) the index is saved too. Returns the new sighting ids. The watcher's alerts
        about these sightings are written in the same transaction."""
        with self.catalog.transaction():
            ids = self.catalog.commit_chunk(video_id, cp, owner)
            if self.watcher is not None and ids:
                self.watcher.match(video_id, ids, cp.sightings)
                kill_point("store.watch")
        kill_point("store.commit_chunk")
        if not self.follow:
            return ids
        with self._lock:
            self.catch_up()
            if cp.done:
                self.save()
        return ids

    def delete_video(self, video_id: int) -> list[int]:
        """Remove a video and its sightings from the catalog and the index; returns the removed ids."""
        ids = self.catalog.delete_video(video_id)
        with self._lock:
            self.catch_up()
            self.save()
        return ids

    # -- expiry (vsearch/retention.py): removals inside the caller's transaction (with its audit entry), logged by
    # the catalog; the index follows them after the commit (follow_removals), as it follows any other process's
    def expire_video(self, video_id: int) -> tuple[int, int, list[str]]:
        """Delete an expired video and its rows; (sightings, track boxes, their crops' paths)."""
        return self.catalog.delete_expired_video(video_id)

    def expire_sightings(self, ids: Sequence[int]) -> int:
        """Delete expired sightings; how many there were."""
        return self.catalog.delete_sightings(ids)

    def expire_day(self, day: int) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Drop a whole expired UTC day (PostgreSQL's partitions); (sightings, track boxes, crops) per camera."""
        return self.catalog.drop_expired_day(day)

    def follow_removals(self) -> None:
        """After the commit of expiries: the index drops them now (saved at the end of the run, save_if_followed)."""
        if self.follow:
            with self._lock:
                self.catch_up()

    def save_if_followed(self) -> None:
        if self.follow:
            with self._lock:
                self.catch_up()
                self.save()

    # -- reads --------------------------------------------------------------------------------------------------
    @property
    def index(self) -> VectorIndex:
        """The index, opened on first use and caught up with every commit made so far (by any process)."""
        with self._lock:
            if self._index is None:
                self._open()
            else:
                self.catch_up()
            assert self._index is not None
            return self._index

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, query: NDArray[np.float32], k: int, where: IndexFilter | None = None) -> Matches:
        """Top-k sightings by cosine similarity; the filter is applied inside the FAISS search."""
        return self._search_on(self.index, query, k, where)

    def _search_on(
        self, index: Searchable, query: NDArray[np.float32], k: int, where: IndexFilter | None
    ) -> Matches:
        allowed = None
        if where is not None:
            allowed = self.catalog.select(
                self.embedder, where.from_ts_s, where.to_ts_s, where.cameras or None, where.upper_color,
                where.lower_color, where.attributes,
            )  # fmt: skip
        if allowed is not None and allowed.partial and where is not None:
            scores, ids = self._inside_window(index, query, k, allowed, where)
        else:
            scores, ids = index.search(query, k, allowed)
        return Matches(scores, ids, index.ntotal if allowed is None else min(allowed.count, index.ntotal))

    def camera_means(
        self, cameras: Iterable[str | None], sample: int, max_age_s: float, min_tracks: int = 1
    ) -> dict[str | None, NDArray[np.float32]]:
        """Each camera's mean stored vector (not normalised): what the camera adds to everyone it sees, taken out
        by search.py's per-camera normalisation. Derived from the catalog, never stored apart from it: the mean
        of the camera's latest `sample` vectors of this store's embedder, cached, and read again once the
        catalog's log has moved since and the cached mean is `max_age_s` old (0: at every change). So sightings
        added or removed reach it, and a switch of embedder (a new Store) starts afresh. Cameras holding no vector
        are left out, and so are cameras whose sample comes from fewer than `min_tracks` distinct tracks: a mean
        over a few people is theirs, not the camera's. Camera None: every camera's latest `sample` vectors (what
        an uploaded query, which has no camera, is centred by). Work per call: one cheap `last_seq` query, plus
        `sample` vectors per camera read again."""
        now = time.monotonic()
        out: dict[str | None, NDArray[np.float32]] = {}
        seq: int | None = None
        with self._camera_lock:
            for cam in dict.fromkeys(cameras):
                cached = self._camera_means.get((cam, sample))
                if cached is None or now - cached[3] >= max_age_s:
                    seq = self.catalog.last_seq() if seq is None else seq
                    if cached is None or cached[2] != seq:
                        vecs, tracks = self.catalog.camera_sample(self.embedder, cam, sample)
                        mean = vecs.astype(np.float64).mean(0).astype(np.float32) if len(vecs) else None
                        cached = (mean, tracks, seq, now)
                    else:
                        cached = (cached[0], cached[1], seq, now)
                    self._camera_means[(cam, sample)] = cached
                if cached[0] is not None and cached[1] >= min_tracks:
                    out[cam] = cached[0]
        return out

    def _inside_window(
        self, index: Searchable, query: NDArray[np.float32], k: int, allowed: IdSet, where: IndexFilter
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The index searches the window's first and last minutes whole: drop what it returns from them outside
        the window, by the catalog's times, asking for more while fewer than k remain (exact: the best k inside
        the window are among the best k + dropped of its minutes). It is asked for k x spanned / count (+ 20 %)
        at first, so that a second search is rare: it costs as much as the first (benchmarks/README.md)."""
        window = Window(where.from_ts_s, where.to_ts_s)
        asked = k
        if allowed.count > 0 and allowed.spanned > allowed.count:
            asked = min(int(np.ceil(1.2 * k * allowed.spanned / allowed.count)) + 8, 20 * k)
        scores, ids = index.search(query, asked, allowed)
        while True:
            maybe = window.in_partial(ids)
            times = self.catalog.times(self.embedder, ids[maybe].tolist()) if maybe.any() else {}
            out = window.outside(ids, times)
            if len(ids) - out.sum() >= k or len(ids) < asked:  # enough, or the index had no more
                keep = ~out
                return scores[keep][:k], ids[keep][:k]
            asked = 2 * asked + int(out.sum())
            scores, ids = index.search(query, asked, allowed)

    # -- keeping the index in step ----------------------------------------------------------------------------
    def catch_up(self) -> int:
        """Apply the catalog's log past the index's sequence; returns how many log entries applied to it."""
        with self._lock:
            if self._index is None:
                self._open()
                return 0
            return self._replay(self._index)

    def _replay(self, index: VectorIndex) -> int:
        applied = 0
        while self.catalog.last_seq() > self._seq:
            changes = self.catalog.changes_since(self._seq, self.embedder)
            apply_changes(index, changes.ops)
            applied += len(changes.ops)
            self._seq = changes.last_seq
        return applied

    def _open(self) -> None:
        """Load the saved index if its metadata vouches for it, replay the log since, and check it against the
        catalog; otherwise (or if the collection outgrew the index kind) rebuild from the catalog."""
        with self._file_lock(exclusive=True):
            self._remove_stale_temp_files()
            loaded = self._load_verified()
        if loaded is not None:
            index, self._seq = loaded
            self._replay(index)
            expected = self.catalog.count_sightings(self.embedder)
            if index.ntotal == expected and index.kind == factory_for(expected, self.flat_max):
                self._index = index
                return
        self._index = self._rebuild()

    def _load_verified(self) -> tuple[VectorIndex, int] | None:
        try:
            meta = json.loads(self.meta_path.read_text())
            if (
                meta.get("embedder") != self.embedder
                or meta.get("dim") != self.dim
                or meta.get("bytes") != self.index_path.stat().st_size
                or meta.get("sha256") != sha256_file(self.index_path)
            ):
                return None
            return VectorIndex.load(self.index_path, self.dim), int(meta["seq"])
        except (OSError, ValueError, KeyError, TypeError, IndexStateError):
            return None  # missing, unreadable or not matching: the catalog is the truth

    def _rebuild(self) -> VectorIndex:
        """Build the index the policy calls for from the catalog's vectors (training an IVF on a sample), save it."""
        seq = self.catalog.last_seq()  # vectors committed after this are replayed below, at worst twice: harmless
        n = self.catalog.count_sightings(self.embedder)
        # the compressed layout's re-ranking rows spill beside the index file (a save moves none of them)
        index = VectorIndex(self.dim, factory=factory_for(n, self.flat_max), spill_dir=self.index_path.parent)
        if not index.is_trained:
            ids = self.catalog.sighting_ids(self.embedder)
            # k-means wants about 40 training points per list
            sample = np.random.default_rng(0).choice(ids, min(len(ids), max(100_000, 40 * index.nlist)), replace=False)
            index.train(self.catalog.embeddings(np.sort(sample))[1], ids)
        for ids, vecs in self.catalog.iter_embeddings(self.embedder):
            index.add(ids, vecs)
        index.compact()
        self._seq = seq
        self._replay(index)
        self._index = index
        self.save()
        return index

    def save(self) -> None:
        """Write the index, then its metadata (sequence, size, sha256); each atomically (temp file + rename)."""
        with self._lock:
            if self._index is None:
                return
            with self._file_lock(exclusive=True):
                self._write_files(self._index)

    def _write_files(self, index: VectorIndex) -> None:
        index.save(self.index_path)
        kill_point("store.save")
        meta = {
            "embedder": self.embedder, "dim": self.dim, "seq": self._seq, "ntotal": index.ntotal, "kind": index.kind,
            "bytes": self.index_path.stat().st_size, "sha256": sha256_file(self.index_path),
        }  # fmt: skip
        write_json_atomic(self.meta_path, meta)

    @contextmanager
    def _file_lock(self, exclusive: bool) -> Iterator[None]:
        """Between processes sharing the data dir: one writes the index files at a time, and nobody reads them
        half-written (an advisory lock, released by the kernel if its holder dies)."""
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.index_path.with_suffix(".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a save that was killed mid-write (called under the exclusive file lock: no save is live)."""
        if self.index_path.parent.is_dir():
            for p in self.index_path.parent.glob(".index.*"):
                p.unlink(missing_ok=True)

    def close(self) -> None:
        """Save the index (if it changed since it was opened) and close the catalog."""
        with self._lock:
            if self._index is not None and self._saved_seq() != self._seq:
                self.save()
            self.catalog.close()

    def _saved_seq(self) -> int | None:
        try:
            return int(json.loads(self.meta_path.read_text())["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

