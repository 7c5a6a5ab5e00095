"""Where the grouping thresholds sit: cosine similarity of crop pairs across two cameras, same person vs
different people, on CUHK identities no model trained on (`training.datasets.cuhk_split`'s test ids).

    python -m benchmarks.eval_similarity [--embedder NAME ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from training.datasets import CUHK01, CUHK03, cuhk_split, read_manifest
from vsearch.config import Settings
from vsearch.embed import make_embedder


def similarities(root: Path, embedder: str) -> dict[str, Any]:
    test = set(cuhk_split(root)[1])
    crops = [c for c in read_manifest(root) if c.pid in test]
    images = [np.ascontiguousarray(cv2.imread(str(c.path))[:, :, ::-1]) for c in crops]
    pids = np.array([c.pid for c in crops])
    cams = np.array([c.cam for c in crops])
    f = make_embedder(Settings(embedder=embedder)).embed(images)
    s = f @ f.T
    cross = cams[:, None] != cams[None, :]
    same = (pids[:, None] == pids[None, :]) & cross
    diff = (pids[:, None] != pids[None, :]) & cross
    pct = lambda m, p: round(float(np.percentile(s[m], p)), 3)  # noqa: E731
    return {"set": f"{root.name} test ({len(test)} ids)", "embedder": embedder, "same_pairs": int(same.sum()) // 2,
            "same_median": pct(same, 50), "same_p10": pct(same, 10), "different_median": pct(diff, 50),
            "different_p99": pct(diff, 99), "different_p99_9": pct(diff, 99.9)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", action="append", default=[], help="registered embedder (repeatable)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    rows = [similarities(root, e) for root in (CUHK03, CUHK01) for e in (args.embedder or ["reid-mnv2", "reid-mnv2-1400"])]
    print_table(rows, "Cosine similarity across cameras on held-out CUHK identities")
    payload = {"benchmark": "similarity", "machine": machine_info(["onnxruntime"]), "rows": rows}
    write_json("eval_similarity", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
