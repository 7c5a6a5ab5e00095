"""Shared benchmark plumbing: the machine record, timing with warm-up, a table printer and the JSON writer.

Every benchmark: seeded data, warm-up discarded, repeats, a correctness check before any speed figure, units in
every column name, a table printed and JSON written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = ("S", "M", "L")


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the given packages' versions, and the date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    simd: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                simd = sorted({f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "sse4", "amx", "fma"))})
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gb = round(mem_kb / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    versions: dict[str, str | None] = {}
    for p in packages:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "simd": simd,  # OpenVINO's speed depends on them: AVX-512 VNNI / AMX hosts differ from AVX2-only ones
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
    }


def store_args(doc: str | None, sizes: Sequence[str]) -> argparse.ArgumentParser:
    """The arguments of a benchmark over a synthetic catalog: --size, --catalog-url, --flat-max, --out."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(sizes), default="S")
    ap.add_argument("--catalog-url", default=None, help="PostgreSQL (an empty database); default: SQLite")
    ap.add_argument("--flat-max", type=int, default=None, help="exact search up to this many (default: the setting)")
    ap.add_argument("--out", type=Path, default=None)
    return ap


def size_and_variants(doc: str | None, sizes: Sequence[str], variants: Sequence[str], argv: list[str] | None) -> argparse.Namespace:
    """The arguments of a benchmark that compares settings variants: --size (default M), --variants (default
    all), --out (a folder for the JSON)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(sizes), default="M")
    ap.add_argument("--variants", nargs="*", choices=list(variants), default=list(variants))
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> np.ndarray:
    """Wall time in ms of `repeats` calls of fn, after `warmup` discarded calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t) * 1000
    return out


def percentiles_ms(samples_ms: np.ndarray) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(samples_ms, q)), 3) for q in (50, 95, 99)}


def print_table(rows: Sequence[dict[str, Any]], title: str = "") -> str:
    """Print rows (dicts with the same keys; units in the key names) as an aligned table; returns the text."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))  # union of keys, first-seen order
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) and abs(v) < 1000 else (f"{v:.0f}" if isinstance(v, float) else str(v))  # noqa: E731
    cells = [[fmt(r[c]) if r.get(c) is not None else "-" for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = [title] if title else []
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    text = "\n".join(lines)
    print(text)
    return text


def write_json(name: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """Write benchmarks/results/<name>.json (pretty, stable key order) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return path


def warm(svc: Any, resolution_wh: tuple[int, int]) -> None:
    """Load the models and compile every input shape an ingest of this size may use: not ingest time."""
    svc.embedder.load()
    svc.detector.warm(resolution_wh)


HELDOUT_EMBEDDERS = {"reid-mnv2-1400", "reid-g-all"}  # embedders trained on CUHK01/CUHK03 except cuhk_split's test ids


def default_protocol(embedder: str) -> str:
    """The grouping evaluations' identity protocol for an embedder: "heldout" (the CUHK test ids of
    training.datasets.cuhk_split) for one trained on the rest of CUHK, "legacy" (CUHK03 0001-0400 / 0401-0843)
    for one that never saw CUHK."""
    return "heldout" if embedder in HELDOUT_EMBEDDERS else "legacy"
