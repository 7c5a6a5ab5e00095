"""A fleet of cameras writing into one shared catalog while a search node follows it (issue 10 item 6).

N synthetic cameras x T hours: each simulated hour, every camera's ingest commits its sightings through the real
checkpoint path (`Store.commit_chunk`, one checkpoint per minute of video, a write-only store as Ray workers use),
at the rate the sample clip gives (42 sightings in 139.4 s while people are in view: about 1,090 an hour for a
busy camera; `--rate`). A second store over the same catalog (another API node: its own data dir and index) then
catches up by the change log and answers searches. Reported per simulated hour: catalog write rate, the search
node's catch-up time, the search p50/p99 (query embedding excluded) for a one-hour window, one camera over the
whole span, and no filter, with recall@10 against exact search checked first; index bytes per sighting.

    python -m benchmarks.fleet_sim --cameras 50 --hours 8 [--catalog-url postgresql://...]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_index import synthetic
from benchmarks.bench_store import recall_then_latency
from benchmarks.common import machine_info, print_table, write_json
from vsearch.catalog import Checkpoint, NewSighting
from vsearch.config import Settings
from vsearch.store import IndexFilter, Store, open_catalog

T0 = 1_772_323_200.0  # 2026-03-01T00:00Z
DIM, N_QUERIES = 256, 50
SAMPLE_RATE_PER_H = round(42 / 139.4 * 3600)  # sightings an hour of the sample clip (people in view)


def simulate(cameras: int, hours: int, rate_per_h: int, catalog_url: str | None, seed: int = 0) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="vsearch-fleet-"))
    try:
        per_cam = rate_per_h  # sightings per camera-hour
        total = cameras * hours * per_cam
        x, _ = synthetic(total, DIM, seed)
        rng = np.random.default_rng(seed)
        writer_settings = Settings(data_dir=work / "ingest", catalog_url=catalog_url)
        writer = Store(open_catalog(writer_settings), writer_settings.index_dir, "synthetic", DIM, follow=False)
        node_index_dir = work / "api-node" / "index"  # the node's own index; the catalog is the shared one
        node: Store | None = None
        ts_all, cam_all, ids_all = np.empty(total), np.empty(total, np.int32), np.empty(total, np.int64)
        rows_out, done = [], 0
        for hour in range(hours):
            t = time.perf_counter()
            for cam in range(cameras):
                ts = np.sort(rng.uniform(0, 3600, per_cam)) + T0 + 3600 * hour
                v = writer.catalog.begin_video(f"cam-{cam:04d}", f"/cam-{cam:04d}/{hour:03d}.mp4", f"sha-{cam}-{hour}",
                                               float(ts[0]), 10.0, 36_000, (1920, 1080), "synthetic")  # fmt: skip
                minute = (ts - ts[0]) // 60
                for m in np.unique(minute):  # one checkpoint per minute of video
                    sel = np.nonzero(minute == m)[0]
                    rows = [NewSighting(f"cam-{cam:04d}", 1 + int(i) // 10, float(ts[i]), float(ts[i] - ts[0]),
                                        (0, 0, 10, 20), 0.9, 0.5, "s.jpg", x[done + i]) for i in sel]  # fmt: skip
                    got = writer.commit_chunk(v.id, Checkpoint(rows, [], float(ts[sel[-1]] - ts[0]), len(rows), m == minute[-1]))
                    ids_all[done + sel] = got
                ts_all[done : done + per_cam], cam_all[done : done + per_cam] = ts, cam
                done += per_cam
            write_s = time.perf_counter() - t
            t = time.perf_counter()
            if node is None:  # the API node opens (builds its index from the catalog) after the first hour
                node = Store(open_catalog(writer_settings), node_index_dir, "synthetic", DIM, writer_settings.index_flat_max)
            assert node.index.ntotal == done  # caught up by the change log
            catch_up_s = time.perf_counter() - t
            q_idx = rng.integers(0, done, N_QUERIES)
            queries = x[q_idx] + 0.05 * rng.standard_normal((N_QUERIES, DIM)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            row: dict[str, Any] = {"hours": hour + 1, "cameras": cameras, "sightings": done,
                                   "write_sightings_per_s": round(cameras * per_cam / write_s), "catch_up_s": round(catch_up_s, 2),
                                   "index": node.index.kind}  # fmt: skip
            lo = T0 + 3600 * hour
            filters = {"1 h window": (IndexFilter(from_ts_s=lo, to_ts_s=lo + 3600), (ts_all[:done] >= lo) & (ts_all[:done] <= lo + 3600)),
                       "1 camera": (IndexFilter(cameras=("cam-0000",)), cam_all[:done] == 0),
                       "no filter": (None, np.ones(done, bool))}  # fmt: skip
            for name, (where, inside) in filters.items():
                row[f"{name} recall@10"], p = recall_then_latency(node, queries, where, inside, x[:done], ids_all[:done], 10)
                row[f"{name} p50 ms"], row[f"{name} p99 ms"] = p["p50_ms"], p["p99_ms"]
            rows_out.append(row)
            print(row, flush=True)
        if node is not None:
            node.close()
        writer.close()
        return rows_out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=50)
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--rate", type=int, default=SAMPLE_RATE_PER_H, help="sightings per camera-hour")
    ap.add_argument("--catalog-url", default=None, help="PostgreSQL (an empty database); default: SQLite")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = simulate(args.cameras, args.hours, args.rate, args.catalog_url)
    catalog = "postgresql" if args.catalog_url else "sqlite"
    print_table(rows, f"\nfleet: {args.cameras} cameras x {args.hours} h at {args.rate} sightings/camera-hour ({catalog})")
    payload = {"benchmark": "fleet", "catalog": catalog, "cameras": args.cameras, "hours": args.hours, "rate_per_camera_hour": args.rate,
               "machine": machine_info(["faiss-cpu", "numpy", "psycopg"]), "rows": rows}  # fmt: skip
    write_json(f"fleet_{catalog}_{args.cameras}x{args.hours}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
