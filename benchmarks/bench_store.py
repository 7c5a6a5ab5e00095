"""Search through the store at scale: the service's filtered search (query embedding excluded) over N synthetic
sightings written through the real catalog-commit path, with 1 %, 10 % and 100 % time windows, and one camera of 50 with 1 %, 10 % and 100 %: p50/p99 latency
and recall@10 against exact search on the window; catalog write throughput; index bytes per sighting.

Sightings come in 'files': one camera's hour at a time, in time order, committed in checkpoints of 100, as ingest
does; 50 cameras over 24 hours. Correctness first: recall@10 is computed before any latency is reported.

    python -m benchmarks.bench_store --size S|M|L [--catalog-url postgresql://...]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_index import synthetic
from benchmarks.common import RESULTS_DIR, machine_info, percentiles_ms, print_table, store_args, write_json
from vsearch.catalog import Checkpoint, NewSighting
from vsearch.config import Settings
from vsearch.store import IndexFilter, Store, open_catalog

SIZES = {"S": 20_000, "M": 1_000_000, "L": 10_000_000}
T0 = 1_772_323_200.0  # 2026-03-01T00:00Z
CAMERAS, HOURS, DIM, N_QUERIES = 50, 24, 256, 100


def populate(
    settings: Settings, n: int, seed: int = 0, chunk: int = 100, cameras: int = CAMERAS, hours: int = HOURS
) -> tuple[Store, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """n sightings through Store.commit_chunk, `chunk` per checkpoint, `cameras` cameras over `hours` hours from
    T0; returns the (in-process) store, their ids, times, cameras, vectors and the write rate."""
    x, _ = synthetic(n, DIM, seed)
    rng = np.random.default_rng(seed)
    per_file = int(np.ceil(n / (cameras * hours)))
    ts = np.empty(n)
    for f in range(0, n, per_file):  # each file: one camera-hour, in time order
        hour = (f // per_file) % hours
        ts[f : f + per_file] = np.sort(rng.uniform(0, 3600, min(per_file, n - f))) + T0 + 3600 * hour
    store = Store(open_catalog(settings), settings.index_dir, "synthetic", DIM, settings.index_flat_max, follow=False)
    cat = store.catalog
    ids = np.empty(n, np.int64)
    cams = np.empty(n, object)
    t = time.perf_counter()
    for f in range(0, n, per_file):
        cam = f"cam-{(f // per_file) // hours % cameras:02d}"
        cams[f : f + per_file] = cam
        v = cat.begin_video(cam, f"/{f}.mp4", f"sha-{f}", float(ts[f]), 10.0, 36_000, (1920, 1080), "synthetic")
        end = min(f + per_file, n)
        for c in range(f, end, chunk):
            rows = [NewSighting(cam, i, float(ts[i]), float(ts[i] - ts[f]), (0, 0, 10, 20), 0.9, 0.5, "s.jpg", x[i])
                    for i in range(c, min(c + chunk, end))]  # fmt: skip
            ids[c : c + len(rows)] = store.commit_chunk(v.id, Checkpoint(rows, [], 0.0, 0, c + chunk >= end))
    rate = n / (time.perf_counter() - t)
    return Store(cat, settings.index_dir, "synthetic", DIM, settings.index_flat_max), ids, ts, cams, x, rate


def recall_then_latency(
    store: Store, queries: np.ndarray, where: IndexFilter | None, inside: np.ndarray, x: np.ndarray, ids: np.ndarray,
    n_recall: int,
) -> tuple[float, dict[str, float]]:
    """Correctness first: mean recall@10 of the first `n_recall` queries' top-50 against exact search over the
    sightings `inside` the filter (vectors `x`, ids `ids`); then the p50/p99 of every query's search, in ms."""
    recall = []
    for q in queries[:n_recall]:
        got = store.search(q, 50, where).ids[:10]
        scores = np.where(inside, x @ q, -np.inf)  # no copy of the window's vectors (10 GB at 10 M)
        exact = ids[np.argsort(-scores)[: min(10, int(inside.sum()))]]  # a window of fewer than 10: all of it
        recall.append(len(set(got) & set(exact)) / len(exact))
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.search(q, 50, where)
        lat.append((time.perf_counter() - t) * 1000)
    return round(float(np.mean(recall)), 3), percentiles_ms(np.array(lat))


def rss_bytes() -> int:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def loaded_ram(index_path: Path) -> int:
    """Resident memory a fresh process gains by loading the saved index (measured in a subprocess)."""
    code = (
        "import sys; from pathlib import Path; from benchmarks.bench_store import rss_bytes, DIM;"
        "from vsearch.index import VectorIndex; r = rss_bytes(); ix = VectorIndex.load(Path(sys.argv[1]), DIM);"
        "print(rss_bytes() - r)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(index_path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def bench(
    n: int, catalog_url: str | None, seed: int = 0, chunk: int = 100, flat_max: int | None = None
) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        settings = Settings(data_dir=tmp, catalog_url=catalog_url)
        if flat_max is not None:
            settings = Settings(data_dir=tmp, catalog_url=catalog_url, index_flat_max=flat_max)
        store, ids, ts, cams, x, write_rate = populate(settings, n, seed, chunk)
        t, rss0 = time.perf_counter(), rss_bytes()
        assert store.index.ntotal == n  # built (IVF past the flat limit: trained on a sample) and saved
        build_s = time.perf_counter() - t
        bytes_per = store.index_path.stat().st_size / n
        ram_per = (rss_bytes() - rss0) / n  # the build's growth (with what the allocator keeps after building)
        loaded_per = loaded_ram(store.index_path) / n  # what a node that opens the saved index holds
        rng = np.random.default_rng(seed + 1)
        queries = x[rng.integers(0, n, N_QUERIES)] + 0.05 * rng.standard_normal((N_QUERIES, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        rows = []
        span = ts.max() - ts.min()
        camera = f"cam-{CAMERAS // 2:02d}"  # one camera of CAMERAS: 2 % of the sightings
        on_camera = cams == camera
        for frac, cameras in ((0.01, ()), (0.10, ()), (1.0, ()), (0.01, (camera,)), (0.10, (camera,)), (1.0, (camera,))):
            lo = ts.min() + rng.uniform(0, 1 - frac) * span if frac < 1 else None
            where = IndexFilter(None if lo is None else lo, None if lo is None else lo + frac * span, cameras)
            where = None if where == IndexFilter() else where
            inside = np.ones(n, bool) if lo is None else (ts >= lo) & (ts <= lo + frac * span)
            inside &= on_camera if cameras else True
            recall, p = recall_then_latency(store, queries, where, inside, x, ids, n_recall=20)
            select_ms = []  # of which: the catalog describing the filter (an id range and counts, or listed ids)
            for _ in range(N_QUERIES if where is not None else 0):
                t = time.perf_counter()
                store.catalog.select(store.embedder, where.from_ts_s, where.to_ts_s, cameras or None)  # type: ignore[union-attr]
                select_ms.append((time.perf_counter() - t) * 1000)
            rows.append({
                "sightings": n, "window": f"{frac:.0%}", "cameras": len(cameras) or "all", "selected": int(inside.sum()),
                "index": store.index.kind, "shards": store.index.shards,
                "recall_at_10": recall,
                "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"],
                "catalog_select_p50_ms": round(float(np.median(select_ms)), 2) if select_ms else 0.0,
                "write_sightings_per_s": round(write_rate),
                "index_build_s": round(build_s, 1), "index_bytes_per_sighting": round(bytes_per),
                "index_ram_bytes_per_sighting": round(ram_per), "loaded_ram_bytes_per_sighting": round(loaded_per),
                "commit_chunk": chunk,
            })  # fmt: skip
        store.close()
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = store_args(__doc__, list(SIZES))
    ap.add_argument("--chunk", type=int, default=100, help="sightings per checkpoint (ingest commits ~60 s of video)")
    args = ap.parse_args(argv)
    rows = bench(SIZES[args.size], args.catalog_url, chunk=args.chunk, flat_max=args.flat_max)
    catalog = "postgresql" if args.catalog_url else "sqlite"
    print_table(rows, f"\nsearch through the store ({catalog} catalog), top-50, {N_QUERIES} single queries")
    payload = {"benchmark": "store", "size": args.size, "catalog": catalog, "flat_max": args.flat_max,
               "machine": machine_info(["faiss-cpu", "numpy", "psycopg"]), "rows": rows}  # fmt: skip
    write_json(f"bench_store_{args.size}_{catalog}", payload, args.out or RESULTS_DIR)
    return payload


if __name__ == "__main__":
    main()
