"""FAISS vector index: add, remove, filtered search, atomic save/load. Pure FAISS: store.py keeps it in step with
the catalog.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the catalog's sighting ids, allocated in
time order (vsearch.ids: the minute a sighting was seen is in its id's high bits). Filters (time
window, cameras) become an ID selector passed INTO the search, so a narrow window still returns its best matches
instead of whatever survives a global top-k.

Three layouts, chosen by the collection's size (`factory_for`):
- up to FLAT_MAX_VECTORS, exact `Flat` search, one partition per camera slot (vsearch.ids: the slot is in each id),
  so a camera filter scans that camera's vectors only, its time window as an id range;
- above it, IVF with 8-bit scalar quantisation, split into **time shards** (a run of minutes each, ~16 shards
  over the collection's span when it is built) that share one trained coarse quantizer. A query is assigned to
  its nearest lists once; then only the shards its time window touches are scanned, a shard inside the window
  with no selector, a shard at its edges with the window's id range. So a narrow window costs what it selects,
  not what the collection holds (`benchmarks/README.md`, "Search through the store"). A camera filter there is
  picked from the probed lists' ids by their slot bits;
- above COMPRESSED_MIN_VECTORS, the same time shards in **IVF-PQ** (PQ_M bytes a vector, residual codes): what stays
  in RAM is the PQ code and the id (twice: in its list and beside its re-ranking row), PQ_M + 16 bytes. The RERANK_DEPTH
  best by PQ are re-scored from 8-bit scalar codes kept on disk, memory-mapped, so only the candidates' rows are
  read. Those codes live in immutable segment files beside the index file (`<index>.fine-<hex>`), listed in its
  header with their row counts: a save writes the rows added since as a new segment (segments merge past
  MAX_SEGMENTS), then the index file atomically, then deletes the segments no saved index names.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import IndexStateError, StorageError
from vsearch.faults import kill_point
from vsearch.ids import minute_of, minutes_ids, slot_of
from vsearch.types import IdSet

# Index policy (its figures: benchmarks/README.md, "FAISS retrieval" and "Search through the store"): exact search
# up to FLAT_MAX_VECTORS, where it is still fast enough; above it time-sharded IVF-SQ8, for its memory at an
# acceptable recall, of about 2 sqrt(n) lists (more lists cost time and gain no recall). An unfiltered search probes
# nlist / NPROBE_DIVISOR lists: a fixed nprobe loses recall as the index grows. A filtered one probes that /
# selectivity: the window's nearest vectors are sparser, so spread over more lists (at worst every list, each read
# only where its sorted ids fall in the window). Shards: each adds a fixed cost to a wide search, while the binary
# searches of a narrow window cost more in bigger shards; the shard count balances the two.
FLAT_MAX_VECTORS = 1_000_000
NPROBE = 16
NPROBE_DIVISOR = 64
DEFAULT_SPAN_MINUTES = 64
MAX_SHARDS = 64  # past this, neighbouring shards merge (the span doubles)
SHARDS_AT_BUILD = 16  # at most this many time shards over the collection's span when the IVF layout is built
# The compressed layout, past COMPRESSED_MIN_VECTORS (figures: benchmarks/README.md, "Compressed shards"): PQ_M
# bytes of PQ code a vector (+ two 8-byte ids: 48 B a sighting in RAM, against SQ8's 264; PQ32 is the largest 8-bit
# PQ that stays under 64 B with list slack), the RERANK_DEPTH best re-scored from 8-bit codes on disk: the SQ8
# layout's recall (0.987-1.0 over 1-hour to 30-day windows, 30 k sightings). The threshold is where SQ8's RAM
# starts to count (10 M: 2.6 GB), not a measured latency crossover (the 10 M+ runs are still to be made).
COMPRESSED_MIN_VECTORS = 10_000_000
PQ_M = 32
RERANK_DEPTH = 256
SPILL_ROWS = 1 << 16  # re-ranking rows kept in RAM per shard before they go to a segment file
MAX_SEGMENTS = 16  # per shard; past this a save merges them into one
_MAGIC = b"VSEARCH-SHARDED-IVF\n"
_FLAT_MAGIC = b"VSEARCH-FLAT-BY-SLOT\n"


def factory_for(
    n_vectors: int, flat_max: int = FLAT_MAX_VECTORS, compressed_min: int = COMPRESSED_MIN_VECTORS
) -> str:
    """The index kind vsearch uses for a collection of n_vectors."""
    if n_vectors <= flat_max:
        return "Flat"
    nlist = int(2 ** round(np.log2(2 * np.sqrt(n_vectors))))
    if n_vectors > compressed_min:
        return f"IVF{nlist},PQ{PQ_M}+SQ8"
    return f"IVF{nlist},SQ8"


_PQ_KIND = re.compile(r"IVF(\d+),PQ(\d+)\+SQ8")


class VectorIndex:
    """Exact `Flat` (IndexIDMap2s of 64-bit sighting ids, one a camera slot), time-sharded `IVF{nlist},SQ8` or
    time-sharded `IVF{nlist},PQ{m}+SQ8` (PQ codes in RAM, 8-bit re-ranking codes on disk; see the module).
    `spill_dir`: where the compressed layout's re-ranking rows go before the first save (a temporary folder when
    None); a save moves them beside the index file."""

    def __init__(
        self, dim: int, index: faiss.Index | None = None, factory: str = "Flat", spill_dir: Path | None = None
    ) -> None:
        self.dim = dim
        self._lock = threading.RLock()
        self._parts: dict[int, faiss.IndexIDMap2] | None = None  # Flat: one exact index per camera slot
        self._template: Any = None  # trained, empty IVF-SQ8 or IVF-PQ: the shared quantizer and codes
        self._shards: dict[int, Any] = {}
        # the compressed layout: the re-ranking codes' quantizer and each shard's rows
        self._fine: faiss.IndexScalarQuantizer | None = None
        self._rows: dict[int, _FineRows] = {}
        self._spill_dir = spill_dir
        # per shard: the largest id added, and whether every list holds its ids in increasing order (then a range
        # of ids, i.e. of time, is found in each list by binary search: IDSelectorRange's assume_sorted)
        self._max_id: dict[int, int] = {}
        self._sorted: dict[int, bool] = {}
        self._span = DEFAULT_SPAN_MINUTES  # minutes per shard (set by train() from the collection's ids)
        if index is not None or factory == "Flat":
            self._parts = {}
        elif factory.startswith("IVF") and factory.endswith(",SQ8"):
            nlist = int(factory[3:].split(",")[0])
            quantizer = faiss.IndexFlatIP(dim)
            self._template = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT, False
            )
        elif (pq := _PQ_KIND.fullmatch(factory)) is not None:
            nlist, m = int(pq.group(1)), int(pq.group(2))
            if dim % m:
                raise IndexStateError(f"PQ{m} needs a dimension divisible by {m}, got {dim}")
            quantizer = faiss.IndexFlatIP(dim)
            self._template = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            self._fine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        else:
            raise IndexStateError(f"unknown index kind {factory!r}")
        if self._template is not None:  # the template owns its quantizer; the shards share it
            quantizer.this.disown()  # type: ignore[attr-defined]
            self._template.own_fields = True
        got = index.d if index is not None else dim if self._template is None else self._template.d
        if got != dim:
            raise IndexStateError(f"index has dimension {got}, expected {dim}")
        if index is not None:  # one exact index, as saved before the camera partitions: split by slot
            mapped: Any = index
            n = int(mapped.ntotal)
            flat: Any = faiss.downcast_index(mapped.index)
            vectors = faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim) if n else np.zeros((0, dim), np.float32)
            self.add(faiss.vector_to_array(mapped.id_map).astype(np.int64), vectors)

    # -- what it is ------------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self._template is None:
            return "Flat"
        if self._fine is not None:
            return f"IVF{self._template.nlist},PQ{self._template.pq.M}+SQ8"
        return f"IVF{self._template.nlist},SQ8"

    @property
    def nlist(self) -> int:
        """Inverted lists of the IVF layout (1 for an exact one)."""
        return 1 if self._template is None else int(self._template.nlist)

    @property
    def shards(self) -> int:
        """Time shards holding vectors (1 for an exact index)."""
        return 1 if self._template is None else len(self._shards)

    @property
    def is_trained(self) -> bool:
        return self._template is None or bool(self._template.is_trained)

    def train(self, sample: NDArray[np.float32], ids: NDArray[np.int64] | None = None) -> None:
        """Train the coarse quantizer and the scalar quantizer on `sample`; `ids` (the collection's ids) set the
        shard span: a power of two of minutes, at most SHARDS_AT_BUILD shards over the minutes they cover."""
        if self._template is None:
            return
        sample = np.ascontiguousarray(sample, np.float32)
        self._template.train(sample)
        if self._fine is not None:
            self._fine.train(sample)
        minutes = minute_of(ids) if ids is not None else np.zeros(0, np.int64)
        minutes = minutes[minutes >= 0]
        if len(minutes):  # the middle 98 %: a stray clock (a sighting in 1970) must not make one giant shard
            lo, hi = np.percentile(minutes, [1, 99])
            extent = hi - lo + 1
            self._span = int(2 ** max(0, int(np.ceil(np.log2(max(1.0, extent / SHARDS_AT_BUILD))))))

    @property
    def ntotal(self) -> int:
        with self._lock:  # another thread may be adding a shard
            parts = self._parts if self._parts is not None else self._shards
            return sum(int(s.ntotal) for s in parts.values())

    def ids(self) -> NDArray[np.int64]:
        """Every id the index holds (a copy; O(n))."""
        with self._lock:
            out = []
            for part in (self._parts or {}).values():
                out.append(faiss.vector_to_array(part.id_map))
            for shard in self._shards.values():
                inv = shard.invlists
                assert inv is not None
                for lst in range(shard.nlist):
                    n = inv.list_size(lst)
                    if n:
                        out.append(faiss.rev_swig_ptr(inv.get_ids(lst), n).copy())
            return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    # -- writes ------------------------------------------------------------------------------------------------
    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        with self._lock:
            if self._parts is not None:
                slots = slot_of(ids)
                for slot in np.unique(slots):
                    at = slots == slot
                    part = self._parts.get(int(slot))
                    if part is None:
                        part = self._parts[int(slot)] = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
                    part.add_with_ids(np.ascontiguousarray(vectors[at]), np.ascontiguousarray(ids[at]))
                return
            if not self.is_trained:
                raise IndexStateError("the IVF index must be trained before vectors are added")
            order = np.argsort(ids, kind="stable")  # in id order: lists stay sorted when ids come after the last
            ids, vectors = ids[order], vectors[order]
            keys = self._keys(ids)
            for key in np.unique(keys):
                key = int(key)
                at = keys == key
                shard = self._shard(key)
                part = ids[at]
                self._sorted[key] = self._sorted.get(key, True) and int(part[0]) > self._max_id.get(key, -1)
                self._max_id[key] = max(self._max_id.get(key, -1), int(part[-1]))
                shard.add_with_ids(np.ascontiguousarray(vectors[at]), np.ascontiguousarray(part))
                if self._fine is not None:
                    rows = self._rows.setdefault(key, _FineRows(self.dim))
                    rows.append(part, self._fine.sa_encode(np.ascontiguousarray(vectors[at])), self._spill)
            while len(self._shards) > MAX_SHARDS:
                self._coarsen()

    def _coarsen(self) -> None:
        """Double the shard span, merging each pair of neighbouring shards (the collection outgrew, in time, the
        span chosen when it was built: each shard costs a little in every search and in memory)."""
        merged: dict[int, faiss.IndexIVFScalarQuantizer] = {}
        max_id: dict[int, int] = {}
        in_order: dict[int, bool] = {}
        for key in sorted(self._shards):  # in time order: appending a later shard's lists keeps them sorted
            shard = self._shards[key]
            new_key = key if key < 0 else key // 2
            if new_key in merged:
                merged[new_key].merge_from(shard, 0)
                if key in self._rows:
                    self._rows.setdefault(new_key, _FineRows(self.dim)).extend(self._rows.pop(key), self._spill)
            else:
                merged[new_key] = shard
                if key in self._rows:
                    self._rows[new_key] = self._rows.pop(key)
            in_order[new_key] = in_order.get(new_key, True) and self._sorted[key]
            max_id[new_key] = max(max_id.get(new_key, -1), self._max_id[key])
        self._shards, self._sorted, self._max_id = merged, in_order, max_id
        self._span *= 2

    def _sort_lists(self) -> None:
        """Put every unsorted shard's lists back in id order (after removals or out-of-order additions)."""
        for key, shard in self._shards.items():
            if self._sorted[key]:
                continue
            inv = shard.invlists
            assert inv is not None
            size = shard.code_size
            for lst in range(shard.nlist):
                n = inv.list_size(lst)
                if n < 2:
                    continue
                ids = faiss.rev_swig_ptr(inv.get_ids(lst), n).copy()
                order = np.argsort(ids, kind="stable")
                if np.all(order[1:] > order[:-1]):
                    continue
                codes = faiss.rev_swig_ptr(inv.get_codes(lst), n * size).reshape(n, size)[order].copy()
                ids = np.ascontiguousarray(ids[order])
                inv.update_entries(lst, 0, n, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
            self._sorted[key] = True

    def remove(self, ids: NDArray[np.int64]) -> int:
        ids = np.ascontiguousarray(ids, np.int64)
        with self._lock:
            removed = 0
            if self._parts is not None:
                slots = slot_of(ids)
                for slot in np.unique(slots):
                    part = self._parts.get(int(slot))
                    if part is not None:
                        removed += int(part.remove_ids(np.ascontiguousarray(ids[slots == slot])))  # type: ignore[arg-type]
                        if part.ntotal == 0:
                            del self._parts[int(slot)]
                return removed
            keys = self._keys(ids)
            for key in np.unique(keys):
                shard = self._shards.get(int(key))
                if shard is not None:
                    gone = int(shard.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids[keys == key]))))
                    removed += gone
                    if gone:
                        self._sorted[int(key)] = False  # faiss moves each list's last entry into the hole
                    if shard.ntotal == 0:
                        del self._shards[int(key)]
                        self._rows.pop(int(key), None)
                        self._sorted.pop(int(key), None)
                        self._max_id.pop(int(key), None)
            return removed

    def _keys(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        minutes = minute_of(ids)
        return np.where(minutes >= 0, minutes // self._span, -1)

    def _shard_ids(self, key: int) -> tuple[int, int]:
        """[lo, hi) of the ids shard `key` holds."""
        return minutes_ids(-1, 0) if key < 0 else minutes_ids(key * self._span, (key + 1) * self._span)

    def _shard(self, key: int) -> faiss.IndexIVFScalarQuantizer:
        shard = self._shards.get(key)
        if shard is None:
            assert self._template is not None
            # an empty copy of the trained template (its scalar quantizer's ranges) sharing its coarse quantizer
            shard = _load_shard(_dump_shard(self._template, faiss.IndexFlatIP(self.dim)), self._template)
            self._shards[key] = shard
        return shard

    # -- search ------------------------------------------------------------------------------------------------
    def search(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-k (scores, ids) for one query vector; only the `allowed` ids are considered when given (an IdSet,
        or an array of ids)."""
        if allowed is not None and not isinstance(allowed, IdSet):
            allowed = IdSet(ids=np.asarray(allowed, np.int64), count=len(allowed))
        q = np.ascontiguousarray(query, np.float32).reshape(1, self.dim)
        with self._lock:
            ntotal = self.ntotal
            if (allowed is not None and allowed.count == 0) or ntotal == 0 or k <= 0:
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            k = min(k, ntotal)
            if self._parts is not None:
                return self._search_parts(q, k, allowed)
            return self._search_shards(q, k, allowed, ntotal)

    def _search_parts(
        self, q: NDArray[np.float32], k: int, allowed: IdSet | None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Exact search of the camera partitions the filter touches: the ranges in those of its slots (all, when
        it names none), its single ids in theirs."""
        assert self._parts is not None
        single: dict[int, NDArray[np.int64]] = {}
        if allowed is not None and len(allowed.ids):
            slots = slot_of(allowed.ids)
            single = {int(s): allowed.ids[slots == s] for s in np.unique(slots)}
        all_scores, all_ids = [], []
        for key, part in self._parts.items():
            keep_alive: list[faiss.IDSelector] = []  # faiss selectors hold raw pointers to their parts
            sel = None
            if allowed is not None:
                ranges = allowed.ranges if allowed.slots is None or key in allowed.slots else ()
                mine = single.get(key, np.zeros(0, np.int64))
                if not ranges and not len(mine):
                    continue  # the filter does not touch this camera
                sel = _selector(IdSet(ranges, mine), keep_alive)
            scores, ids = part.search(q, min(k, int(part.ntotal)), params=faiss.SearchParameters(sel=sel))  # type: ignore[call-arg]
            keep = ids[0] >= 0
            all_scores.append(scores[0][keep])
            all_ids.append(ids[0][keep])
        return _best(all_scores, all_ids, k)

    def _search_shards(
        self, q: NDArray[np.float32], k: int, allowed: IdSet | None, ntotal: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        assert self._template is not None
        nlist = int(self._template.nlist)
        nprobe = max(NPROBE, nlist // NPROBE_DIVISOR)
        if allowed is not None:
            fraction = min(1.0, max(allowed.count, 1) / ntotal)  # never fewer lists than an unfiltered search
            nprobe = int(np.ceil(nprobe / fraction))
        nprobe = min(nlist, nprobe)
        if nprobe == nlist:  # every list: their order does not matter, no need to rank the centroids
            lists = np.arange(nlist, dtype=np.int64).reshape(1, nlist)
            centroid_scores = np.zeros((1, nlist), np.float32)
        else:  # once, for every shard; a plain product and partition beat faiss's heap when thousands of lists are
            # probed; einsum, not BLAS: BLAS threads would fight faiss's OpenMP ones
            scores = np.einsum("ij,j->i", self._centroids(), q[0])
            top = np.argpartition(-scores, nprobe - 1)[:nprobe]
            top = top[np.argsort(-scores[top], kind="stable")]
            lists = np.ascontiguousarray(top, np.int64).reshape(1, nprobe)
            centroid_scores = np.ascontiguousarray(scores[top], np.float32).reshape(1, nprobe)
        single = np.sort(allowed.ids) if allowed is not None else np.zeros(0, np.int64)
        all_scores, all_ids = [], []
        depth = k if self._fine is None else max(k, RERANK_DEPTH)  # PQ: candidates for the re-ranking

        def scan(shard: Any, selector: faiss.IDSelector | None) -> None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
            d = np.empty((1, depth), np.float32)
            i = np.empty((1, depth), np.int64)
            shard.search_preassigned_c(
                1, faiss.swig_ptr(q), depth, faiss.swig_ptr(lists), faiss.swig_ptr(centroid_scores), faiss.swig_ptr(d),
                faiss.swig_ptr(i), False, params,
            )  # fmt: skip
            keep = i[0] >= 0
            all_scores.append(d[0][keep])
            all_ids.append(i[0][keep])

        for key, shard in self._shards.items():
            if allowed is None:
                scan(shard, None)
                continue
            part = _clip(allowed, *self._shard_ids(key), single)
            if part is None:
                continue  # the filter does not touch this shard
            if allowed.slots is not None:  # cameras: their ids in the probed lists, by slot, inside the ranges
                ranges, ids = ((self._shard_ids(key),), np.zeros(0, np.int64)) if part is True else part  # type: ignore[misc]
                picked = np.concatenate([ids, self._slot_ids(key, lists[0], ranges, allowed.slots)])
                if len(picked):
                    held: list[faiss.IDSelector] = []
                    scan(shard, _selector(IdSet(ids=picked), held))
                continue
            if part is True:
                scan(shard, None)  # wholly inside the filter
                continue
            assert isinstance(part, tuple)
            ranges, ids = part
            if len(ranges) == 1 and not len(ids) and self._sorted[key]:
                # one id range (a time window) over lists in id order: found by binary search in each probed list
                scan(shard, faiss.IDSelectorRange(*ranges[0], True))
                continue
            keep_alive: list[faiss.IDSelector] = []  # faiss selectors hold raw pointers to their parts
            scan(shard, _selector(IdSet(ranges, ids), keep_alive))  # cameras, colours, legacy ids, unsorted lists
        if self._fine is None:
            return _best(all_scores, all_ids, k)
        return self._rerank(q[0], *_best(all_scores, all_ids, depth), k)

    def _rerank(
        self, q: NDArray[np.float32], scores: NDArray[np.float32], ids: NDArray[np.int64], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The k best of the PQ candidates `ids`, re-scored from their 8-bit codes (read from disk, where they are
        not in the page cache)."""
        assert self._fine is not None
        if not len(ids):
            return scores, ids
        codes = np.empty((len(ids), self._fine.code_size), np.uint8)
        keys = self._keys(ids)
        for key in np.unique(keys):
            at = keys == key
            codes[at] = self._rows[int(key)].codes(ids[at])
        fine = self._fine.sa_decode(codes) @ q
        order = np.argsort(-fine, kind="stable")[:k]
        return fine[order].astype(np.float32), ids[order]

    def _slot_ids(
        self, key: int, lists: NDArray[np.int64], ranges: tuple[tuple[int, int], ...], slots: tuple[int, ...]
    ) -> NDArray[np.int64]:
        """The ids of shard `key`'s lists `lists` inside `ranges` whose camera slot is one of `slots` (a list in id
        order is cut to one range by binary search first)."""
        inv = self._shards[key].invlists
        assert inv is not None
        wanted = np.asarray(slots, np.int64)
        out = []
        for lst in lists.tolist():
            n = inv.list_size(lst)
            if not n:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(lst), n)
            if len(ranges) == 1 and self._sorted[key]:
                ids = ids[np.searchsorted(ids, ranges[0][0]) : np.searchsorted(ids, ranges[0][1])]
                inside = np.ones(len(ids), bool)
            else:
                inside = np.zeros(len(ids), bool)
                for a, b in ranges:
                    inside |= (ids >= a) & (ids < b)
            out.append(ids[inside & np.isin(slot_of(ids), wanted)])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def _centroids(self) -> NDArray[np.float32]:
        """The coarse quantizer's centroids (a view of the template's memory, which outlives it)."""
        assert self._template is not None
        q: Any = faiss.downcast_index(self._template.quantizer)
        return faiss.rev_swig_ptr(q.get_xb(), self._template.nlist * self.dim).reshape(-1, self.dim)

    def compact(self) -> None:
        """Reallocate every shard's lists at their exact sizes (after a bulk build: grown lists hold slack)."""
        with self._lock:
            if self._template is None:
                return
            stand_in = faiss.IndexFlatIP(self.dim)
            for key in list(self._shards):
                self._shards[key] = _load_shard(_dump_shard(self._shards[key], stand_in), self._template)
            for rows in self._rows.values():
                rows.trim()

    def _spill(self) -> Path:
        """The folder for re-ranking segments written before the index has a file."""
        if self._spill_dir is None:
            self._spill_dir = Path(tempfile.mkdtemp(prefix="vsearch-spill-"))
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        return self._spill_dir

    # -- files -------------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write to a temporary file in the same folder, fsync, then rename over `path` (atomic)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", dir=path.parent)
        os.close(fd)
        try:
            try:
                with self._lock:
                    if self._parts is not None:
                        keys = sorted(self._parts)
                        blobs = (faiss.serialize_index(self._parts[key]) for key in keys)
                        _write_container(tmp, _FLAT_MAGIC, blobs, {"dim": self.dim, "keys": keys})
                    else:
                        self._write_sharded(tmp, path)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            except (RuntimeError, OSError) as e:  # faiss reports a full disk as a RuntimeError
                raise StorageError(f"{path}: cannot write the index ({e})") from e
            kill_point("index.save")
            os.replace(tmp, path)
            if self._fine is not None:
                with self._lock:
                    _collect_segments(path, {p.name for rows in self._rows.values() for p, _ in rows.segments})
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _write_sharded(self, tmp: str, path: Path) -> None:
        """The sharded layout in one container: the template (with the coarse quantizer), then each shard
        serialised with an empty stand-in quantizer (the shared one is written once); the header has the span,
        shard keys and their largest ids. The compressed layout adds the re-ranking quantizer after the template
        and each shard's row ids after it; its rows' segments (written first, beside `path`) are in the header."""
        assert self._template is not None
        self._sort_lists()  # a saved shard's lists are in id order
        stand_in = faiss.IndexFlatIP(self.dim)
        keys = sorted(self._shards)
        header: dict[str, Any] = {
            "dim": self.dim, "span": self._span, "keys": keys, "max_id": [self._max_id[key] for key in keys]
        }  # fmt: skip
        if self._fine is None:
            blobs: Iterable[NDArray[np.uint8]] = itertools.chain(
                (faiss.serialize_index(self._template),), (_dump_shard(self._shards[key], stand_in) for key in keys)
            )
        else:
            header["segments"] = [self._rows[key].persist(path) for key in keys]
            blobs = itertools.chain(
                (faiss.serialize_index(self._template), faiss.serialize_index(self._fine)),
                *(
                    (_dump_shard(self._shards[key], stand_in), self._rows[key].ids.view(np.uint8))
                    for key in keys
                ),
            )
        _write_container(tmp, _MAGIC, blobs, header)

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        try:
            with open(path, "rb") as f:
                magic = f.read(max(len(_MAGIC), len(_FLAT_MAGIC)))
                if magic.startswith(_MAGIC):
                    return cls._read_sharded(f, path, dim)
                if magic.startswith(_FLAT_MAGIC):
                    return cls._read_parts(f, path, dim)
            flat = faiss.read_index(str(path))  # one exact index, as saved before camera partitions
            if not isinstance(flat, faiss.IndexIDMap2) or faiss.downcast_index(flat.index).__class__ not in (
                faiss.IndexFlatIP, faiss.IndexFlat
            ):  # e.g. a single IVF index from before time shards: rebuilt from the catalog
                raise IndexStateError(f"{path}: not an exact (Flat) index nor a sharded IVF one")
            return cls(dim, flat)
        except IndexStateError:
            raise
        except Exception as e:
            raise IndexStateError(f"cannot read index {path}: {e}") from e

    @classmethod
    def _read_parts(cls, f: BinaryIO, path: Path, dim: int) -> VectorIndex:
        header, blobs = _read_container(f, _FLAT_MAGIC)
        index = cls(dim)
        assert index._parts is not None
        for key, blob in zip(header["keys"], blobs, strict=True):
            part: Any = faiss.deserialize_index(blob)
            if not isinstance(part, faiss.IndexIDMap2) or part.d != dim:
                raise IndexStateError(f"{path}: camera partition {key} is not a {dim}-d exact index")
            index._parts[int(key)] = part
        return index

    @classmethod
    def _read_sharded(cls, f: BinaryIO, path: Path, dim: int) -> VectorIndex:
        header, blobs = _read_container(f, _MAGIC)
        template: Any = faiss.deserialize_index(next(blobs))
        if not _compatible(template, dim, None) or template.quantizer.ntotal != template.nlist:
            raise IndexStateError(f"{path}: not a {dim}-d sharded IVF-SQ8 or IVF-PQ index")
        compressed = isinstance(template, faiss.IndexIVFPQ)
        kind = f"IVF{template.nlist},PQ{template.pq.M}+SQ8" if compressed else f"IVF{template.nlist},SQ8"
        index = cls(dim, factory=kind)
        index._template = template
        if compressed:
            fine: Any = faiss.deserialize_index(next(blobs))
            if "segments" not in header or fine.d != dim:
                raise IndexStateError(f"{path}: a compressed index without its re-ranking codes")
            index._fine = fine
        index._span = int(header["span"])
        if index._span < 1:
            raise IndexStateError(f"{path}: shard span {index._span}")
        segments = header.get("segments", [None] * len(header["keys"]))
        for key, blob, max_id, listed in zip(header["keys"], blobs, header["max_id"], segments, strict=True):
            shard = faiss.deserialize_index(blob)
            if not _compatible(shard, dim, template):
                raise IndexStateError(f"{path}: shard {key} does not match the index")
            index._shards[int(key)] = _attach(shard, template)
            index._sorted[int(key)], index._max_id[int(key)] = True, int(max_id)
            if compressed:
                ids = np.frombuffer(next(blobs), np.int64)
                index._rows[int(key)] = _FineRows.saved(ids, [(path.parent / n, r) for n, r in listed], index._fine)
        return index


def _write_container(tmp: str, magic: bytes, blobs: Iterable[NDArray[np.uint8]], header: dict[str, Any]) -> None:
    """One file: `magic`, the length of the header, the blobs one after another (each freed once written), then
    the JSON header with their sizes."""
    with open(tmp, "wb") as f:
        f.write(magic)
        header_pos = f.tell()
        f.write(b"\0" * 8)  # the header's length, filled in at the end
        sizes = []
        for blob in blobs:
            sizes.append(len(blob))
            blob.tofile(f)
            del blob
        data = json.dumps({**header, "sizes": sizes}).encode()
        f.write(data)
        f.seek(header_pos)
        f.write(struct.pack("<q", len(data)))


def _read_container(f: BinaryIO, magic: bytes) -> tuple[dict[str, Any], Iterator[NDArray[np.uint8]]]:
    """The header and the blobs (read one at a time) of a file written by `_write_container`."""
    f.seek(len(magic))
    (header_len,) = struct.unpack("<q", f.read(8))
    f.seek(-header_len, os.SEEK_END)
    header = json.loads(f.read(header_len))
    f.seek(len(magic) + 8)
    return header, (np.frombuffer(f.read(size), np.uint8) for size in header["sizes"])


def _best(
    all_scores: list[NDArray[np.float32]], all_ids: list[NDArray[np.int64]], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The k best of several partitions' results."""
    if not all_ids:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores, ids = np.concatenate(all_scores), np.concatenate(all_ids)
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]


def _dump_shard(shard: faiss.IndexIVFScalarQuantizer, stand_in: faiss.Index) -> NDArray[np.uint8]:
    """A shard's bytes, with an empty stand-in for the shared quantizer (written once, with the template)."""
    shared = shard.quantizer
    shard.quantizer = stand_in
    try:
        return faiss.serialize_index(shard)  # type: ignore[no-any-return]
    finally:
        shard.quantizer = shared


def _compatible(index: Any, dim: int, template: Any) -> bool:
    """Whether `index` is an inner-product, non-residual IVF-SQ8 or an IVF-PQ of `dim` (and `template`'s kind,
    nlist and codes)."""
    sq8 = isinstance(index, faiss.IndexIVFScalarQuantizer) and not index.by_residual
    ok = (
        (sq8 or isinstance(index, faiss.IndexIVFPQ)) and index.d == dim
        and index.metric_type == faiss.METRIC_INNER_PRODUCT and index.is_trained
    )  # fmt: skip
    if ok and template is not None:
        ok = type(index) is type(template) and index.nlist == template.nlist and index.code_size == template.code_size
    return bool(ok)


class _FineRows:
    """One shard's re-ranking rows (8-bit codes): immutable segment files, memory-mapped so that a search reads
    only its candidates' rows, then a tail in RAM (spilled to a segment at SPILL_ROWS); and every row's id in RAM,
    in row order. An id added again (a replayed log entry) is found at its newest row; rows of removed ids stay
    in their segment, never read (the IVF lists decide what is searched), until the shard is dropped."""

    def __init__(self, code_size: int) -> None:
        self.code_size = code_size
        self.segments: list[tuple[Path, NDArray[np.uint8]]] = []
        self._ids = np.zeros(0, np.int64)  # grown by a quarter at a time; `trim` drops the slack
        self.n = 0
        self._tail = np.zeros((0, code_size), np.uint8)
        self._tail_rows = 0
        self._in_order = True  # ids strictly increasing with the row: a row is found by binary search on them
        self._by_id: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None  # else (rows by id, their ids)

    @classmethod
    def saved(cls, ids: NDArray[np.int64], segments: list[tuple[Path, int]], fine: Any) -> _FineRows:
        """The rows of a saved shard: its ids and its (segment file, rows) in order."""
        out = cls(int(fine.code_size))
        out._ids, out.n = ids.copy(), len(ids)
        out._in_order = bool(np.all(ids[1:] > ids[:-1]))
        out.segments = [(p, _map_rows(p, rows, out.code_size)) for p, rows in segments]
        if sum(len(m) for _, m in out.segments) != out.n:
            raise IndexStateError(f"{segments[0][0].parent if segments else ''}: re-ranking rows do not match ids")
        return out

    @property
    def ids(self) -> NDArray[np.int64]:
        return self._ids[: self.n]

    def append(self, ids: NDArray[np.int64], codes: NDArray[np.uint8], spill: Any) -> None:
        """Rows for `ids` (their codes), after the others; `spill()`: the folder for a full tail."""
        if self.n + len(ids) > len(self._ids):
            self._ids = _grown(self._ids, self.n, self.n + len(ids))
        if (self.n and ids[0] <= self._ids[self.n - 1]) or np.any(ids[1:] <= ids[:-1]):
            self._in_order = False
        self._ids[self.n : self.n + len(ids)] = ids
        self.n += len(ids)
        self._by_id = None
        if self._tail_rows + len(codes) > len(self._tail):
            self._tail = _grown(self._tail, self._tail_rows, self._tail_rows + len(codes))
        self._tail[self._tail_rows : self._tail_rows + len(codes)] = codes
        self._tail_rows += len(codes)
        if self._tail_rows >= SPILL_ROWS:
            self._flush(spill() / f"spill.fine-{uuid.uuid4().hex}")

    def extend(self, other: _FineRows, spill: Any) -> None:
        """`other`'s rows after these (a later shard merged into this one); this tail goes to a segment first."""
        self._flush(spill() / f"spill.fine-{uuid.uuid4().hex}")
        ids = other.ids
        self._in_order = self._in_order and other._in_order and (not self.n or not len(ids) or ids[0] > self.ids[-1])
        self.segments += other.segments
        self._ids = _grown(self._ids, self.n, self.n + len(ids))
        self._ids[self.n : self.n + len(ids)] = ids
        self.n += len(ids)
        self._tail, self._tail_rows = other._tail, other._tail_rows
        self._by_id = None

    def _flush(self, path: Path) -> None:
        if not self._tail_rows:
            return
        _write_rows(path, [self._tail[: self._tail_rows]])
        self.segments.append((path, _map_rows(path, self._tail_rows, self.code_size)))
        self._tail, self._tail_rows = np.zeros((0, self.code_size), np.uint8), 0

    def trim(self) -> None:
        """Drop the slack of grown buffers."""
        self._ids = self._ids[: self.n].copy()
        self._tail = self._tail[: self._tail_rows].copy()

    def codes(self, ids: NDArray[np.int64]) -> NDArray[np.uint8]:
        """The codes of `ids` (each at its newest row)."""
        if self._in_order:
            rows = np.searchsorted(self.ids, ids)
        else:
            if self._by_id is None:
                order = np.argsort(self.ids, kind="stable")
                self._by_id = order, self.ids[order]
            order, sorted_ids = self._by_id
            rows = order[np.searchsorted(sorted_ids, ids, side="right") - 1]  # the last of equal ids: the newest
        rows = np.minimum(rows, self.n - 1)
        if self.n == 0 or not np.array_equal(self.ids[rows], ids):
            raise IndexStateError("a candidate of the compressed index has no re-ranking row")
        out = np.empty((len(ids), self.code_size), np.uint8)
        starts = np.cumsum([0] + [len(m) for _, m in self.segments])
        part = np.searchsorted(starts, rows, side="right") - 1
        for s in np.unique(part):
            at = part == s
            local = rows[at] - starts[s]
            if s < len(self.segments):
                order = np.argsort(local)  # in file order: fewer, forward page reads
                got = np.empty((len(local), self.code_size), np.uint8)
                got[order] = self.segments[s][1][local[order]]
                out[at] = got
            else:
                out[at] = self._tail[local]
        return out

    def persist(self, index_path: Path) -> list[tuple[str, int]]:
        """Put every row in a segment beside `index_path` (named after it) and return the (name, rows) to list in
        its header: the tail becomes a new segment; segments elsewhere (spilled) are moved there, any that another
        process's save deleted is written again from its mapping; past MAX_SEGMENTS they merge into one."""
        folder, stem = index_path.parent, index_path.name
        self._flush(folder / f"{stem}.fine-{uuid.uuid4().hex}")
        if len(self.segments) > MAX_SEGMENTS:
            path = folder / f"{stem}.fine-{uuid.uuid4().hex}"
            _write_rows(path, [m for _, m in self.segments])
            self.segments = [(path, _map_rows(path, self.n, self.code_size))]
        placed = []
        for p, m in self.segments:
            target = folder / f"{stem}.fine-{p.name.rsplit('.fine-', 1)[-1]}"
            if p != target and p.exists():
                shutil.move(p, target)
            elif not target.exists():
                _write_rows(target, [m])
            placed.append((target, m if p == target else _map_rows(target, len(m), self.code_size)))
        self.segments = placed
        return [(p.name, len(m)) for p, m in self.segments]


def _grown(buf: NDArray[Any], used: int, need: int) -> NDArray[Any]:
    """A copy of `buf`'s first `used` rows with room for `need` (a quarter more, to amortise the copies)."""
    out = np.empty((max(need, int(1.25 * len(buf)) + 1024), *buf.shape[1:]), buf.dtype)
    out[:used] = buf[:used]
    return out


def _write_rows(path: Path, parts: Iterable[NDArray[np.uint8]]) -> None:
    """Write rows to a new file and fsync it (then it is never written again)."""
    with open(path, "wb") as f:
        for part in parts:
            for i in range(0, len(part), SPILL_ROWS):  # a mapping is read a piece at a time
                np.ascontiguousarray(part[i : i + SPILL_ROWS]).tofile(f)
        f.flush()
        os.fsync(f.fileno())


def _map_rows(path: Path, rows: int, code_size: int) -> NDArray[np.uint8]:
    """The first `rows` rows of a segment file, memory-mapped read-only."""
    try:
        if path.stat().st_size < rows * code_size:
            raise IndexStateError(f"{path}: holds fewer than the {rows} re-ranking rows listed")
        if rows == 0:
            return np.zeros((0, code_size), np.uint8)
        return np.memmap(path, np.uint8, "r", shape=(rows, code_size))
    except OSError as e:
        raise IndexStateError(f"{path}: cannot map the re-ranking rows ({e})") from e


def _collect_segments(index_path: Path, kept: set[str]) -> None:
    """Delete the segment files beside `index_path` that the index saved there does not list (a process that
    still maps one keeps its pages, and writes it again if it saves)."""
    for p in itertools.chain(
        index_path.parent.glob(f"{index_path.name}.fine-*"), index_path.parent.glob("spill.fine-*")
    ):
        if p.name not in kept:
            p.unlink(missing_ok=True)


def _load_shard(blob: NDArray[np.uint8], template: faiss.IndexIVFScalarQuantizer) -> faiss.IndexIVFScalarQuantizer:
    """A shard from `_dump_shard`'s bytes, given the template whose quantizer it shares. Its lists are allocated
    at their exact sizes (lists grown by adding keep up to twice the memory they use)."""
    return _attach(faiss.deserialize_index(blob), template)


def _attach(shard: Any, template: faiss.IndexIVFScalarQuantizer) -> faiss.IndexIVFScalarQuantizer:
    """Give a deserialised shard the template's shared quantizer in place of its stand-in."""
    shard.quantizer = template.quantizer  # the shared one; the shard must not free it (its empty stand-in, a
    shard.own_fields = False  # hundred bytes, is left: SWIG cannot free it through a base-class proxy)
    shard.parallel_mode = 1  # one query at a time: its probed lists are scanned by all of faiss's threads
    return shard


def _clip(
    allowed: IdSet, lo: int, hi: int, single: NDArray[np.int64]
) -> tuple[tuple[tuple[int, int], ...], NDArray[np.int64]] | bool | None:
    """The part of `allowed` inside ids [lo, hi) as (ranges, single ids): True when it is the whole of [lo, hi),
    None when nothing (`single`: allowed.ids, sorted)."""
    ranges = tuple((int(max(a, lo)), int(min(b, hi))) for a, b in allowed.ranges if a < hi and b > lo)
    if any(a <= lo and b >= hi for a, b in ranges):
        return True
    ids = single[np.searchsorted(single, lo) : np.searchsorted(single, hi)]
    if not ranges and not len(ids):
        return None
    return ranges, ids


def _selector(allowed: IdSet, keep_alive: list[faiss.IDSelector]) -> faiss.IDSelector:
    """One FAISS selector for ranges and single ids: a range costs two comparisons per vector, whatever it holds."""
    parts: list[faiss.IDSelector] = [faiss.IDSelectorRange(lo, hi) for lo, hi in allowed.ranges]
    if len(allowed.ids) or not parts:
        parts.append(faiss.IDSelectorBatch(np.ascontiguousarray(allowed.ids, np.int64)))
    keep_alive.extend(parts)
    sel = parts[0]
    for p in parts[1:]:
        sel = faiss.IDSelectorOr(sel, p)
        keep_alive.append(sel)
    return sel
