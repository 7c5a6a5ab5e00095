"""The index partitioned across 4 shard owners on a local Ray cluster (vsearch.partitions) against the in-process
index, on one catalog: recall@10 against exact search, then p50/p99 of single searches (1 and 4 clients) for a
1-hour window (one owner asked), a 1-day window (one owner) and everything (4 owners); then one owner killed in the
middle of a 4-client load: errors, answers flagged as partial (and whether each is right), silently partial answers,
and the time until answers are whole again (Ray restarts the owner, which loads its saved shards).

Synthetic sightings (clustered like embeddings) come through the real commit path (bench_store.populate), 20
cameras over 4 days: one day, i.e. one time shard, per owner.

    python -m benchmarks.bench_fanout --size S|M|L [--catalog-url postgresql://...] [--flat-max N]
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_store import DIM, T0, populate
from benchmarks.common import RESULTS_DIR, machine_info, percentiles_ms, print_table, store_args, write_json
from vsearch.config import Settings
from vsearch.partitions import PartitionedStore
from vsearch.store import IndexFilter, Store

SIZES = {"S": 20_000, "M": 200_000, "L": 1_000_000}
OWNERS, DAYS, CAMERAS, K = 4, 4, 20, 50
DAY = 86_400.0
N_QUERIES = 100


def windows() -> dict[str, IndexFilter | None]:
    return {
        "1 hour (1 owner)": IndexFilter(T0 + DAY + 12 * 3600, T0 + DAY + 13 * 3600),
        "1 day (1 owner)": IndexFilter(T0 + DAY, T0 + 2 * DAY - 0.001),
        "4 days (4 owners)": None,
    }


def exact(x: np.ndarray, ids: np.ndarray, inside: np.ndarray, q: np.ndarray) -> set[int]:
    scores = np.where(inside, x @ q, -np.inf)
    return set(ids[np.argsort(-scores)[:10]].tolist())


def timed(store: Store, queries: np.ndarray, where: IndexFilter | None, clients: int) -> dict[str, float]:
    """p50/p99 (ms) of every query's search, `clients` at once."""

    def one(q: np.ndarray) -> float:
        t = time.perf_counter()
        store.search(q, K, where)
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, queries[: 2 * clients]))  # warm-up
        t = time.perf_counter()
        lat = np.array(list(pool.map(one, queries)))
        wall = time.perf_counter() - t
    return {**percentiles_ms(lat), "qps": round(len(queries) / wall, 1)}


def kill_one_mid_load(store: PartitionedStore, queries: np.ndarray, full: list[list[int]], victim: int,
                      seconds_before: float = 5.0, max_s: float = 600.0) -> dict[str, Any]:  # fmt: skip
    """4 clients search everything in a loop; one owner is killed (Ray restarts it); runs until answers have been
    whole again for 3 s. Each answer is checked: whole (the reference ids), or flagged with the victim's day."""
    day = (T0 + victim_day(victim) * DAY, T0 + (victim_day(victim) + 1) * DAY)
    log: list[tuple[float, int, tuple, bool]] = []  # (time, query, unsearched, ids == whole answer)
    errors: list[str] = []
    stop = threading.Event()

    def client(c: int) -> None:
        i = c
        while not stop.is_set():
            try:
                m = store.search(queries[i % len(queries)], K)
                log.append((time.monotonic(), i % len(queries), m.unsearched, m.ids.tolist() == full[i % len(queries)]))
            except Exception as e:  # counted, not raised: the figure is how many
                errors.append(f"{type(e).__name__}: {e}")
            i += 4

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    time.sleep(seconds_before)
    killed = time.monotonic()
    store.owners.ray.kill(store.owners.handles[victim], no_restart=False)
    whole_again = None
    while time.monotonic() - killed < max_s:
        time.sleep(0.1)
        after = [e for e in log if e[0] > killed]
        flagged = [e for e in after if e[2]]
        if flagged and whole_again is None:
            later = [e for e in after if e[0] > flagged[-1][0]]
            if later and not later[-1][2]:
                whole_again = later[0][0] - killed
        if whole_again is not None and time.monotonic() - killed > whole_again + 3:
            break
    stop.set()
    for t in threads:
        t.join()
    after = [e for e in log if e[0] > killed]
    flagged = [e for e in after if e[2]]
    return {
        "answers": len(log), "answers_after_kill": len(after), "errors": len(errors), "error_samples": errors[:3],
        "flagged_partial": len(flagged),
        "flagged_with_the_right_range": sum(e[2] == (day,) for e in flagged),
        "silently_partial": sum(not e[2] and not e[3] for e in log),
        "recovery_s": None if whole_again is None else round(whole_again, 2),
        "owner_state_after": store.owners.states()[victim],
    }


def victim_day(victim: int) -> int:
    """Which of the 4 days (0-3) owner `victim` holds."""
    first = int(T0 // 60 // 1440)
    return next(d for d in range(DAYS) if (first + d) % OWNERS == victim)


def bench(n: int, catalog_url: str | None, flat_max: int | None, seed: int = 0) -> dict[str, Any]:
    from vsearch.cluster import connect

    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    try:
        extra = {} if flat_max is None else {"index_flat_max": flat_max}
        settings = Settings(data_dir=tmp, catalog_url=catalog_url, **extra)  # type: ignore[arg-type]
        t = time.perf_counter()
        inproc, ids, ts, _, x, write_rate = populate(settings, n, seed, cameras=CAMERAS, hours=24 * DAYS)
        populate_s = time.perf_counter() - t
        t = time.perf_counter()
        assert inproc.ntotal == n
        build_inproc_s = time.perf_counter() - t
        connect()  # RAY_ADDRESS, or a local cluster (ended with this process)
        parted = Settings(**{**settings.model_dump(), "partition_owners": OWNERS, "partition_timeout_s": 30.0})
        t = time.perf_counter()
        store = PartitionedStore(parted, inproc.catalog, "synthetic", DIM)
        assert store.ntotal == n
        build_owners_s = time.perf_counter() - t
        rng = np.random.default_rng(seed + 1)
        queries = x[rng.integers(0, n, N_QUERIES)] + 0.05 * rng.standard_normal((N_QUERIES, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        rows = []
        for name, where in windows().items():
            inside = np.ones(n, bool) if where is None else (ts >= where.from_ts_s) & (ts <= where.to_ts_s)  # type: ignore[operator]
            for mode, s in (("in-process", inproc), ("4 owners on Ray", store)):
                got = [s.search(q, K, where) for q in queries[:20]]
                assert all(m.unsearched == () for m in got)
                recall = float(np.mean([len(set(m.ids[:10].tolist()) & exact(x, ids, inside, q)) / 10
                                        for m, q in zip(got, queries[:20])]))  # fmt: skip
                row: dict[str, Any] = {"window": name, "index": mode, "selected": int(inside.sum()), "recall_at_10": round(recall, 3)}
                for clients in (1, 4):
                    p = timed(s, queries, where, clients)
                    row.update({f"p50_ms_{clients}c": p["p50_ms"], f"p99_ms_{clients}c": p["p99_ms"], f"qps_{clients}c": p["qps"]})
                rows.append(row)
        store.save()  # as a node does at the end of each file: the owners' shards are on disk
        full = [store.search(q, K).ids.tolist() for q in queries]
        victim = OWNERS - 1
        kill = kill_one_mid_load(store, queries, full, victim)
        kinds = {"in_process": inproc.index.kind, "owners": [s and s["kinds"] for s in store.owners.states()]}
        store.owners.kill()
        inproc.close()
        return {
            "sightings": n, "owners": OWNERS, "days": DAYS, "cameras": CAMERAS, "k": K, "index_kinds": kinds,
            "write_sightings_per_s": round(write_rate), "populate_s": round(populate_s, 1),
            "build_in_process_s": round(build_inproc_s, 1), "build_owners_s": round(build_owners_s, 1),
            "rows": rows, "kill_one_owner": kill,
        }  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = store_args(__doc__, list(SIZES)).parse_args(argv)
    result = bench(SIZES[args.size], args.catalog_url, args.flat_max)
    catalog = "postgresql" if args.catalog_url else "sqlite"
    print_table(result["rows"], f"\nin-process index vs {OWNERS} shard owners on local Ray ({catalog} catalog), top-{K}")
    print_table([{k: v for k, v in result["kill_one_owner"].items() if k not in ("error_samples", "owner_state_after")}],
                "\none owner killed mid-load (4 clients)")  # fmt: skip
    payload = {"benchmark": "fanout", "size": args.size, "catalog": catalog, "flat_max": args.flat_max,
               "machine": machine_info(["faiss-cpu", "numpy", "ray", "psycopg"]), **result}  # fmt: skip
    write_json(f"bench_fanout_{args.size}_{catalog}", payload, args.out or RESULTS_DIR)
    return payload


if __name__ == "__main__":
    main()
