"""Test-time help in search, measured on held-out people as search.py applies it (issue 31, part 3).

    python -m training.eval_testtime                                  # the configured default embedder
    python -m training.eval_testtime --embedder reid-mnv2-1400 --onnx ../wt-31/training/runs/reid-g-nocuhk03.onnx \\
        --json training/results/testtime/testtime.json

Sets (held-out identities, never trained on; whether their cameras were is the embedder's affair, see
models/reid/README.md): CUHK03 and CUHK01 test (100 ids each, `cuhk_split`; camera 1 queries camera 2) and Market
test (151 ids, `market_split`; the first crop of each person on each camera queries every crop, the same person on
the same camera left out). A query is ONE crop, as an uploaded image is; the gallery is what the catalog holds.

Variants, each applied as search does it: the raw top `--candidates` (the index's top-k: 20 clips x 3 crops x 4
by default) re-scored by `vsearch.ranking.rescore`, the rest of the gallery after them in raw order:
- track-level: a gallery crop compared by its track's mean (a track = a person's crops on one camera);
- camera means removed: each gallery crop minus the mean of every crop of its camera (unlabelled); the query
  (no camera) as it is, or minus the mean of every crop (`q-global`), or minus its own camera's mean (`q-own`: a
  query from a known camera; the offline protocol of training/eval_adapt.py);
- k-reciprocal re-ranking of the top `RERANK_TOP_N` (vsearch.ranking).
`eval_adapt` is the offline figure of training/eval_adapt.py (both sides track means, each side's own camera mean
removed, whole gallery ranked): for reference only, an uploaded query is not a track.
Scored by crops (rank-k / mAP of the re-ID protocol: a track-level variant ties a track's crops) and by tracks
(each gallery track once, at its best crop's score: what search returns with track-level ranking on).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine_info, print_table, write_json
from training.cache import CACHE_DIR, cached_crops
from training.datasets import CUHK01, CUHK03, cuhk_split, load_manifest_crops, load_market, market_split
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import Embedder, make_embedder
from vsearch.evaluate import cmc_map
from vsearch.ranking import k_reciprocal, l2n, rescore

RESULTS = PROJECT_ROOT / "training" / "results" / "testtime"
CANDIDATES = 20 * 3 * 4  # search.py's index top-k for top_k=20 clips, crops_per_segment=3
RERANK_TOP_N = 100
H, W = 256, 128


def held_out_sets() -> dict[str, tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64], str]]:
    """{name: (crops, pids, cams, protocol)} of the held-out identities."""
    out = {}
    for name, root in (("cuhk03", CUHK03), ("cuhk01", CUHK01)):
        imgs, pids, cams = cached_crops(name, partial(load_manifest_crops, root), (H, W))
        keep = np.flatnonzero(np.isin(pids, cuhk_split(root)[1]))
        out[f"{name}-test-100-ids"] = (imgs[keep], pids[keep], cams[keep], "two-camera")
    imgs, pids, cams = cached_crops("market", load_market, (H, W))
    keep = np.flatnonzero(np.isin(pids, market_split()[1]))
    out["market-test-151-ids"] = (imgs[keep], pids[keep], cams[keep], "market")
    return out


def split(pids: NDArray[np.int64], cams: NDArray[np.int64], protocol: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(query rows, gallery rows)."""
    if protocol == "two-camera":
        return np.flatnonzero(cams == 1), np.flatnonzero(cams == 2)
    _, first = np.unique(pids * 10 + cams, return_index=True)
    return np.sort(first), np.arange(len(pids))


def group_means(f: NDArray[np.float32], key: NDArray[np.int64]) -> NDArray[np.float32]:
    """Each row's group mean (rows with equal `key`), not normalised."""
    _, owner = np.unique(key, return_inverse=True)
    sums = np.zeros((owner.max() + 1, f.shape[1]), np.float64)
    np.add.at(sums, owner, f)
    return (sums / np.bincount(owner)[:, None])[owner].astype(np.float32)


Variant = Callable[..., NDArray[np.float32]]


def variants(f: NDArray[np.float32], pids: NDArray[np.int64], cams: NDArray[np.int64]) -> dict[str, Variant | None]:
    """name -> scorer(query vector, candidate rows) giving the candidates' new scores (None: plain)."""
    track = group_means(f, pids * 10 + cams)
    cam = group_means(f, cams)
    glob = f.mean(0, keepdims=True)

    def make(tr: bool, cm: bool, qm: str, krecip: bool = False) -> Variant:
        def score(q: NDArray[np.float32], rows: NDArray[np.int64], own: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
            qmeans = {"raw": None, "global": glob, "own": own}[qm]
            qv, gv = rescore(q[None, :], f[rows], track[rows] if tr else None, cam[rows] if cm else None, qmeans)
            if krecip:
                return k_reciprocal(qv[0], gv)
            return (gv @ qv[0]).astype(np.float32)

        return score

    return {
        "plain": None,
        "k-reciprocal": make(False, False, "raw", True),
        "camera means, query raw": make(False, True, "raw"),
        "camera means, query - global mean": make(False, True, "global"),
        "camera means, query - own camera mean": make(False, True, "own"),
        "track-level": make(True, False, "raw"),
        "track-level + camera means, query raw": make(True, True, "raw"),
        "track-level + camera means, query - global mean": make(True, True, "global"),
        "track-level + camera means, query raw, k-reciprocal": make(True, True, "raw", True),
    }


def score_set(f: NDArray[np.float32], pids: NDArray[np.int64], cams: NDArray[np.int64], protocol: str,
              candidates: int, krecip: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """rank-1 / rank-5 / mAP (%) of every variant on one embedded set."""
    qi, gi = split(pids, cams, protocol)
    raw = f[qi] @ f[gi].T
    cam_mean = group_means(f, cams)
    rows = []
    for name, fn in variants(f, pids, cams).items():
        if "k-reciprocal" in name and not krecip:
            continue
        sim = raw.copy()
        if fn is not None:
            for a, q in enumerate(qi):
                n = candidates if "k-reciprocal" not in name else min(candidates, RERANK_TOP_N)
                top = np.argsort(-raw[a], kind="stable")[:n]
                new = fn(f[q], gi[top], cam_mean[q : q + 1]) if "own" in name else fn(f[q], gi[top])
                sim[a] -= 10.0  # the rest after the re-scored candidates, in raw order
                sim[a, top] = new + 10.0
        rows.append(_row(name, sim, pids, cams, qi, gi))
    # the offline protocol of training/eval_adapt.py: both sides track means, each side's own camera mean removed
    tr = l2n(group_means(f, pids * 10 + cams))
    t2 = l2n(tr - group_means(tr, cams))
    rows.append(_row("eval_adapt (query a track too, own camera mean)", t2[qi] @ t2[gi].T, pids, cams, qi, gi))
    return rows


def _row(name: str, sim: NDArray[np.float32], pids: NDArray[np.int64], cams: NDArray[np.int64],
         qi: NDArray[np.int64], gi: NDArray[np.int64]) -> dict[str, Any]:  # fmt: skip
    """Scored by crops (the re-ID protocol) and by tracks, as search shows them: each gallery track once, at its
    best crop's score."""
    cmc, mean_ap, n = cmc_map(-sim, pids[qi], cams[qi], pids[gi], cams[gi])
    keys, owner = np.unique(pids[gi] * 10 + cams[gi], return_inverse=True)
    best = np.full((len(qi), len(keys)), -np.inf, np.float32)
    for j in range(len(keys)):
        best[:, j] = sim[:, owner == j].max(axis=1)
    tcmc, tmap, _ = cmc_map(-best, pids[qi], cams[qi], keys // 10, keys % 10)
    return {"variant": name, "rank_1_pct": round(100 * float(cmc[0]), 1), "rank_5_pct": round(100 * float(cmc[4]), 1),
            "mAP_pct": round(100 * mean_ap, 1), "track_rank_1_pct": round(100 * float(tcmc[0]), 1),
            "track_rank_5_pct": round(100 * float(tcmc[4]), 1), "track_mAP_pct": round(100 * tmap, 1),
            "queries": n}  # fmt: skip


def embedded(e: Embedder, set_name: str, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The set's embeddings by `e`, kept in training/cache (git-ignored) so that a re-run only re-scores."""
    path = CACHE_DIR / f"testtime-{e.name}-{set_name}-{len(crops)}.npy"
    if path.exists():
        return np.load(path)
    f = e.embed([np.asarray(c) for c in crops])
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, f)
    return f


def run(embedders: list[Embedder], candidates: int = CANDIDATES, sets: list[str] | None = None,
        krecip: bool = True) -> dict[str, Any]:  # fmt: skip
    rows = []
    for set_name, (imgs, pids, cams, protocol) in held_out_sets().items():
        if sets and set_name not in sets:
            continue
        for e in embedders:
            f = embedded(e, set_name, imgs)
            got = [{"set": set_name, "embedder": e.name, **r} for r in score_set(f, pids, cams, protocol, candidates, krecip)]
            print_table(got, "")
            rows += got
    return {"benchmark": "testtime", "machine": machine_info(["onnxruntime"]), "candidates": candidates,
            "rerank_top_n": RERANK_TOP_N, "rows": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from training.eval_reid import onnx_embedder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", action="append", default=[], help="registered embedder (repeatable; default: configured)")
    ap.add_argument("--onnx", type=Path, action="append", default=[], help="trained model file (repeatable)")
    ap.add_argument("--candidates", type=int, default=CANDIDATES, help="raw top-k re-scored per query")
    ap.add_argument("--set", action="append", default=[], help="only these sets (repeatable)")
    ap.add_argument("--no-k-reciprocal", action="store_true", help="skip the k-reciprocal rows (the slow ones)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    names = args.embedder or ([] if args.onnx else [Settings().embedder])
    embs = [make_embedder(Settings(embedder=n)) for n in names] + [onnx_embedder(p) for p in args.onnx]
    out = run(embs, args.candidates, args.set, not args.no_k_reciprocal)
    print_table(out["rows"], "Test-time help on held-out people (one-crop queries; rank-1 / rank-5 / mAP, %)")
    if args.json:
        write_json(args.json.stem, out, args.json.parent)
    return out


if __name__ == "__main__":
    main()
