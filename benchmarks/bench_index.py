"""FAISS retrieval benchmark: exact search vs IVF-Flat, IVF-PQ and HNSW on clustered, normalised synthetic
embeddings: build time, bytes per vector, p50/p99 latency for top-10 and top-50 (one query at a time, the
investigator's case), recall@10 against exact search, with and without a time-window filter of 1 %, 10 % and
100 % of the stored span, applied inside the search with an ID selector (ids are allocated in time order, so a
window is an id range).

    python -m benchmarks.bench_index --size S|M|L [--threads 1]

`--stream N` times vsearch's own index (vsearch.index.VectorIndex, its time shards and filters) over N sightings
of a 30-day timeline instead, generated and added in chunks (never all in memory): identities live for a few
hours (each chunk has its own), ids are the catalog's time-ordered ids of 50 cameras, and the exact top-10 of every
query in every window is kept up to date chunk by chunk as they are added. A fresh process then loads the saved
index (resident memory per sighting), reads 1-hour, 1-day and 30-day windows with cold re-ranking files first (an
old day, served from disk), then recall@10 and p50/p99 latency at 1 / 4 / 16 client threads.

    python -m benchmarks.bench_index --stream 1000000 [--layouts sq8 pq] [--dir /var/tmp/x]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.common import machine_info, percentiles_ms, print_table, write_json

SIZES: dict[str, list[tuple[int, int]]] = {  # (vectors, dim) per size
    "S": [(10_000, 64)],  # the CI smoke size
    "M": [(100_000, 256), (100_000, 1280), (1_000_000, 256)],
    "L": [(10_000_000, 256)],
}
N_QUERIES = 200


def synthetic(n: int, d: int, seed: int = 0, members: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors: n/members identities in a 64-dim subspace (plus full-rank noise), members scattered around
    them, inserted in random order (time); and N_QUERIES perturbed members as queries."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // members)
    basis = rng.standard_normal((64, d)).astype(np.float32)
    centres = rng.standard_normal((n_ids, 64)).astype(np.float32) @ basis
    centres += 0.3 * np.linalg.norm(centres, axis=1, keepdims=True) / np.sqrt(d) * rng.standard_normal((n_ids, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, d), np.float32)
    for i in range(0, n, 200_000):  # in chunks, to keep memory at the size of the result
        j = min(n, i + 200_000)
        owner = rng.integers(0, n_ids, j - i)
        x[i:j] = centres[owner] + (0.6 / np.sqrt(d)) * rng.standard_normal((j - i, d)).astype(np.float32)
        x[i:j] /= np.linalg.norm(x[i:j], axis=1, keepdims=True)  # per chunk: a whole-array norm doubles the memory
    q = x[rng.integers(0, n, N_QUERIES)] + (0.3 / np.sqrt(d)) * rng.standard_normal((N_QUERIES, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def specs(n: int, d: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """Index factory strings and search parameters, scaled to n (nlist ~ 4 sqrt(n))."""
    nlist = int(2 ** round(np.log2(4 * np.sqrt(n))))
    m = d // 8 if d <= 256 else 64
    out = {
        "Flat (exact)": ("Flat", {}),
        f"IVF{nlist},Flat nprobe=16": (f"IVF{nlist},Flat", {"nprobe": 16}),
        f"IVF{nlist},PQ{m} nprobe=16": (f"IVF{nlist},PQ{m}", {"nprobe": 16}),
        f"IVF{nlist},SQ8 nprobe=16": (f"IVF{nlist},SQ8", {"nprobe": 16}),
        # vsearch's policy for large collections: probe more lists the narrower the filter (see vsearch/index.py)
        f"IVF{nlist},SQ8 nprobe=64/selectivity": (f"IVF{nlist},SQ8", {"nprobe": 16, "scaled": 64}),
        "HNSW32 efSearch=128": ("HNSW32,Flat", {"efSearch": 128}),
    }
    if n >= 5_000_000:  # at 10M only the compressed index is built (see README: memory and build time)
        out = {k: v for k, v in out.items() if "PQ" in k or "SQ8" in k}
    return out


def params(kind: dict[str, Any], sel: faiss.IDSelector | None, fraction: float = 1.0, nlist: int = 1) -> faiss.SearchParameters:
    if "nprobe" in kind:
        scaled = kind.get("scaled") and fraction < 1.0  # vsearch's policy: filtered searches probe 64 / selectivity
        nprobe = min(nlist, int(np.ceil(kind["scaled"] / fraction))) if scaled else kind["nprobe"]
        return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
    if "efSearch" in kind:
        return faiss.SearchParametersHNSW(sel=sel, efSearch=kind["efSearch"])
    return faiss.SearchParameters(sel=sel)


def search_one_by_one(index: faiss.Index, q: np.ndarray, k: int, p: faiss.SearchParameters) -> tuple[np.ndarray, np.ndarray]:
    ids = np.empty((len(q), k), np.int64)
    lat = np.empty(len(q))
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids[i : i + 1] = index.search(q[i : i + 1], k, params=p)
        lat[i] = (time.perf_counter() - t) * 1000
    return ids, lat


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k]) - {-1}) / max(1, len(set(t[:k]) - {-1})) for f, t in zip(found, truth)]))


def check_filtered_exact(x: np.ndarray, q: np.ndarray, lo: int, hi: int) -> None:
    """Correctness before speed: exact search with an id-range selector equals brute force on the subset."""
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    sel = faiss.IDSelectorRange(lo, hi)
    _, got = flat.search(q[:20], 10, params=faiss.SearchParameters(sel=sel))
    brute = np.argsort(-(q[:20] @ x[lo:hi].T), axis=1, kind="stable")[:, :10] + lo
    for g, b, qi in zip(got, brute, q[:20]):
        assert np.allclose(np.sort(x[g] @ qi), np.sort(x[b] @ qi), atol=1e-5), "filtered exact search != brute force"
    batch = faiss.IDSelectorBatch(np.arange(lo, hi, dtype=np.int64))
    _, got_b = flat.search(q[:20], 10, params=faiss.SearchParameters(sel=batch))
    assert (got_b == got).all(), "IDSelectorBatch and IDSelectorRange disagree"


def bench(n: int, d: int, seed: int) -> list[dict[str, Any]]:
    x, q = synthetic(n, d, seed)
    windows = {"100%": None, "10%": (int(0.45 * n), int(0.55 * n)), "1%": (int(0.495 * n), int(0.505 * n))}
    check_filtered_exact(x, q, *windows["1%"])
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    truth = {w: flat.search(q, 50, params=faiss.SearchParameters(sel=faiss.IDSelectorRange(*r)) if r else None)[1] for w, r in windows.items()}
    rows = []
    built: dict[str, tuple[faiss.Index, float]] = {}
    for label, (factory, kind) in specs(n, d).items():
        if factory in built:  # the same index, searched with other parameters
            index, build_s = built.pop(factory)
        else:
            index, build_s = build(factory, x, seed)
        built = {factory: (index, build_s)}  # keep only the index the next spec may reuse
        bytes_per_vector = len(faiss.serialize_index(index)) / n
        nlist = faiss.extract_index_ivf(index).nlist if "IVF" in factory else 1
        for w, r in windows.items():
            sel = faiss.IDSelectorRange(*r) if r else None
            p = params(kind, sel, (r[1] - r[0]) / n if r else 1.0, nlist)
            search_one_by_one(index, q[:10], 10, p)  # warm-up, discarded
            found10, lat10 = search_one_by_one(index, q, 10, p)
            _, lat50 = search_one_by_one(index, q, 50, p)
            row = {"vectors": n, "dim": d, "index": label, "window": w, "build_s": round(build_s, 2),
                   "bytes_per_vector": round(bytes_per_vector, 1), "recall_at_10": round(recall_at(found10, truth[w], 10), 4)}  # fmt: skip
            row.update({f"top10_{k}": v for k, v in percentiles_ms(lat10).items() if k != "p95_ms"})
            row.update({f"top50_{k}": v for k, v in percentiles_ms(lat50).items() if k != "p95_ms"})
            rows.append(row)
    return rows


def build(factory: str, x: np.ndarray, seed: int) -> tuple[faiss.Index, float]:
    """Train (on at most 100k vectors) and fill an index; returns it with the build time in seconds."""
    n, d = x.shape
    t = time.perf_counter()
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(x[np.random.default_rng(seed).choice(n, min(n, 100_000), replace=False)])
    index.add(x)
    return index, time.perf_counter() - t


# -- vsearch's index over a streamed 30-day timeline ---------------------------------------------------------
STREAM_DIM, STREAM_CHUNK, STREAM_DAYS, STREAM_CAMERAS = 256, 100_000, 30, 50
STREAM_T0_MINUTE = 29_500_000  # 2026-02-01
WINDOWS_MIN = {"1h": (15 * 1440 + 720, 15 * 1440 + 780), "1d": (15 * 1440, 16 * 1440), "30d": (0, 30 * 1440)}
OLD_DAY_MIN = (2 * 1440, 3 * 1440)  # an old day, its re-ranking rows read from disk (not in the page cache)
CLIENTS = (1, 4, 16)
STREAM_QUERIES = 100
LAYOUTS = {"sq8": "SQ8", "pq": "PQ"}


def stream_ids(positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids (vsearch.ids: minute, camera slot, rank) and minutes of the sightings at `positions` of n spread evenly
    over the timeline, cameras taking turns within a minute."""
    from vsearch.ids import ID_BUCKET_BITS, SLOT_SHIFT

    i = np.asarray(positions, np.int64)
    minute = i * (STREAM_DAYS * 1440) // n
    j = i - _first(minute, n)
    slot, rank = j % STREAM_CAMERAS + 1, j // STREAM_CAMERAS
    return ((minute + STREAM_T0_MINUTE + 1) << ID_BUCKET_BITS) + (slot << SLOT_SHIFT) + rank, minute


def _first(minute: Any, n: int) -> Any:
    """The position of the first sighting of `minute` (or of the minute after the timeline: n)."""
    minutes = STREAM_DAYS * 1440
    return (np.asarray(minute, np.int64) * n + minutes - 1) // minutes


def stream_chunk(c: int, n: int, d: int, seed: int, basis: np.ndarray) -> np.ndarray:
    """Chunk c's vectors: its own identities (they live a few hours), 20 sightings each on average, clustered as
    `synthetic`'s."""
    rows = min(STREAM_CHUNK, n - c * STREAM_CHUNK)
    rng = np.random.default_rng([seed, c])
    n_ids = max(1, rows // 20)
    centres = rng.standard_normal((n_ids, basis.shape[0])).astype(np.float32) @ basis
    centres += 0.3 * np.linalg.norm(centres, axis=1, keepdims=True) / np.sqrt(d) * rng.standard_normal((n_ids, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, n_ids, rows)] + (0.6 / np.sqrt(d)) * rng.standard_normal((rows, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def window_idset(lo_min: int, hi_min: int, count: int) -> Any:
    """A window of whole minutes as the catalog gives it to the index: one id range."""
    from vsearch.ids import minutes_ids
    from vsearch.types import IdSet

    return IdSet((minutes_ids(STREAM_T0_MINUTE + lo_min, STREAM_T0_MINUTE + hi_min),), count=count)


def stream_build(n: int, layout: str, folder: Path, seed: int) -> dict[str, Any]:
    """Build vsearch's index of n streamed sightings in `folder` (saved as index.faiss) with the exact top-10 of
    every query per window (truth.npz); returns the build figures."""
    from vsearch.index import VectorIndex, factory_for

    d = STREAM_DIM
    basis = np.random.default_rng(seed).standard_normal((64, d)).astype(np.float32)
    n_chunks = -(-n // STREAM_CHUNK)
    # queries: perturbed sightings of the 1-hour window (inside every window)
    lo, hi = _first(np.array(WINDOWS_MIN["1h"]), n)
    picks = np.sort(np.random.default_rng(seed + 1).choice(np.arange(lo, hi), STREAM_QUERIES, replace=hi - lo < STREAM_QUERIES))
    queries = np.concatenate([stream_chunk(c, n, d, seed, basis)[picks[picks // STREAM_CHUNK == c] % STREAM_CHUNK]
                              for c in np.unique(picks // STREAM_CHUNK)])  # fmt: skip
    queries += (0.3 / np.sqrt(d)) * np.random.default_rng(seed + 2).standard_normal(queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    factory = factory_for(n, 0, 0 if layout == "pq" else n)
    index = VectorIndex(d, factory=factory, spill_dir=folder / "spill")
    t0 = time.perf_counter()
    # training sample: evenly spread chunks, 40 vectors per list (at most 262,144)
    want = min(n, 40 * index.nlist, 262_144)
    per = -(-want // min(n_chunks, 32))
    sample = np.concatenate([stream_chunk(int(c), n, d, seed, basis)[:per] for c in np.linspace(0, n_chunks - 1, min(n_chunks, 32)).astype(int)])
    index.train(sample, stream_ids(np.linspace(0, n - 1, 100_000).astype(np.int64), n)[0])  # ids: the shard span
    del sample
    train_s = time.perf_counter() - t0
    truth = {w: (np.full((STREAM_QUERIES, 10), -np.inf, np.float32), np.full((STREAM_QUERIES, 10), -1, np.int64)) for w in WINDOWS_MIN}
    truth_s = 0.0
    for c in range(n_chunks):
        x = stream_chunk(c, n, d, seed, basis)
        ids, minute = stream_ids(np.arange(c * STREAM_CHUNK, c * STREAM_CHUNK + len(x)), n)
        index.add(ids, x)
        t = time.perf_counter()
        scores = queries @ x.T
        for w, (a, b) in WINDOWS_MIN.items():
            inside = (minute >= a) & (minute < b)
            if inside.any():
                best_s, best_i = truth[w]
                s_all = np.concatenate([best_s, scores[:, inside]], axis=1)
                i_all = np.concatenate([best_i, np.broadcast_to(ids[inside], (STREAM_QUERIES, int(inside.sum())))], axis=1)
                top = np.argsort(-s_all, axis=1)[:, :10]
                truth[w] = (np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1))
        truth_s += time.perf_counter() - t
        if c % 10 == 0:
            print(f"  {layout}: {min(n, (c + 1) * STREAM_CHUNK):,} of {n:,} added, {time.perf_counter() - t0 - truth_s:.0f} s", flush=True)
    index.compact()
    index.save(folder / "index.faiss")
    build_s = time.perf_counter() - t0 - truth_s
    counts = {w: int(_first(b, n) - _first(a, n)) for w, (a, b) in WINDOWS_MIN.items()}
    np.savez(folder / "truth.npz", queries=queries, **{w: truth[w][1] for w in WINDOWS_MIN})
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name != "truth.npz")
    return {"vectors": n, "dim": d, "layout": index.kind, "shards": index.shards, "train_s": round(train_s, 1),
            "build_s": round(build_s, 1), "disk_bytes_per_sighting": round(disk / n, 1), "counts": counts}  # fmt: skip


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def stream_serve(folder: Path, n: int, counts: dict[str, int]) -> dict[str, Any]:
    """In a fresh process: load the saved index, its resident memory per sighting; cold then warm searches."""
    from vsearch.index import VectorIndex

    anon0, rss0 = _status_kb("RssAnon"), _status_kb("VmRSS")
    index = VectorIndex.load(folder / "index.faiss", STREAM_DIM)
    out: dict[str, Any] = {
        "loaded_anon_bytes_per_sighting": round((_status_kb("RssAnon") - anon0) * 1024 / n, 1),
        "loaded_rss_bytes_per_sighting": round((_status_kb("VmRSS") - rss0) * 1024 / n, 1),
    }
    saved = np.load(folder / "truth.npz")
    queries = saved["queries"]
    for p in folder.iterdir():  # the re-ranking rows out of the page cache: an old day is read from disk
        if ".fine-" in p.name:
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    old = window_idset(*OLD_DAY_MIN, counts["1d"])
    cold = []
    for q in queries[:50]:
        t = time.perf_counter()
        index.search(q, 50, old)
        cold.append((time.perf_counter() - t) * 1000)
    out["old_day_cold"] = percentiles_ms(np.array(cold))
    rows = []
    for w, (a, b) in WINDOWS_MIN.items():
        allowed = window_idset(a, b, counts[w])
        found = np.array([index.search(q, 50, allowed)[1][:10] for q in queries])
        recall = recall_at(found, saved[w], 10)
        for clients in CLIENTS:
            lat = _clients(index, queries, allowed, clients)
            rows.append({"window": w, "clients": clients, "recall_at_10": round(recall, 4), **percentiles_ms(lat)})
    out["rows"] = rows
    out["rss_after_searches_bytes_per_sighting"] = round((_status_kb("VmRSS") - rss0) * 1024 / n, 1)
    return out


def _clients(index: Any, queries: np.ndarray, allowed: Any, clients: int, per_client: int = 50) -> np.ndarray:
    """Latencies (ms) of `clients` threads each searching `per_client` queries back to back (top-50)."""
    lat: list[float] = []
    index.search(queries[0], 50, allowed)  # warm-up, discarded

    def run(c: int) -> None:
        for i in range(per_client):
            q = queries[(c * per_client + i) % len(queries)]
            t = time.perf_counter()
            index.search(q, 50, allowed)
            lat.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.array(lat)


def stream(n: int, layouts: list[str], seed: int, folder: Path | None) -> list[dict[str, Any]]:
    rows = []
    for layout in layouts:
        work = Path(tempfile.mkdtemp(prefix=f"bench-index-{layout}-", dir=folder))
        try:
            built = stream_build(n, layout, work, seed)
            print(json.dumps(built), flush=True)
            served = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_index", "--serve", str(work), "--stream", str(n),
                 "--counts", json.dumps(built["counts"])],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(served.stdout.splitlines()[-1])
            print(json.dumps(result), flush=True)
            for r in result.pop("rows"):
                rows.append({**{k: v for k, v in built.items() if k != "counts"}, **result, **r})
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="S")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run one (vectors,dim) pair of the size, e.g. 1000000,256")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--stream", type=int, default=0, help="vsearch's index over this many streamed sightings")
    ap.add_argument("--layouts", nargs="*", choices=list(LAYOUTS), default=["pq"])
    ap.add_argument("--dir", type=Path, default=None, help="where the streamed index is built (a temporary folder)")
    ap.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--counts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:  # the fresh process of --stream
        print(json.dumps(stream_serve(args.serve, args.stream, json.loads(args.counts))))
        return {}
    if args.stream:
        rows = stream(args.stream, args.layouts, args.seed, args.dir)
        print_table(rows, f"\nvsearch's index, {args.stream:,} streamed sightings x {STREAM_DIM}, top-50, {len(CLIENTS)} client counts")
        payload = {"benchmark": "index_stream", "vectors": args.stream, "machine": machine_info(["faiss-cpu", "numpy"]), "rows": rows}
        write_json(f"bench_index_stream_{args.stream}", payload, *([args.out] if args.out else []))
        return payload
    faiss.omp_set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for n, d in SIZES[args.size]:
        if args.only and args.only != f"{n},{d}":
            continue
        part = bench(n, d, args.seed)
        print_table(part, f"\nFAISS retrieval: {n} vectors x {d} dims, {N_QUERIES} single queries, {args.threads} thread(s)")
        rows += part
    payload = {"benchmark": "index", "size": args.size, "threads": args.threads,
               "machine": machine_info(["faiss-cpu", "numpy"]), "rows": rows}  # fmt: skip
    name = f"bench_index_{args.size}" + (f"_{args.only.replace(',', 'x')}" if args.only else "")
    write_json(name, payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
