"""A camera filter's catalog statement, side by side on one catalog: read through the (camera_id, ts) index with a
row lookup per sighting (before issue 23) against the covering (camera_id, ts, embedder, id) index (migration 10).

The catalog is bench_store's (50 cameras x 24 h through the real commit path); the old index is created beside the
new one and each statement is pinned to its index (INDEXED BY), run alternately after a discarded warm-up; both
must return the same ids before any time is reported.

    python -m benchmarks.bench_camera_filter --size S|M
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_store import CAMERAS, SIZES, populate
from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.catalog import SqliteCatalog
from vsearch.config import Settings

RUNS = 60


def bench(n: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-camera-") as tmp:
        store, _, ts, _, _, _ = populate(Settings(data_dir=Path(tmp)), n)
        cat = store.catalog
        assert isinstance(cat, SqliteCatalog)
        cat._db.execute("CREATE INDEX sightings_cam_ts ON sightings (camera_id, ts)")  # the index before issue 23
        cat._db.execute("ANALYZE")
        camera, lo, span = f"cam-{CAMERAS // 2:02d}", float(ts.min()), float(ts.max() - ts.min())
        rows = []
        for label, window in (("10%", (lo + 0.45 * span, lo + 0.55 * span)), ("100%", ())):
            cond = " AND ts >= ? AND ts <= ?" if window else ""
            args = [store.embedder, *window, camera]
            sql = {name: f"SELECT id FROM sightings INDEXED BY {index} WHERE embedder || '' = ?{cond} AND camera_id IN (?)"
                   for name, index in (("before", "sightings_cam_ts"), ("after", "sightings_camera"))}  # fmt: skip
            found = {name: sorted(cat._q(q, args)) for name, q in sql.items()}  # correctness first (and warm-up)
            assert found["before"] == found["after"]
            ms: dict[str, list[float]] = {"before": [], "after": []}
            for i in range(RUNS):
                for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
                    t = time.perf_counter()
                    cat._q(sql[name], args)
                    ms[name].append((time.perf_counter() - t) * 1000)
            before, after = float(np.median(ms["before"])), float(np.median(ms["after"]))
            rows.append({
                "sightings": n, "window": label, "camera_ids": len(found["after"]),
                "plan_before": cat._q("EXPLAIN QUERY PLAN " + sql["before"], args)[0][3],
                "plan_after": cat._q("EXPLAIN QUERY PLAN " + sql["after"], args)[0][3],
                "before_p50_ms": round(before, 2), "after_p50_ms": round(after, 2), "speedup": round(before / after, 1),
            })  # fmt: skip
        store.close()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["S", "M"], default="S", help="S: 20,000 sightings, M: 1,000,000")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    args = parser.parse_args(argv)
    rows = bench(SIZES[args.size])
    print_table(rows, f"\na camera filter's statement, one camera of {CAMERAS} (SQLite), p50 of {RUNS} runs")
    payload = {"benchmark": "camera_filter", "size": args.size, "machine": machine_info(["numpy"]), "rows": rows}
    write_json(f"bench_camera_filter_{args.size}", payload, args.out or RESULTS_DIR)
    return payload


if __name__ == "__main__":
    main()
