"""FAISS retrieval benchmark: exact search vs IVF-Flat, IVF-PQ and HNSW on clustered, normalised synthetic
embeddings: build time, bytes per vector, p50/p99 latency for top-10 and top-50 (one query at a time, the
investigator's case), recall@10 against exact search, with and without a time-window filter of 1 %, 10 % and
100 % of the stored span, applied inside the search with an ID selector (ids are allocated in time order, so a
window is an id range).

    python -m benchmarks.bench_index --size S|M|L [--threads 1]
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="S")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run one (vectors,dim) pair of the size, e.g. 1000000,256")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
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
