"""FAISS vector index: add, remove, filtered search, atomic save/load, and re-sync from the catalog.

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

from vsearch.catalog import Catalog
from vsearch.errors import IndexStateError


class VectorIndex:
    """An IndexIDMap2 over an exact inner-product index (the measured default for vsearch's sizes)."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if self._index.d != dim:
            raise IndexStateError(f"index has dimension {self._index.d}, expected {dim}")
        self._lock = threading.RLock()

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def max_id(self) -> int:
        return int(self.ids().max()) if self.ntotal else 0

    def ids(self) -> NDArray[np.int64]:
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
        self, query: NDArray[np.float32], k: int, allowed_ids: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-k (scores, ids) for one query vector; only `allowed_ids` are considered when given."""
        q = np.ascontiguousarray(query, np.float32).reshape(1, self.dim)
        if (allowed_ids is not None and len(allowed_ids) == 0) or self.ntotal == 0 or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, self.ntotal if allowed_ids is None else len(allowed_ids))
        params = None
        if allowed_ids is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, np.int64))
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
            with self._lock:
                faiss.write_index(self._index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
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


def open_synced(path: Path, dim: int, catalog: Catalog, embedder: str) -> VectorIndex:
    """Load the index at `path` (or start one) and make it hold exactly the catalog's vectors of `embedder`.

    The catalog commits first and the index is saved after, so after a crash the index can only lag behind:
    the missing tail (ids above its largest) is added. Any other disagreement (e.g. a removal that was
    interrupted) rebuilds the index from the catalog.
    """
    index = None
    if path.exists():
        try:
            index = VectorIndex.load(path, dim)
        except IndexStateError:
            index = None  # unreadable or wrong dimension: rebuild from the source of truth
    if index is None:
        index = VectorIndex(dim)
    expected = catalog.count_sightings(embedder)
    if index.ntotal == expected:
        return index
    changed = False
    if index.ntotal < expected:
        changed = sync(index, catalog, embedder)[0] > 0
    if index.ntotal != expected:
        index = VectorIndex(dim)
        for ids, vecs in catalog.iter_embeddings(embedder):
            index.add(ids, vecs)
        changed = True
    if changed:
        index.save(path)
    return index



def sync(index: VectorIndex, catalog: Catalog, embedder: str) -> tuple[int, int]:
    """Make the index hold exactly the catalog's ids of `embedder` (rows committed or deleted by other processes,
    in any id order); returns (added, removed). The caller holds off this process's writers meanwhile."""
    want = catalog.sighting_ids(embedder)
    have = index.ids()
    missing = np.setdiff1d(want, have, assume_unique=True)
    extra = np.setdiff1d(have, want, assume_unique=True)
    if len(extra):
        index.remove(extra)
    for i in range(0, len(missing), 50_000):
        ids, vecs = catalog.embeddings(missing[i : i + 50_000])
        index.add(ids, vecs)
    return len(missing), len(extra)
