"""FAISS index: filtered search equals brute force on the subset; saves are atomic; re-sync from the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.catalog import Catalog, NewSighting
from vsearch.index import VectorIndex, open_synced


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


def _catalog_with(tmp_path: Path, n: int) -> tuple[Catalog, np.ndarray]:
    cat = Catalog(tmp_path / "c.sqlite")
    v = cat.begin_video("cam", "/x.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e")
    _, x = _data(n, 8)
    rows = [NewSighting("cam", 1, float(i), float(i), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", x[i]) for i in range(n)]
    ids = cat.commit_chunk(v.id, rows, [], 1.0, 1, False)
    return cat, np.array(ids)


def test_index_catches_up_with_the_catalog_after_a_crash(tmp_path: Path) -> None:
    cat, ids = _catalog_with(tmp_path, 20)
    path = tmp_path / "e.faiss"
    index = open_synced(path, 8, cat, "e")
    assert index.ntotal == 20
    # the catalog commits a chunk but the process dies before the index is saved
    v = cat.video_by_sha("abc")
    assert v is not None
    _, x = _data(5, 8, seed=9)
    cat.commit_chunk(v.id, [NewSighting("cam", 2, 50.0, 50.0, (0, 0, 1, 1), 0.9, 0.5, "t.jpg", r) for r in x], [], 2.0, 1, True)
    again = open_synced(path, 8, cat, "e")
    assert again.ntotal == 25
    assert set(again.ids()) == set(ids) | set(range(int(ids.max()) + 1, int(ids.max()) + 6))


def test_index_rebuilds_when_it_disagrees_with_the_catalog(tmp_path: Path) -> None:
    cat, ids = _catalog_with(tmp_path, 20)
    path = tmp_path / "e.faiss"
    index = open_synced(path, 8, cat, "e")
    index.add(np.array([9999], np.int64), np.ones((1, 8), np.float32) / np.sqrt(8))  # a stray vector
    index.save(path)
    again = open_synced(path, 8, cat, "e")
    assert set(again.ids()) == set(ids)
    path.write_bytes(b"garbage")  # an unreadable index file is rebuilt, not trusted
    assert set(open_synced(path, 8, cat, "e").ids()) == set(ids)


def test_a_running_service_sees_sightings_other_processes_commit(tmp_path: Path) -> None:
    """Two writers interleave ids; the index of a long-running reader ends up with exactly the catalog's ids."""
    cat, ids = _catalog_with(tmp_path, 10)
    path = tmp_path / "e.faiss"
    index = open_synced(path, 8, cat, "e")
    other = Catalog(tmp_path / "c.sqlite")  # a second process's connection
    v = other.begin_video("cam2", "/y.mp4", "def", 0.0, 10.0, 100, (64, 64), "e")
    _, x = _data(4, 8, seed=3)
    new = other.commit_chunk(v.id, [NewSighting("cam2", 1, 1.0, 1.0, (0, 0, 1, 1), 0.9, 0.5, "t.jpg", r) for r in x], [], 1.0, 1, True)
    other.delete_video(1)  # and removes the first video's sightings
    from vsearch.index import sync

    assert sync(index, cat, "e") == (4, 10)
    assert sorted(index.ids()) == sorted(new)


def test_large_collections_switch_to_ivf_and_filters_keep_recall(tmp_path: Path) -> None:
    """Past the flat limit the index is rebuilt as IVF-SQ8; a 2% filter still finds the brute-force top matches
    because nprobe grows as the filter narrows."""
    from vsearch.index import factory_for

    n = 3000
    cat = Catalog(tmp_path / "c.sqlite")
    v = cat.begin_video("cam", "/x.mp4", "abc", 0.0, 10.0, 100, (64, 64), "e")
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((150, 16)).astype(np.float32)
    x = centres[rng.integers(0, 150, n)] + 0.3 * rng.standard_normal((n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.array(cat.commit_chunk(v.id, [NewSighting("cam", 1, float(i), float(i), (0, 0, 1, 1), 0.9, 0.5, "t", r) for i, r in enumerate(x)], [], 1.0, 1, True))
    small = open_synced(tmp_path / "e.faiss", 16, cat, "e", flat_max=10_000)
    assert small.kind == "Flat"
    big = open_synced(tmp_path / "e.faiss", 16, cat, "e", flat_max=1000)
    assert big.kind == factory_for(n, 1000) and big.kind.startswith("IVF") and big.ntotal == n
    allowed = ids[1000:1060]
    hits = 0
    for qi in rng.integers(0, n, 20):
        _, got = big.search(x[qi], 5, allowed)
        brute = allowed[np.argsort(-(x[1000:1060] @ x[qi]))[:5]]
        hits += len(set(got) & set(brute))
    assert hits / 100 >= 0.9
