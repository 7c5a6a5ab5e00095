"""How many IVF lists a filtered search must probe: recall@10 and latency of IVF-SQ8 under time-window filters
for nprobe = 16 x multiplier / selectivity, on the same synthetic data as bench_index.

    python -m benchmarks.bench_nprobe [--vectors 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.bench_index import recall_at, synthetic
from benchmarks.common import machine_info, print_table, write_json


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    n, d = args.vectors, args.dim
    x, q = synthetic(n, d, 0)
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    nlist = int(2 ** round(np.log2(4 * np.sqrt(n))))
    ivf = faiss.index_factory(d, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    ivf.train(x[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)])
    ivf.add(x)
    rows = []
    for frac in (0.5, 0.1, 0.01):
        lo = int((0.5 - frac / 2) * n)
        sel = faiss.IDSelectorRange(lo, lo + int(frac * n))
        _, truth = flat.search(q, 10, params=faiss.SearchParameters(sel=sel))
        for mult in (1, 4, 16):
            nprobe = min(nlist, int(np.ceil(16 * mult / frac)))
            p = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
            found = np.empty((len(q), 10), np.int64)
            lat = np.empty(len(q))
            for i in range(len(q)):
                t = time.perf_counter()
                _, found[i : i + 1] = ivf.search(q[i : i + 1], 10, params=p)
                lat[i] = (time.perf_counter() - t) * 1000
            rows.append({"vectors": n, "dim": d, "window": f"{frac:.0%}", "nprobe": nprobe, "multiplier": mult,
                         "recall_at_10": round(recall_at(found, truth, 10), 4), "top10_p50_ms": round(float(np.median(lat)), 3),
                         "top10_p99_ms": round(float(np.percentile(lat, 99)), 3)})  # fmt: skip
    print_table(rows, f"IVF{nlist},SQ8 under filters: nprobe = 16 x multiplier / selectivity")
    payload = {"benchmark": "nprobe", "threads": args.threads, "machine": machine_info(["faiss-cpu"]), "rows": rows}
    write_json(f"bench_nprobe_{n}x{d}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
