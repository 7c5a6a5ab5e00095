"""The store keeps the index equal to the catalog: after crashes, other processes' commits and removals, damaged
index files; the index follows the catalog's log instead of rescanning it; filtered search equals brute force."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vsearch.catalog import Catalog, Checkpoint, NewSighting
from vsearch.index import VectorIndex, factory_for
from vsearch.store import IndexFilter, Store

DIM = 8


def _unit(n: int, d: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _rows(x: np.ndarray, camera: str = "cam", t0: float = 0.0) -> list[NewSighting]:
    return [NewSighting(camera, 1 + i // 3, t0 + i, float(i), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", v) for i, v in enumerate(x)]


def _video(cat: Catalog, sha: str, camera: str = "cam") -> int:
    return cat.begin_video(camera, f"/{sha}.mp4", sha, 0.0, 10.0, 100, (64, 64), "e").id


def _store(cat: Catalog, tmp_path: Path, flat_max: int = 1_000_000) -> Store:
    return Store(cat, tmp_path / "index", "e", DIM, flat_max)


def test_commits_through_the_store_are_searchable_at_once(cat: Catalog, tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    x = _unit(12)
    ids = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(x), [], 1.0, 1, False))
    m = store.search(x[4], 1)
    assert list(m.ids) == [ids[4]] and m.scores[0] == pytest.approx(1.0, abs=1e-5) and m.candidates == 12


def test_the_index_file_is_saved_at_the_end_of_a_file_not_at_every_checkpoint(cat: Catalog, tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    assert store.index.ntotal == 0  # opened (and saved empty)
    before = store.index_path.stat().st_mtime_ns, store.index_path.stat().st_size
    vid = _video(cat, "a")
    store.commit_chunk(vid, Checkpoint(_rows(_unit(5)), [], 1.0, 1, False))
    assert (store.index_path.stat().st_mtime_ns, store.index_path.stat().st_size) == before
    store.commit_chunk(vid, Checkpoint(_rows(_unit(5, seed=1)), [], 2.0, 1, True))
    assert store.index_path.stat().st_size > before[1]


def test_after_a_crash_the_index_replays_the_log_since_its_save(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    vid = _video(cat, "a")
    first = store.commit_chunk(vid, Checkpoint(_rows(_unit(20)), [], 1.0, 1, True))  # saved
    # a checkpoint commits to the catalog, then the process dies before the index is saved
    later = cat.commit_chunk(_video(cat, "b"), Checkpoint(_rows(_unit(5, seed=9)), [], 2.0, 1, False))
    again = _store(reopen(), tmp_path)
    assert sorted(again.index.ids()) == sorted(first + later)
    assert again.catch_up() == 0  # nothing left to replay


def test_a_running_store_follows_other_processes_commits_and_removals(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    first = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(_unit(10)), [], 1.0, 1, True))
    other = reopen()  # a second process's connection
    x = _unit(4, seed=3)
    new = other.commit_chunk(_video(other, "b", "cam2"), Checkpoint(_rows(x, "cam2"), [], 1.0, 1, True))
    assert other.delete_video(1) == first
    # the next search applies exactly those 14 log entries (4 additions, 10 removals), no rescan
    assert store.catch_up() == 14
    assert sorted(store.index.ids()) == sorted(new)
    assert list(store.search(x[2], 1).ids) == [new[2]]


def test_replaying_an_entry_twice_stores_it_once(cat: Catalog, tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    ids = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(_unit(6)), [], 1.0, 1, True))
    store._seq = 0  # as if the saved sequence lagged behind the saved vectors
    store.catch_up()
    assert store.index.ntotal == 6 and sorted(store.index.ids()) == sorted(ids)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"garbage"), id="unreadable"),
        pytest.param(lambda p: p.unlink(), id="deleted"),
        # 4 KB overwritten inside the vectors: the file still loads, but would return wrong scores
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1000] + b"\x7f" * 4096 + p.read_bytes()[5096:]), id="overwritten"),
        pytest.param(lambda p: p.with_suffix(".json").write_text("{"), id="metadata unreadable"),
    ],
)
def test_a_damaged_index_is_rebuilt_from_the_catalog_not_trusted(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    store = _store(cat, tmp_path)
    x = _unit(400)
    ids = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(x), [], 1.0, 1, True))
    size = store.index_path.stat().st_size
    damage(store.index_path)
    if store.index_path.exists() and store.index_path.read_bytes() != b"garbage":
        assert store.index_path.stat().st_size == size  # same size, and it loads: only the checksum can tell
        VectorIndex.load(store.index_path, DIM)
    again = _store(reopen(), tmp_path)
    assert sorted(again.index.ids()) == sorted(ids)
    scores = again.search(x[7], 1).scores
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


def test_a_stray_vector_in_a_vouched_for_file_is_caught_by_the_count(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    ids = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(_unit(20)), [], 1.0, 1, True))
    store.index.add(np.array([9999], np.int64), _unit(1, seed=5))
    store.save()  # the metadata now vouches for a file that disagrees with the catalog
    again = _store(reopen(), tmp_path)
    assert sorted(again.index.ids()) == sorted(ids)


def test_temp_files_of_a_killed_save_are_removed_at_open(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(_unit(3)), [], 1.0, 1, True))
    (store.index_path.parent / ".index.abc123").write_bytes(b"half an index")
    again = _store(reopen(), tmp_path)
    assert again.index.ntotal == 3
    assert not list(store.index_path.parent.glob(".index.*"))


def test_filtered_search_through_the_store_equals_brute_force(cat: Catalog, tmp_path: Path) -> None:
    store = _store(cat, tmp_path)
    x = _unit(300, seed=4)
    ids = np.array(store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(x[:150], "north", 1000.0), [], 1.0, 1, True))
                   + store.commit_chunk(_video(cat, "b", "south"), Checkpoint(_rows(x[150:], "south", 1000.0), [], 1.0, 1, True)))  # fmt: skip
    ts = np.concatenate([1000.0 + np.arange(150), 1000.0 + np.arange(150)])
    cams = np.array(["north"] * 150 + ["south"] * 150)
    where = IndexFilter(from_ts_s=1040.0, to_ts_s=1100.0, cameras=("south",))
    inside = (ts >= 1040) & (ts <= 1100) & (cams == "south")
    q = _unit(1, seed=11)[0]
    m = store.search(q, 10, where)
    brute = np.argsort(-(x[inside] @ q))[:10]
    assert m.candidates == int(inside.sum()) == 61
    assert list(m.ids) == list(ids[inside][brute])


def test_a_collection_that_outgrows_the_flat_limit_reopens_as_ivf(cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path) -> None:
    n = 3000
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((150, 16)).astype(np.float32)
    x = centres[rng.integers(0, 150, n)] + 0.3 * rng.standard_normal((n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    small = Store(cat, tmp_path / "index", "e", 16, flat_max=10_000)
    ids = np.array(small.commit_chunk(_video(cat, "a"), Checkpoint(_rows(x), [], 1.0, 1, True)))
    assert small.index.kind == "Flat"
    big = Store(reopen(), tmp_path / "index", "e", 16, flat_max=1000)
    assert big.index.kind == factory_for(n, 1000) and big.index.kind.startswith("IVF") and big.ntotal == n
    allowed = (1000.0 <= np.arange(n)) & (np.arange(n) < 1060)
    hits = 0
    for qi in rng.integers(0, n, 20):
        got = big.search(x[qi], 5, IndexFilter(from_ts_s=1000.0, to_ts_s=1059.0)).ids
        brute = ids[allowed][np.argsort(-(x[allowed] @ x[qi]))[:5]]
        hits += len(set(got) & set(brute))
    assert hits / 100 >= 0.9  # a 2% filter still finds the brute-force top matches: nprobe grows as it narrows
    assert big.index.shards == 13  # 51 minutes of sightings: 13 shards of 4 minutes


def test_a_sharded_ivf_index_follows_commits_and_deletions_of_another_node(
    cat: Catalog, reopen: Callable[[], Catalog], tmp_path: Path
) -> None:
    """Past the flat limit, a node's time-sharded index catches up from the log (new shards for new hours, removals
    from their shards) and reopens from its saved file without a rebuild."""
    x = _unit(2400, 16, seed=3)
    writer = Store(cat, tmp_path / "writer", "e", 16, flat_max=1000)
    first = writer.commit_chunk(_video(cat, "a"), Checkpoint(_rows(x[:2000], t0=10_000.0), [], 1.0, 1, True))
    node = Store(reopen(), tmp_path / "node", "e", 16, flat_max=1000)
    assert node.index.kind.startswith("IVF") and node.ntotal == 2000
    shards = node.index.shards
    later = _video(cat, "b", camera="later")
    new_ids = writer.commit_chunk(later, Checkpoint(_rows(x[2000:], camera="later", t0=50_000.0), [], 1.0, 1, True))
    m = node.search(x[2100], 5, IndexFilter(from_ts_s=50_000.0, to_ts_s=50_400.0))
    assert m.ids[0] == new_ids[100] and node.ntotal == 2400 and node.index.shards > shards
    writer.delete_video(later)
    assert node.search(x[2100], 5, IndexFilter(from_ts_s=50_000.0, to_ts_s=50_400.0)).ids.size == 0
    assert node.ntotal == 2000 and node.index.shards == shards
    node.close()
    again = Store(reopen(), tmp_path / "node", "e", 16, flat_max=1000)
    assert again.ntotal == 2000 and again.index.shards == shards
    assert again.search(x[7], 1).ids[0] == first[7]


@pytest.mark.parametrize(
    "window",
    [(1000.0, 5000.0), (1030.5, 1089.5), (1119.0, 1121.0), (None, 2000.0), (2500.0, None), (0.0, 999.0)],
    ids=["hours", "inside one minute", "across one minute boundary", "open start", "open end", "before all"],
)
def test_a_time_window_is_one_id_range_and_equals_brute_force(cat: Catalog, tmp_path: Path, window) -> None:  # type: ignore[no-untyped-def]
    """Ids follow time, so a window alone selects one range plus its two partial minutes (and legacy ids)."""
    store = _store(cat, tmp_path)
    x = _unit(400, seed=6)
    ts = 1000.0 + np.arange(400) * 10.0  # 10 s apart: 6 per minute, over 66 minutes
    rows = [NewSighting("cam", i, float(t), float(t), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", v) for i, (t, v) in enumerate(zip(ts, x))]
    ids = np.array(store.commit_chunk(_video(cat, "a"), Checkpoint(rows, [], 1.0, 1, True)))
    assert (np.diff(ids) > 0).all()  # stored in time order: ids grow with time
    lo, hi = (-np.inf if window[0] is None else window[0]), (np.inf if window[1] is None else window[1])
    inside = (ts >= lo) & (ts <= hi)
    sel = cat.select("e", window[0], window[1], None)
    assert sel is not None and sel.count == int(inside.sum())
    assert len(sel.ranges) == 1 and len(sel.ids) == 0 and len(sel.partial) <= 2  # whatever the window
    q = _unit(1, seed=12)[0]
    m = store.search(q, 10, IndexFilter(from_ts_s=window[0], to_ts_s=window[1]))
    brute = ids[inside][np.argsort(-(x[inside] @ q))[:10]]
    assert list(m.ids) == list(brute) and m.candidates == int(inside.sum())
    # the range holds the window; what else it holds lies in the partial minutes' ranges (checked by time)
    in_range = (ids >= sel.ranges[0][0]) & (ids < sel.ranges[0][1])
    in_partial = np.zeros(len(ids), bool)
    for a, b in sel.partial:
        in_partial |= (ids >= a) & (ids < b)
    assert not (inside & ~in_range).any() and not (in_range & ~inside & ~in_partial).any()
    assert sel.spanned == int(in_range.sum())  # what the range holds: the store asks for k x spanned / count
    # the time-sharded IVF index (past the flat limit) reads that envelope and returns only the window's sightings
    ivf = Store(cat, tmp_path / "ivf", "e", DIM, flat_max=100)
    assert ivf.index.kind.startswith("IVF")
    got = ivf.search(q, 400, IndexFilter(from_ts_s=window[0], to_ts_s=window[1])).ids
    assert set(got) <= set(ids[inside])


@pytest.mark.parametrize("flat_max", [10_000, 100], ids=["flat", "ivf"])
def test_a_window_edge_crowded_with_better_matches_outside_it_still_gives_the_windows_best_k(
    cat: Catalog, tmp_path: Path, flat_max: int
) -> None:
    """The index searches a window's first and last minutes whole; when the best matches of those minutes lie
    outside the window (here 40 near-copies of the query, seconds before its start), the store drops them and asks
    the index for more until it has the window's own best k, exactly."""
    rng = np.random.default_rng(9)
    q = _unit(1, seed=13)[0]
    copies = q + 0.05 * rng.standard_normal((40, DIM)).astype(np.float32)
    x = np.concatenate([copies / np.linalg.norm(copies, axis=1, keepdims=True), _unit(360, seed=14)])
    ts = np.concatenate([1200.0 + np.arange(40) * 0.5, 1221.0 + np.arange(360) * 3.0])  # window from 1220.0
    rows = [NewSighting("cam", i, float(t), float(t), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", v) for i, (t, v) in enumerate(zip(ts, x))]
    store = Store(cat, tmp_path / "ix", "e", DIM, flat_max=flat_max)
    ids = np.array(store.commit_chunk(_video(cat, "a"), Checkpoint(rows, [], 1.0, 1, True)))
    inside = ts >= 1220.0
    for k in (1, 10, 50):
        m = store.search(q, k, IndexFilter(from_ts_s=1220.0, to_ts_s=None))
        brute = ids[inside][np.argsort(-(x[inside] @ q))[:k]]
        assert set(m.ids) <= set(ids[inside]) and m.candidates == int(inside.sum())
        if flat_max > 400:  # exact index: exactly the brute force ranking
            assert list(m.ids) == list(brute)
        else:
            assert len(m.ids) == k and len(set(m.ids) & set(brute)) >= 0.8 * k


def test_ids_are_never_reused_after_a_removal(cat: Catalog, tmp_path: Path) -> None:
    """An id an audit entry or a case names must never come to mean another sighting."""
    store = _store(cat, tmp_path)
    first = store.commit_chunk(_video(cat, "a"), Checkpoint(_rows(_unit(3), t0=5000.0), [], 1.0, 1, True))
    store.delete_video(1)
    again = store.commit_chunk(_video(cat, "b"), Checkpoint(_rows(_unit(3, seed=1), t0=5000.0), [], 1.0, 1, True))
    assert not set(first) & set(again)
    assert cat.select("e", 4900.0, 6000.0, None).count == 3  # type: ignore[union-attr]
