"""Cost of a description search (vsearch find) by collection size: the catalog's ranking statement
(`Catalog.find_by_attributes`: joint probability over the attribute table, time window and cameras in its WHERE)
on a real SQLite catalog holding n sightings with attribute rows, for a 4-attribute description with no filter,
one camera of 20, a one-hour window of 30 days, and one camera over one day. Checked first against numpy brute
force on the same probabilities (the same top 50). Sightings carry 4-byte stand-in embeddings (the statement
never reads them). Wall and CPU time of this process are both reported: on a loaded machine the wall time is
mostly waiting for a core.

    python -m benchmarks.bench_find --size S|M
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.attributes import COLUMNS, GROUPS, group_slice
from vsearch.catalog import SqliteCatalog
from vsearch.describe import parse_description

SIZES = {"S": 10_000, "M": 1_000_000}
CAMERAS = [f"cam-{i:02d}" for i in range(20)]
SPAN_S = 30 * 86400.0
T0 = 1_780_000_000.0
MODEL = "attributes-mnv2-1400"
REPEATS = 5


def fill(cat: SqliteCatalog, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n sightings with random probabilities (groups summing to 1), random camera and time; returned for checks."""
    rng = np.random.default_rng(seed)
    video = cat.begin_video("cam-00", "/bench.mp4", "0" * 64, T0, 10.0, 1, (640, 480), "bench")
    probs = rng.uniform(0, 1, (n, len(COLUMNS))).astype(np.float32)
    for g, _ in GROUPS:
        s = group_slice(g)
        probs[:, s] /= probs[:, s].sum(1, keepdims=True)
    cams = rng.integers(0, len(CAMERAS), n)
    ts = T0 + np.sort(rng.uniform(0, SPAN_S, n))
    cols = ", ".join(f"p_{c}" for c in COLUMNS)
    for a in range(0, n, 50_000):
        b = min(n, a + 50_000)
        with cat._tx() as db:
            db.executemany(
                "INSERT INTO sightings (id, video_id, camera_id, track_id, ts, pts, x1, y1, x2, y2, confidence, quality,"
                " thumb_path, embedder, embedding) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 1, 1, 1, 1, '', 'bench', x'00000000')",
                [(i + 1, video.id, CAMERAS[cams[i]], i, float(ts[i])) for i in range(a, b)],
            )  # fmt: skip
            db.executemany(
                f"INSERT INTO sighting_attributes (sighting_id, model, camera_id, ts, {cols}) VALUES (?, ?, ?, ?,"
                f" {', '.join('?' * len(COLUMNS))})",
                [(i + 1, MODEL, CAMERAS[cams[i]], float(ts[i]), *map(float, probs[i])) for i in range(a, b)],
            )  # fmt: skip
    return probs, cams, ts, np.arange(1, n + 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="S")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    n = SIZES[args.size]
    d = parse_description("woman with a backpack, red top, dark trousers")
    terms = d.terms()
    with tempfile.TemporaryDirectory() as tmp:
        cat = SqliteCatalog(Path(tmp) / "c.sqlite")
        t = time.perf_counter()
        probs, cams, ts, ids = fill(cat, n)
        fill_s = time.perf_counter() - t
        joint = np.ones(n, np.float32)
        for term in terms:
            s = probs[:, [COLUMNS.index(c) for c in term.columns]].sum(1)
            joint *= 1 - s if term.negated else s
        day = T0 + 10 * 86400
        cases = {"no filter": (None, None, None), "one camera of 20": (None, None, ["cam-03"]),
                 "one hour of 30 days": (day, day + 3600, None), "one camera, one day": (day, day + 86400, ["cam-03"])}  # fmt: skip
        rows = []
        for name, (lo, hi, cam) in cases.items():
            found, count = cat.find_by_attributes(MODEL, terms, lo, hi, cam, 50)
            keep = np.ones(n, bool)
            if lo is not None:
                keep &= (ts >= lo) & (ts <= hi)
            if cam is not None:
                keep &= cams == CAMERAS.index(cam[0])
            expected = ids[keep][np.argsort(-joint[keep], kind="stable")][:50]
            assert count == int(keep.sum()), (name, count, keep.sum())
            # float32 here vs float64 in SQLite: compare as sets of the top 45 (ties at the edge may swap)
            assert set(expected[:45].tolist()) <= {i for i, _ in found}, name
            times, cpu = [], []
            for _ in range(REPEATS):
                t, c = time.perf_counter(), time.process_time()
                cat.find_by_attributes(MODEL, terms, lo, hi, cam, 50)
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            rows.append({"sightings": n, "filter": name, "in filter": int(keep.sum()),
                         "wall_p50_ms": round(float(np.median(times)), 1), "cpu_p50_ms": round(float(np.median(cpu)), 1)})  # fmt: skip
        cat.close()
    print_table(rows, f"vsearch find: ranking statement, {n:,} sightings (fill {fill_s:.0f} s)")
    payload = {"rows": rows, "description": d.summary(), "repeats": REPEATS, "machine": machine_info()}
    write_json(f"bench_find_{args.size}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
