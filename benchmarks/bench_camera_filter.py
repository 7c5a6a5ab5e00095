"""A camera filter at 20,000 and 1,000,000 sightings, before and after camera slots (issue 23), in one run.

Before: the catalog lists the camera's ids in the window from the covering (camera_id, ts, embedder, id) index
(migration 10) and one exact index checks every vector against that list (faiss IDSelectorBatch). After: the
catalog describes the filter as the camera's slot in the window's id range (`Catalog.select`: id_slots, one row
a camera a minute, and the partial minutes counted by id range) and the exact index scans that camera's partition
only. Both must return the same top-50 before any time is reported.

The catalog is written in bulk (the real schema, ids by the real layout, 50 cameras x 24 h as bench_store, 4-byte
stand-in embeddings: the statements read no embedding); the index holds 256-d vectors as bench_store's, searched
on one thread.

    python -m benchmarks.bench_camera_filter [--sizes 20000,1000000] [--runs 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.bench_store import CAMERAS, DIM, HOURS, T0
from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.catalog import SqliteCatalog
from vsearch.ids import ID_BUCKET_S, camera_minute_ids
from vsearch.index import VectorIndex

EMBEDDER = "synthetic"


def write_catalog(path: Path, n: int, seed: int = 0) -> tuple[SqliteCatalog, np.ndarray, np.ndarray, np.ndarray]:
    """n sightings of CAMERAS cameras (slots 1..CAMERAS) over HOURS hours, ids as Catalog._allocate_ids gives them;
    returns the catalog, ids, times and cameras (slot numbers)."""
    rng = np.random.default_rng(seed)
    cam = rng.integers(1, CAMERAS + 1, n)
    ts = np.sort(T0 + rng.uniform(0, 3600 * HOURS, n))
    minute = (ts // ID_BUCKET_S).astype(np.int64)
    order = np.lexsort((np.arange(n), minute, cam))  # each camera-minute's sightings in time order
    key = cam[order] * (1 << 40) + minute[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    ids = np.array([camera_minute_ids(int(m), int(s))[0] for m, s in zip(minute, cam)], np.int64) + rank
    cat = SqliteCatalog(path)
    db = cat._db
    with db:
        db.executemany("INSERT INTO cameras (id, created_at, slot) VALUES (?, 0, ?)", [(f"cam-{s:02d}", s) for s in range(1, CAMERAS + 1)])
        db.executemany(
            "INSERT INTO videos (id, camera_id, path, sha256, start_ts, fps, frame_count, width, height, status, embedder,"
            " added_at) VALUES (?, ?, '/v.mp4', ?, ?, 10, 864000, 1920, 1080, 'done', ?, 0)",
            [(s, f"cam-{s:02d}", f"sha-{s}", T0, EMBEDDER) for s in range(1, CAMERAS + 1)],
        )
        blob = np.zeros(1, np.float32).tobytes()
        db.executemany(
            "INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence, quality,"
            " thumb_path, embedder, embedding) VALUES (?, ?, ?, 1, ?, 0, 0, 0, 1, 1, 0.9, 0.5, 's.jpg', ?, ?)",
            ((int(i), int(s), f"cam-{s:02d}", float(t), EMBEDDER, blob) for i, s, t in zip(ids, cam, ts)),
        )
        slots, counts = np.unique(np.stack([cam, minute]), axis=1, return_counts=True)
        db.executemany("INSERT INTO id_slots (slot, bucket, next_n, n) VALUES (?, ?, ?, ?)",
                       [(int(s), int(m), int(c), int(c)) for (s, m), c in zip(slots.T, counts)])  # fmt: skip
        buckets, counts = np.unique(minute, return_counts=True)
        db.executemany("INSERT INTO id_buckets (bucket, next_n, n) VALUES (?, 0, ?)", [(int(b), int(c)) for b, c in zip(buckets, counts)])
        db.execute("ANALYZE")
    return cat, ids, ts, cam


def median_ms(fn: Any, runs: int) -> float:
    fn()  # warm-up
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    return float(np.median(ms))


def bench(n: int, runs: int, seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-camera-") as tmp:
        cat, ids, ts, cam = write_catalog(Path(tmp) / "c.sqlite", n, seed)
        rng = np.random.default_rng(seed + 1)
        x = rng.standard_normal((n, DIM), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        one = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))  # before: one exact index
        one.add_with_ids(x, ids)
        parts = VectorIndex(DIM)  # after: one exact partition per camera slot
        parts.add(ids, x)
        del x
        q = np.ascontiguousarray(rng.standard_normal((1, DIM), dtype=np.float32))
        q /= np.linalg.norm(q)
        slot, camera, lo, span = CAMERAS // 2, f"cam-{CAMERAS // 2:02d}", float(ts.min()), float(ts.max() - ts.min())
        listing = ("SELECT id FROM sightings WHERE embedder || '' = ? AND ts >= ? AND ts <= ? AND camera_id IN (?)")
        for frac in (0.01, 0.10, 1.0):
            a = lo + 0.45 * span * (frac < 1)
            window = (a, a + frac * span) if frac < 1 else (None, None)
            bounds = (window[0] or 0.0, window[1] or 1e300)

            def before(bounds: tuple[float, float] = bounds) -> list[int]:
                listed = np.array([r[0] for r in cat._q(listing, [EMBEDDER, *bounds, camera])], np.int64)
                found = one.search(q, 50, params=faiss.SearchParameters(sel=faiss.IDSelectorBatch(listed)))[1][0]
                return [i for i in found.tolist() if i >= 0]

            def after(window: tuple[float | None, float | None] = window, k: int = 50) -> list[int]:
                allowed = cat.select(EMBEDDER, *window, [camera])
                assert allowed is not None
                return parts.search(q, k, allowed)[1].tolist()  # type: ignore[no-any-return]

            inside = (cam == slot) & (ts >= bounds[0]) & (ts <= bounds[1])
            allowed = cat.select(EMBEDDER, *window, [camera])
            assert allowed is not None and allowed.count == int(inside.sum()), (allowed.count, int(inside.sum()))
            # correctness first: the same top-50 (the partial minutes come back whole: the store drops by time)
            keep = set(ids[inside].tolist())
            assert [i for i in after(k=500) if i in keep][:50] == before()
            row = {
                "sightings": n, "window": f"{frac:.0%}", "camera_sightings": int(inside.sum()),
                "before_catalog_ms": median_ms(lambda b=bounds: cat._q(listing, [EMBEDDER, *b, camera]), runs),
                "after_catalog_ms": median_ms(lambda w=window: cat.select(EMBEDDER, *w, [camera]), runs),
                "before_search_ms": median_ms(before, runs), "after_search_ms": median_ms(after, runs),
            }
            rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        cat.close()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)  # one thread: on a loaded machine faiss's spinning threads time the load, not the scan
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,1000000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    args = parser.parse_args(argv)
    rows = [r for n in args.sizes.split(",") for r in bench(int(n), args.runs)]
    print_table(rows, f"\na camera filter, one camera of {CAMERAS} (SQLite), top-50, p50 of {args.runs} runs (ms)")
    payload = {"benchmark": "camera_filter", "machine": machine_info(["numpy", "faiss-cpu"]), "rows": rows}
    write_json("bench_camera_filter", payload, args.out or RESULTS_DIR)
    return payload


if __name__ == "__main__":
    main()
