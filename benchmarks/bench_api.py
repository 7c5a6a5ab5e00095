"""Search API benchmark: round-trip latency of POST /search through a real `vsearch serve` (uvicorn, loopback)
at growing catalog sizes, under 1, 4 and 16 concurrent clients: p50/p95/p99 and errors.

The catalog holds the ingested sample clip plus synthetic sightings (perturbed copies of its real embeddings,
spread over 50 cameras and 24 hours) up to the target size.

    python -m benchmarks.bench_api --size S|M|L        # S: sample only; M: 100k sightings; L: 1M
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import machine_info, percentiles_ms, print_table, write_json
from vsearch.catalog import Checkpoint, NewSighting
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.ingest import IngestItem
from vsearch.service import VSearch

SAMPLE = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
QUERY = PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg"
KEY = "bench-api-key-0123456789abcdef"
SIZES = {"S": {"n": 0, "queries": 100, "clients": [1, 4]}, "M": {"n": 100_000, "queries": 100, "clients": [1, 4, 16]},
         "L": {"n": 1_000_000, "queries": 100, "clients": [1, 4, 16]}}  # fmt: skip
T0 = 1_772_373_600.0  # 2026-03-01T14:00:00Z


def build(data_dir: Path, n_total: int, seed: int = 0) -> int:
    """Ingest the sample, then add synthetic sightings until the catalog holds n_total; returns the count."""
    svc = VSearch(Settings(data_dir=data_dir))
    svc.ingest([IngestItem(SAMPLE, "lobby", T0)])
    real = np.concatenate([v for _, v in svc.catalog.iter_embeddings(svc.embedder.name)])
    have = svc.catalog.count_sightings()
    rng = np.random.default_rng(seed)
    v = svc.catalog.begin_video("synthetic", "/synthetic.mp4", "synthetic-" + str(n_total), T0 - 43_200, 10.0, 864_000, (768, 432), svc.embedder.name)
    todo = max(0, n_total - have)
    batch = 20_000
    while todo > 0:
        k = min(batch, todo)
        base = real[rng.integers(0, len(real), k)]
        vecs = base + 0.35 * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(base.shape[1])
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ts = rng.uniform(T0 - 43_200, T0 + 43_200, k)
        rows = [NewSighting(f"cam-{i % 50:02d}", 10_000 + i // 3, float(t), float(t - T0 + 43_200), (0, 0, 10, 20), 0.9, 0.5, "synthetic.jpg", vec)
                for i, (t, vec) in enumerate(zip(ts, vecs), start=n_total - todo)]  # fmt: skip
        svc.store.commit_chunk(v.id, Checkpoint(rows, [], 0.0, 0, todo - k == 0))
        todo -= k
    count = svc.catalog.count_sightings()
    assert svc.store.ntotal == count  # the index followed the synthetic rows and was saved at the last commit
    svc.close()
    return count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "VSEARCH_API_KEYS": json.dumps([{"name": "bench", "key": KEY, "role": "investigator"}])}
    proc = subprocess.Popen([sys.executable, "-m", "vsearch.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


def load(base: str, clients: int, total: int) -> dict[str, Any]:
    """`total` searches spread over `clients` threads; latency per request in ms."""
    image = QUERY.read_bytes()
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    # a camera filter over cameras the catalog holds (an unknown camera is a 404, not an empty answer)
    known = [c["id"] for c in httpx.get(base + "/cameras", headers={"X-API-Key": KEY}, timeout=30).json()]
    windows = [{}, {"from": "2026-03-01T13:00:00", "to": "2026-03-01T15:00:00"}, {"cameras": ",".join(known[:3])}]

    def worker(n: int, offset: int) -> None:
        with httpx.Client(timeout=120) as c:
            for i in range(n):
                t = time.perf_counter()
                try:
                    r = c.post(base + "/search", files={"image": ("q.jpg", image, "image/jpeg")},
                               data={"top_k": "20", **windows[(offset + i) % len(windows)]}, headers={"X-API-Key": KEY})  # fmt: skip
                    ok = r.status_code == 200
                    msg = f"{r.status_code}: {r.text[:100]}"
                except httpx.HTTPError as e:
                    ok, msg = False, repr(e)
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    lat.append(ms)
                    if not ok:
                        errors.append(msg)

    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=worker, args=(n, i)) for i, n in enumerate(per)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return {"requests": len(lat), "errors": len(errors), "error_examples": errors[:3],
            "throughput_rps": round(len(lat) / wall, 2), **percentiles_ms(np.array(lat))}  # fmt: skip


def run(size: str, keep: Path | None = None, queries: int | None = None) -> dict[str, Any]:
    cfg = {**SIZES[size], **({"queries": queries} if queries else {})}
    work = keep or Path(tempfile.mkdtemp(prefix="vsearch-bench-api-"))
    try:
        t = time.perf_counter()
        n = build(work / "data", cfg["n"])
        build_s = time.perf_counter() - t
        proc, base = serve(work / "data")
        try:
            # correctness before speed: the sample query's best clip is visit 3 (50-69 s after T0) on 'lobby'
            with httpx.Client(timeout=300) as c:
                r = c.post(base + "/search", files={"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")},
                           data={"top_k": "5", "cameras": "lobby"}, headers={"X-API-Key": KEY}).json()  # fmt: skip
            best = r["clips"][0]
            assert best["camera_id"] == "lobby" and 48.5 <= best["start_ts_s"] - T0 <= 70.5, best
            load(base, 1, 3)  # warm-up, discarded
            rows = [{"sightings": n, "clients": k, **load(base, k, cfg["queries"])} for k in cfg["clients"]]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return {"rows": rows, "sightings": n, "build_s": round(build_s, 1)}
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="S")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--queries", type=int, default=None, help="searches per concurrency level")
    args = ap.parse_args(argv)
    result = run(args.size, queries=args.queries)
    table = [{k: v for k, v in r.items() if k != "error_examples"} for r in result["rows"]]
    print_table(table, f"POST /search round trip through uvicorn on loopback, size {args.size} ({result['sightings']} sightings)")
    payload = {"benchmark": "api", "size": args.size, "machine": machine_info(["fastapi", "uvicorn", "faiss-cpu"]), **result}
    write_json(f"bench_api_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
