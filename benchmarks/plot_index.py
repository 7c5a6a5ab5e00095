"""Plots from the FAISS benchmark's JSON: latency vs index size, and recall vs latency.

    python -m benchmarks.plot_index      # reads benchmarks/results/bench_index_*.json, writes two PNGs there
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import RESULTS_DIR  # noqa: E402


def load_rows(folder: Path = RESULTS_DIR) -> list[dict]:
    rows = []
    for p in sorted(folder.glob("bench_index_*.json")):
        rows += json.loads(p.read_text())["rows"]
    return rows


def main() -> list[Path]:
    rows = [r for r in load_rows() if r["dim"] == 256]
    kinds = sorted({_kind(r) for r in rows})
    out = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in kinds:
        pts = sorted({(r["vectors"], r["top10_p50_ms"]) for r in rows if r["window"] == "100%" and _kind(r) == kind})
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=kind)
    ax.set(xscale="log", yscale="log", xlabel="vectors in the index (256-d)", ylabel="top-10 latency p50 (ms), 1 query",
           title="FAISS latency vs index size (no filter; 1 thread, 2 at 1M)")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    out.append(RESULTS_DIR / "index_latency_vs_size.png")
    fig.tight_layout()
    fig.savefig(out[-1], dpi=110)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    n_max = max(r["vectors"] for r in rows)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, kind in enumerate(kinds):  # colour = index kind, marker = filter window
        for window, marker in (("100%", "o"), ("10%", "s"), ("1%", "^")):
            pts = [(r["top10_p50_ms"], r["recall_at_10"]) for r in rows if r["vectors"] == n_max and r["window"] == window and _kind(r) == kind]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colours[i % len(colours)],
                           label=f"{kind}, window {window}", s=45)  # fmt: skip
    ax.set(xscale="log", xlabel="top-10 latency p50 (ms)", ylabel="recall@10 vs exact",
           title=f"Recall vs latency at {n_max:,} vectors, with time-window filters")  # fmt: skip
    ax.legend(fontsize=6, ncol=2)
    ax.grid(True, alpha=0.3)
    out.append(RESULTS_DIR / "index_recall_vs_latency.png")
    fig.tight_layout()
    fig.savefig(out[-1], dpi=110)
    for p in out:
        print(f"wrote {p}")
    return out


def _kind(r: dict) -> str:
    k = r["index"].split(" ")[0]
    for n in ("IVF512", "IVF1024", "IVF2048", "IVF4096", "IVF8192", "IVF16384"):
        k = k.replace(n, "IVF")
    return k + (" /sel" if "selectivity" in r["index"] else "")


if __name__ == "__main__":
    main()
