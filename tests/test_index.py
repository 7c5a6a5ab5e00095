"""FAISS index (pure): filtered search equals brute force on the subset; saves are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index import VectorIndex


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(100, 100 + n, dtype=np.int64), x


@pytest.mark.parametrize("subset_size", [1, 7, 50, 400, 2000])
def test_filtered_search_equals_brute_force_on_the_subset(subset_size: int) -> None:
    ids, x = _data(2000, 64)
    index = VectorIndex(64)
    index.add(ids, x)
    rng = np.random.default_rng(subset_size)
    allowed = np.sort(rng.choice(ids, subset_size, replace=False))
    q = x[rng.integers(0, 2000)] + 0.1 * rng.standard_normal(64).astype(np.float32)
    scores, got = index.search(q, 10, allowed)
    brute = x[allowed - 100] @ q
    order = np.argsort(-brute)[: min(10, subset_size)]
    assert list(got) == list(allowed[order])
    assert np.allclose(scores, brute[order], atol=1e-5)


def test_empty_filter_returns_nothing_and_unfiltered_searches_all() -> None:
    ids, x = _data(100, 16)
    index = VectorIndex(16)
    index.add(ids, x)
    assert len(index.search(x[0], 5, np.zeros(0, np.int64))[1]) == 0
    scores, got = index.search(x[3], 5)
    assert got[0] == ids[3] and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ids, x = _data(300, 32)
    index = VectorIndex(32)
    index.add(ids, x)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", 32)
    assert again.ntotal == 300 and list(again.search(x[5], 1)[1]) == [ids[5]]
    assert [p.name for p in tmp_path.iterdir()] == ["i.faiss"]  # no temporary files left behind
