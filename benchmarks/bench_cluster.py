"""Ingest throughput on a Ray cluster: files per hour and video seconds per wall second with 1 and 2 workers, on
this machine's local cluster, into a catalog (SQLite in a temp data dir, or PostgreSQL with --catalog-url).

Correctness first: every file must end "ingested" with the same sightings as a single-process ingest of it.

    python -m benchmarks.bench_cluster --size S|M [--catalog-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.video import probe, sample_frames, write_mp4

SAMPLE = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
SIZES = {"S": (2, 10.0), "M": (4, 34.0)}  # (files, seconds of the sample each)


def cut(src: Path, start_s: float, seconds: float, out: Path) -> Path:
    """src[start_s, start_s + seconds) re-encoded as its own file."""
    info = probe(src)
    frames = ((f.index, f.image_bgr) for f in sample_frames(info, "x", 0.0, info.fps) if start_s <= f.pts_s < start_s + seconds)
    write_mp4(out, frames, info.fps)
    return out


def _files(folder: Path, n: int, seconds: float) -> list[Path]:
    return [cut(SAMPLE, i * seconds, seconds, folder / f"part-{i}.mp4") for i in range(n)]


def run(size: str = "S", catalog_url: str | None = None, out: Path | None = None) -> dict[str, Any]:
    from vsearch.cluster import connect, ingest_on_ray

    n, seconds = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        (tmp / "videos").mkdir()
        files = _files(tmp / "videos", n, seconds)
        items = [IngestItem(f, f"cam-{i}", 1_772_373_600.0) for i, f in enumerate(files)]
        # the reference: one process, one file after another
        ref = VSearch(Settings(data_dir=tmp / "ref"))
        t = time.perf_counter()
        ref_reports = ref.ingest(items)
        ref_wall = time.perf_counter() - t
        expected = {r.path: r.sightings_added for r in ref_reports}
        ref.close()
        connect(num_cpus=2)
        cores = os.cpu_count() or 1
        rows = [{"mode": "one process", "workers": 1, "threads_per_worker": cores, "files": n, "wall_s": ref_wall}]
        # each worker's models run on every core by default; the last row bounds them to 1 thread each
        for workers, threads in ((1, None), (2, None), (2, 1)):
            settings = Settings(data_dir=tmp / f"ray-{workers}-{threads}", catalog_url=catalog_url, inference_threads=threads)
            if catalog_url:  # a fresh catalog per run
                import psycopg

                with psycopg.connect(catalog_url, autocommit=True) as conn:
                    conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            t = time.perf_counter()
            reports = ingest_on_ray(settings, items, workers=workers)
            wall = time.perf_counter() - t
            got = {r.path: r.sightings_added for r in reports}
            assert all(r.status == "ingested" for r in reports), [(r.path, r.status, r.error) for r in reports]
            assert got == expected, f"ray with {workers} workers stored {got}, one process {expected}"
            rows.append({"mode": "ray", "workers": workers, "threads_per_worker": threads or cores, "files": n, "wall_s": wall})
        video_s = n * seconds
        for r in rows:
            r["files_per_hour"] = round(3600 * n / r["wall_s"], 1)
            r["video_s_per_wall_s"] = round(video_s / r["wall_s"], 2)
            r["wall_s"] = round(r["wall_s"], 1)
        result = {
            "benchmark": "cluster", "size": size, "catalog": "postgresql" if catalog_url else "sqlite",
            "file_video_s": seconds, "machine": machine_info(["ray", "openvino", "onnxruntime"]), "rows": rows,
            "note": "model loading (first file of each worker) is inside the wall time",
        }  # fmt: skip
        print_table(rows, f"ingest on a local Ray cluster ({result['catalog']} catalog)")
        write_json(f"cluster_{size}", result, out or RESULTS_DIR)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="S")
    p.add_argument("--catalog-url", default=None)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    return run(a.size, a.catalog_url, a.out)


if __name__ == "__main__":
    main()
