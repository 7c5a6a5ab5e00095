"""FAISS vector index: add, remove, filtered search, atomic save/load. Pure FAISS: store.py keeps it in step with
the catalog.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the catalog's sighting ids. Filters
(time window, cameras) become an ID selector passed INTO the search, so a narrow window still returns its best
matches instead of whatever survives a global top-k.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import IndexStateError, StorageError
from vsearch.faults import kill_point
from vsearch.types import IdSet

# Index policy, from benchmarks/README.md ("FAISS retrieval"): exact search up to FLAT_MAX_VECTORS, where one
# unfiltered query stays in tens of ms and a filtered one is cheaper still (the selector skips distances);
# above it IVF with 8-bit scalar quantisation (4x less memory, recall@10 0.97 unfiltered at 1M). A fixed nprobe
# loses most true neighbours under a narrow time filter (recall 0.20 at a 1% window, 1M vectors), so a filtered
# search probes NPROBE_FILTERED / selectivity lists: at 1M, recall 0.95-0.99 for 50%, 10% and 1% windows in
# 1-8 ms (benchmarks/bench_nprobe.py).
FLAT_MAX_VECTORS = 1_000_000
NPROBE = 16
NPROBE_FILTERED = 64


def factory_for(n_vectors: int, flat_max: int = FLAT_MAX_VECTORS) -> str:
    """The FAISS index_factory string vsearch uses for a collection of n_vectors."""
    if n_vectors <= flat_max:
        return "Flat"
    nlist = int(2 ** round(np.log2(4 * np.sqrt(n_vectors))))
    return f"IVF{nlist},SQ8"


class VectorIndex:
    """An IndexIDMap2 (64-bit sighting ids) over an inner-product index chosen by `factory_for`."""

    def __init__(self, dim: int, index: faiss.Index | None = None, factory: str = "Flat") -> None:
        self.dim = dim
        if index is None:
            index = faiss.IndexIDMap2(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
        self._index = index
        if self._index.d != dim:
            raise IndexStateError(f"index has dimension {self._index.d}, expected {dim}")
        inner = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
        self._ivf = faiss.extract_index_ivf(inner) if isinstance(inner, faiss.IndexIVF) else None
        self._lock = threading.RLock()

    @property
    def kind(self) -> str:
        return "Flat" if self._ivf is None else f"IVF{self._ivf.nlist},SQ8"

    @property
    def nlist(self) -> int:
        """Inverted lists of an IVF index (1 for an exact one)."""
        return 1 if self._ivf is None else int(self._ivf.nlist)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, sample: NDArray[np.float32]) -> None:
        self._index.train(np.ascontiguousarray(sample, np.float32))

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> NDArray[np.int64]:
        """Every id the index holds (a copy; O(n))."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)  # type: ignore[attr-defined]

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        with self._lock:
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: NDArray[np.int64]) -> int:
        with self._lock:
            return int(self._index.remove_ids(np.ascontiguousarray(ids, np.int64)))  # type: ignore[arg-type]

    def search(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-k (scores, ids) for one query vector; only the `allowed` ids are considered when given (an IdSet,
        or an array of ids)."""
        if allowed is not None and not isinstance(allowed, IdSet):
            allowed = IdSet(ids=np.asarray(allowed, np.int64), count=len(allowed))
        q = np.ascontiguousarray(query, np.float32).reshape(1, self.dim)
        if (allowed is not None and allowed.count == 0) or self.ntotal == 0 or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, self.ntotal if allowed is None else allowed.count)
        keep_alive: list[faiss.IDSelector] = []  # faiss selectors hold raw pointers to their parts
        selector = None if allowed is None else _selector(allowed, keep_alive)
        if self._ivf is not None:
            if allowed is None:
                nprobe = NPROBE
            else:
                fraction = max(allowed.count, 1) / max(self.ntotal, 1)
                nprobe = min(self._ivf.nlist, int(np.ceil(NPROBE_FILTERED / fraction)))
            params: faiss.SearchParameters = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        with self._lock:
            scores, ids = self._index.search(q, k, params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path) -> None:
        """Write to a temporary file in the same folder, fsync, then rename over `path` (atomic)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", dir=path.parent)
        os.close(fd)
        try:
            try:
                with self._lock:
                    faiss.write_index(self._index, tmp)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            except (RuntimeError, OSError) as e:  # faiss reports a full disk as a RuntimeError
                raise StorageError(f"{path}: cannot write the index ({e})") from e
            kill_point("index.save")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        try:
            index = faiss.read_index(str(path))
        except Exception as e:
            raise IndexStateError(f"cannot read index {path}: {e}") from e
        return cls(dim, index)


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
