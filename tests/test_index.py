"""FAISS index (pure): filtered search equals brute force on the subset; saves are atomic."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from vsearch.errors import IndexStateError
from vsearch.ids import ID_BUCKET_BITS
from vsearch.index import VectorIndex
from vsearch.types import IdSet


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


# -- the time-sharded IVF layout (collections past the flat limit) ---------------------------------------------------
def _timed(n: int, d: int, minutes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n vectors seen over `minutes` minutes, with the catalog's time-ordered ids; returns ids, vectors, minutes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    minute = 29_000_000 + np.sort(rng.integers(0, minutes, n))
    return ((minute + 1) << ID_BUCKET_BITS) + np.arange(n), x, minute


def _ivf(ids: np.ndarray, x: np.ndarray, nlist: int = 32) -> VectorIndex:
    index = VectorIndex(x.shape[1], factory=f"IVF{nlist},SQ8")
    index.train(x, ids)
    index.add(ids, x)
    return index


@pytest.mark.parametrize("window", [(0, 3), (10, 45), (0, 240)])
def test_sharded_ivf_window_search_matches_brute_force_and_visits_only_the_windows_shards(
    window: tuple[int, int],
) -> None:
    ids, x, minute = _timed(8000, 32, 240)
    index = _ivf(ids, x, nlist=16)  # every list probed (16 at least): exact up to the 8-bit codes
    assert index.kind == "IVF16,SQ8" and index.shards == 15 and index.ntotal == 8000
    lo_min, hi_min = 29_000_000 + window[0], 29_000_000 + window[1]
    # as the catalog selects a window: whole minutes as one id range, the partial minute at each end as single ids
    whole = (minute > lo_min) & (minute < hi_min - 1)
    edges = np.flatnonzero(((minute == lo_min) | (minute == hi_min - 1)) & (np.arange(8000) % 2 == 0))
    inside = whole.copy()
    inside[edges] = True
    allowed = IdSet((((lo_min + 2) << ID_BUCKET_BITS, hi_min << ID_BUCKET_BITS),), ids[edges], int(inside.sum()))
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = x[rng.integers(0, 8000)] + 0.2 * rng.standard_normal(32).astype(np.float32)
        faiss.cvar.indexIVF_stats.reset()
        scores, got = index.search(q, 10, allowed)
        exact = np.argsort(-np.where(inside, x @ q, -np.inf))[:10]
        # 8-bit codes: the same neighbours, scores within quantisation error
        assert len(set(got) & set(ids[exact])) >= 9
        assert np.allclose(scores, np.sort(x[exact] @ q)[::-1], atol=0.02)
        shards_touched = len(set((minute[inside] - 29_000_000) // 16))
        # the other shards are not scanned (a shard at the window's edge is scanned once per range or minute)
        assert faiss.cvar.indexIVF_stats.nlist <= 3 * shards_touched * 16


def test_sharded_ivf_single_ids_removal_and_legacy_ids() -> None:
    ids, x, _ = _timed(3000, 16, 120)
    legacy = np.arange(1, 201, dtype=np.int64)  # ids from before time-ordered ids: a shard of their own
    index = _ivf(np.concatenate([legacy, ids]), np.concatenate([x[:200], x]), nlist=16)
    assert index.ntotal == 3200
    assert set(index.search(x[0], 2)[1]) == {legacy[0], ids[0]}  # the same vector under both ids
    picked = np.sort(np.concatenate([legacy[:5], ids[::300]]))
    got = index.search(x[300], 50, IdSet(ids=picked, count=len(picked)))[1]
    assert set(got) == set(picked) and got[0] == ids[300]
    assert index.remove(np.array([ids[300], legacy[0], 12345], np.int64)) == 2
    assert ids[300] not in index.search(x[300], 50, IdSet(ids=picked, count=len(picked)))[1]
    assert index.ntotal == 3198 and sorted(index.ids()) == sorted(set(np.concatenate([legacy, ids])) - {ids[300], legacy[0]})


def test_sharded_ivf_save_load_round_trip_and_compaction(tmp_path: Path) -> None:
    ids, x, _ = _timed(4000, 16, 300)
    index = _ivf(ids, x, nlist=16)
    before = [index.search(x[i], 5) for i in range(0, 4000, 400)]
    index.compact()
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", 16)
    assert (again.kind, again.shards, again.ntotal) == (index.kind, index.shards, 4000)
    for i, (scores, got) in zip(range(0, 4000, 400), before, strict=True):
        s2, g2 = again.search(x[i], 5)
        assert list(g2) == list(got) and np.allclose(s2, scores)
    again.add(ids[:1] + 1_000_000 * (1 << ID_BUCKET_BITS), x[:1])  # a new shard, much later
    assert again.shards == index.shards + 1 and again.search(x[0], 2)[1].tolist().count(ids[0]) == 1
    with pytest.raises(IndexStateError):
        VectorIndex.load(tmp_path / "i.faiss", 32)  # another dimension
    assert [p.name for p in tmp_path.iterdir()] == ["i.faiss"]


def test_sharded_ivf_merges_neighbouring_shards_when_the_collection_outgrows_its_span() -> None:
    """Built over 16 minutes (1-minute shards), then fed 10 hours: shards merge (the span doubles) instead of
    piling up, and search still finds every vector's exact neighbour."""
    ids, x, _ = _timed(600, 16, 16)
    index = _ivf(ids[:100], x[:100], nlist=16)
    later = ((29_000_000 + np.arange(500) + 1) << ID_BUCKET_BITS) + 7  # one vector a minute for 500 minutes
    index.add(later, x[100:])
    assert 0 < index.shards <= 64 and index.ntotal == 600
    for i in range(0, 600, 37):
        assert index.search(x[i], 1)[1][0] == np.concatenate([ids[:100], later])[i]


def test_an_index_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    """A single IVF index (the layout before time shards) is not mistaken for an exact one: the store rebuilds it."""
    ids, x = _data(500, 16)
    ivf = faiss.IndexIDMap2(faiss.index_factory(16, "IVF8,SQ8", faiss.METRIC_INNER_PRODUCT))
    ivf.train(x)
    ivf.add_with_ids(x, ids)
    faiss.write_index(ivf, str(tmp_path / "old.faiss"))
    with pytest.raises(IndexStateError):
        VectorIndex.load(tmp_path / "old.faiss", 16)


def test_ntotal_and_search_are_safe_while_another_thread_adds_shards() -> None:
    import sys
    import threading

    ids, x, _ = _timed(400, 16, 16)
    index = _ivf(ids, x, nlist=16)
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                _ = index.ntotal
                index.search(x[0], 5)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the race shows within a few hundred shards
    t = threading.Thread(target=reader)
    t.start()
    try:
        for m in range(2000):  # new shards, and emptied ones dropped
            sid = np.array([((29_100_000 + 40 * m + 1) << ID_BUCKET_BITS) + 1], np.int64)
            index.add(sid, x[m % 400 : m % 400 + 1])
            if m % 3 == 0:
                index.remove(sid)
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(switch)
    assert not errors and index.ntotal == 400 + 1333


def test_sharded_ivf_lists_out_of_order_after_removals_and_late_additions_still_search_exactly(tmp_path: Path) -> None:
    """Removals (faiss moves a list's last entry into the hole) and additions older than what a shard holds break
    the lists' id order: such shards are searched with a generic selector until a save sorts them again."""
    ids, x, minute = _timed(4000, 16, 64)
    index = _ivf(ids[1000:], x[1000:], nlist=16)
    index.add(ids[:1000], x[:1000])  # older sightings ingested later (same shards)
    index.remove(ids[1000:4000:7])
    alive = np.ones(4000, bool)
    alive[1000:4000:7] = False
    lo, hi = 29_000_000 + 3, 29_000_000 + 40
    inside = alive & (minute >= lo) & (minute < hi)
    allowed = IdSet((((lo + 1) << ID_BUCKET_BITS, (hi + 1) << ID_BUCKET_BITS),), np.zeros(0, np.int64), int(inside.sum()))

    def check(ix: VectorIndex) -> None:
        for i in range(0, 4000, 250):
            got = ix.search(x[i], 10, allowed)[1]
            exact = ids[np.argsort(-np.where(inside, x @ x[i], -np.inf))[:10]]
            assert len(set(got) & set(exact)) >= 9

    check(index)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", 16)
    check(again)
    check(index)  # saving sorted the lists in place


@pytest.mark.parametrize("minutes", [(7, 53), (20, 21), (0, 119)])
def test_sharded_ivf_time_window_is_one_id_range_across_shards(minutes: tuple[int, int]) -> None:
    """As the catalog describes a window: one id range from its first minute to its last, split over the shards
    it touches (each read by binary search in its sorted lists): exactly the range's best (8 lists, all probed)."""
    ids, x, minute = _timed(6000, 16, 120, seed=4)
    index = _ivf(ids, x, nlist=8)
    assert index.shards > 1
    lo_min, hi_min = 29_000_000 + minutes[0], 29_000_000 + minutes[1]
    inside = (minute >= lo_min) & (minute <= hi_min)
    allowed = IdSet((((lo_min + 1) << ID_BUCKET_BITS, (hi_min + 2) << ID_BUCKET_BITS),), count=int(inside.sum()))
    rng = np.random.default_rng(5)
    for _ in range(10):
        q = x[rng.integers(0, 6000)]
        scores, got = index.search(q, 20, allowed)
        exact = ids[np.argsort(-np.where(inside, x @ q, -np.inf))[:20]]
        assert set(got) <= set(ids[inside]) and len(set(got) & set(exact)) >= 18


@pytest.mark.parametrize("kind", ["Flat", "IVF8,SQ8"])
def test_a_camera_is_its_slot_in_both_layouts(kind: str, tmp_path: Path) -> None:
    """Ids with camera slots (vsearch.ids): a filter of slots within a time window returns exactly those cameras'
    best in it, and single ids of other slots with them; the Flat layout keeps one partition a slot (a camera
    filter scans its partition only) and saves and loads them."""
    from vsearch.ids import camera_minute_ids, slot_of

    rng = np.random.default_rng(7)
    n, d = 6000, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    minute = 29_000_000 + np.sort(rng.integers(0, 120, n))
    slot = rng.integers(1, 6, n)
    ids = np.array([camera_minute_ids(int(m), int(s))[0] for m, s in zip(minute, slot)]) + _rank_within(minute, slot)
    assert len(set(ids.tolist())) == n and (slot_of(ids) == slot).all()
    index = VectorIndex(d) if kind == "Flat" else _ivf(ids, x, nlist=8)
    if kind == "Flat":
        index.add(ids, x)
        assert sorted(index._parts) == [1, 2, 3, 4, 5]  # type: ignore[arg-type]
    lo, hi = 29_000_000 + 20, 29_000_000 + 80
    extra = ids[(slot == 1)][:3]
    inside = ((slot == 2) | (slot == 4)) & (minute >= lo) & (minute < hi) | np.isin(ids, extra)
    allowed = IdSet((((lo + 1) << ID_BUCKET_BITS, (hi + 1) << ID_BUCKET_BITS),), extra, int(inside.sum()), slots=(2, 4))

    def check(ix: VectorIndex) -> None:
        for i in range(0, n, 600):
            got = ix.search(x[i], 20, allowed)[1]
            exact = ids[np.argsort(-np.where(inside, x @ x[i], -np.inf))[:20]]
            assert set(got) <= set(ids[inside]) and len(set(got) & set(exact)) >= (20 if kind == "Flat" else 18)

    check(index)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", d)
    assert again.ntotal == n and again.kind == kind
    check(again)


def _rank_within(minute: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Each sighting's rank among those of its camera and minute (in order)."""
    seen: dict[tuple[int, int], int] = {}
    out = np.zeros(len(minute), np.int64)
    for i, key in enumerate(zip(minute.tolist(), slot.tolist())):
        out[i] = seen.get(key, 0)
        seen[key] = out[i] + 1
    return out


# -- the compressed layout: IVF-PQ time shards re-ranked from 8-bit codes on disk ------------------------------
def _clustered(n: int, d: int, minutes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n vectors around n / 20 identities (like real embeddings: near neighbours exist), with time-ordered ids."""
    ids, _, minute = _timed(n, d, minutes, seed)
    rng = np.random.default_rng(seed + 100)
    centres = rng.standard_normal((n // 20, d)).astype(np.float32)
    x = centres[rng.integers(0, n // 20, n)] + 0.4 * rng.standard_normal((n, d)).astype(np.float32)
    return ids, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), minute


def _pq(
    ids: np.ndarray, x: np.ndarray, nlist: int = 16, m: int = 8, spill: Path | None = None, sample: np.ndarray | None = None
) -> VectorIndex:
    index = VectorIndex(x.shape[1], factory=f"IVF{nlist},PQ{m}+SQ8", spill_dir=spill)
    index.train(x if sample is None else sample, ids)  # PQ: at least 256 vectors
    for i in range(0, len(ids), 1000):  # streamed, as the store adds
        index.add(ids[i : i + 1000], x[i : i + 1000])
    return index


def _recall(index: VectorIndex, x: np.ndarray, ids: np.ndarray, inside: np.ndarray, queries: range) -> float:
    hits = []
    for i in queries:
        got = index.search(x[i], 10, IdSet((), ids[inside], int(inside.sum())) if not inside.all() else None)[1]
        exact = ids[np.argsort(-np.where(inside, x @ x[i], -np.inf))[:10]]
        hits.append(len(set(got) & set(exact)) / 10)
    return float(np.mean(hits))


def test_the_layout_follows_the_collections_size() -> None:
    from vsearch.index import COMPRESSED_MIN_VECTORS, FLAT_MAX_VECTORS, PQ_M, factory_for

    assert factory_for(FLAT_MAX_VECTORS) == "Flat"
    assert factory_for(FLAT_MAX_VECTORS + 1).endswith(",SQ8") and "PQ" not in factory_for(COMPRESSED_MIN_VECTORS)
    assert factory_for(COMPRESSED_MIN_VECTORS + 1).endswith(f",PQ{PQ_M}+SQ8")
    assert [factory_for(n, 100, 1000) for n in (100, 101, 1000, 1001)] == ["Flat", "IVF16,SQ8", "IVF64,SQ8", f"IVF64,PQ{PQ_M}+SQ8"]
    assert VectorIndex(64, factory=factory_for(1001, 100, 1000)).kind == f"IVF64,PQ{PQ_M}+SQ8"
    with pytest.raises(IndexStateError):
        VectorIndex(30, factory="IVF16,PQ8+SQ8")  # 30 dims do not split into 8 sub-vectors


def test_compressed_layout_recall_against_exact_on_a_clustered_set() -> None:
    """PQ codes alone rank near neighbours loosely; re-ranked from 8-bit codes the top-10 is exact's (>= 0.95),
    unfiltered and in a time window (one id range over the shards it touches)."""
    import vsearch.index as vi

    ids, x, minute = _clustered(6000, 32, 240)
    index = _pq(ids, x)
    assert index.kind == "IVF16,PQ8+SQ8" and index.shards > 1 and index.ntotal == 6000
    everything = np.ones(6000, bool)
    assert _recall(index, x, ids, everything, range(0, 6000, 150)) >= 0.95
    lo, hi = 29_000_000 + 30, 29_000_000 + 90
    inside = (minute >= lo) & (minute < hi)
    window = IdSet((((lo + 1) << ID_BUCKET_BITS, (hi + 1) << ID_BUCKET_BITS),), count=int(inside.sum()))
    hits = []
    for i in np.flatnonzero(inside)[::40]:
        got = index.search(x[i], 10, window)[1]
        exact = ids[np.argsort(-np.where(inside, x @ x[i], -np.inf))[:10]]
        assert set(got) <= set(ids[inside])
        hits.append(len(set(got) & set(exact)) / 10)
    assert np.mean(hits) >= 0.95
    old = vi.RERANK_DEPTH
    vi.RERANK_DEPTH = 10  # no re-ranking: the PQ order alone is visibly worse (what the on-disk codes buy)
    try:
        assert _recall(index, x, ids, everything, range(0, 6000, 150)) < 0.9
    finally:
        vi.RERANK_DEPTH = old


def test_compressed_layout_camera_filter_remove_and_readd(tmp_path: Path) -> None:
    """A camera is its slot bits, as in the SQ8 shards; a removed sighting is never returned, before or after a
    save and load (its re-ranking row stays on disk, unread); one added again is scored from its newest row."""
    ids, x, minute = _clustered(4000, 16, 120, seed=3)
    ids = ids + ((np.arange(4000) % 4 + 1) << 12)  # camera slots 1-4 (vsearch.ids.SLOT_SHIFT)
    index = _pq(ids, x, m=4)
    slot2 = (np.arange(4000) % 4 + 1) == 2
    allowed = IdSet(((int(ids[0]), int(ids[-1]) + 1),), count=int(slot2.sum()), slots=(2,))
    for i in np.flatnonzero(slot2)[::100]:
        got = index.search(x[i], 10, allowed)[1]
        assert set(got) <= set(ids[slot2]) and got[0] == ids[i]
    gone = ids[::5]
    assert index.remove(gone) == len(gone) and index.ntotal == 4000 - len(gone)
    index.add(ids[:1], -x[:1])  # sighting 0 again, with another vector: the search scores it by that one
    index.save(tmp_path / "i.faiss")
    for ix in (index, VectorIndex.load(tmp_path / "i.faiss", 16)):
        assert ix.ntotal == 4000 - len(gone) + 1
        for i in range(5, 4000, 200):
            assert not set(ix.search(x[i], 50)[1]) & set(gone[1:].tolist())
        scores, got = ix.search(-x[0], 1)
        assert got[0] == ids[0] and scores[0] > 0.95


def test_compressed_layout_save_load_round_trip_spills_and_segments(tmp_path: Path) -> None:
    """Rows past SPILL_ROWS go to segment files before the index has a file; a save moves them beside it, writes
    the index atomically and deletes segments no saved index lists; the loaded index answers as the saved one; a
    missing segment is refused (the store rebuilds from the catalog)."""
    import vsearch.index as vi

    old = vi.SPILL_ROWS
    vi.SPILL_ROWS = 300
    try:
        ids, x, _ = _clustered(4000, 16, 300, seed=5)
        index = _pq(ids, x, m=4, spill=tmp_path / "spill")
        assert any((tmp_path / "spill").iterdir())  # spilled before any save
        before = [index.search(x[i], 5) for i in range(0, 4000, 400)]
        index.save(tmp_path / "i.faiss")
        segments = {p.name for p in tmp_path.iterdir() if ".fine-" in p.name}
        assert segments and not list((tmp_path / "spill").iterdir())
        again = VectorIndex.load(tmp_path / "i.faiss", 16)
        assert (again.kind, again.shards, again.ntotal) == (index.kind, index.shards, 4000)
        for i, (scores, got) in zip(range(0, 4000, 400), before, strict=True):
            s2, g2 = again.search(x[i], 5)
            assert list(g2) == list(got) and np.allclose(s2, scores)
        later = ids[:500] + 1_000_000 * (1 << ID_BUCKET_BITS)  # a new shard, much later
        again.add(later, x[:500])
        again.remove(ids[:3000])  # whole shards dropped: their segments go at the next save
        again.save(tmp_path / "i.faiss")
        now = {p.name for p in tmp_path.iterdir() if ".fine-" in p.name}
        assert now != segments and len(now) <= len(segments) + again.shards
        third = VectorIndex.load(tmp_path / "i.faiss", 16)
        assert third.ntotal == 1500 and third.search(x[0], 1)[1][0] == later[0]
        for name in now:
            (tmp_path / name).unlink()
        with pytest.raises(IndexStateError):
            VectorIndex.load(tmp_path / "i.faiss", 16)
    finally:
        vi.SPILL_ROWS = old


def test_compressed_layout_merges_shards_with_their_rows() -> None:
    ids, x, _ = _clustered(600, 16, 16, seed=6)
    index = _pq(ids[:100], x[:100], m=4, sample=x)
    later = ((29_000_000 + np.arange(500) + 1) << ID_BUCKET_BITS) + 7  # one a minute for 500 minutes: shards merge
    index.add(later, x[100:])
    assert 0 < index.shards <= 64 and index.ntotal == 600
    all_ids = np.concatenate([ids[:100], later])
    for i in range(0, 600, 37):
        assert index.search(x[i], 1)[1][0] == all_ids[i]
