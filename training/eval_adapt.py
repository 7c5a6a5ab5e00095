"""Measure `vsearch adapt` as a deployment would: a base model that never saw a set's cameras, handed that set's
training identities as unlabelled tracklets (the crops of one identity on one camera = one track; no link across
cameras), scored on the set's held-out identities before and after (rank-1 / mAP). Targets: `cuhk03` (two
cameras, camera 1 queries camera 2) and `market` (six cameras, `training.datasets.market_split`'s 151 held-out
identities with Market's protocol: the first crop of each person on each camera queries every crop of the other
cameras).

    python -m training.eval_adapt --base ../wt-31/training/runs/reid-g-nocuhk03.pt --budget-s 900 \\
        --json training/results/adapt/cuhk03_900s.json
    python -m training.eval_adapt --target market --base training/runs/reid-g-nomarket.pt --budget-s 600 \\
        --json training/results/adapt/market_g_nomarket_600s.json

Tracks of one camera are given overlapping times (CUHK03 has none): all of a camera's tracks are then different
people, the intra-camera supervision a deployment's simultaneous tracks give. Test-time variants, on the held-out
set: each camera's own mean embedding removed (unlabelled), and track-level embeddings (the mean of an identity's
crops on one camera: what one track gives).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info
from training.cache import cached_crops
from training.datasets import CUHK03, cuhk_split, load_manifest_crops, load_market, market_split
from vsearch.adapt.links import Tracklet, remove_camera_means, track_features
from vsearch.config import PROJECT_ROOT
from vsearch.evaluate import cmc_map

RESULTS = PROJECT_ROOT / "training" / "results" / "adapt"


def _score(f: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> dict[str, float]:
    if set(np.unique(cams).tolist()) <= {1, 2}:  # two cameras: every crop of camera 1 queries camera 2
        q, g = cams == 1, cams == 2
    else:  # Market's protocol: each person's first crop on each camera queries every crop (same camera left out)
        _, first = np.unique(pids * 10 + cams, return_index=True)
        q, g = np.isin(np.arange(len(pids)), first), np.ones(len(pids), bool)
    cmc, mean_ap, n = cmc_map(1 - f[q] @ f[g].T, pids[q], cams[q], pids[g], cams[g])
    return {"rank_1": round(float(cmc[0]), 4), "rank_5": round(float(cmc[4]), 4), "mAP": round(mean_ap, 4), "queries": n}


def score_variants(f: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> dict[str, dict[str, float]]:
    """Plain, camera means removed, track-level (identity x camera means), and both."""
    keys = pids * 10 + cams
    _, owner = np.unique(keys, return_inverse=True)
    track = track_features(f, owner, int(owner.max()) + 1)[owner]
    return {
        "plain": _score(f, pids, cams),
        "camera_mean_removed": _score(remove_camera_means(f, cams), pids, cams),
        "track_mean": _score(track, pids, cams),
        "track_mean_camera_mean_removed": _score(remove_camera_means(track, cams), pids, cams),
    }


def adabn(base: Path, crops: list[np.ndarray], seed: int, batch: int = 64) -> Any:
    """AdaBN (Li et al. 2016): the base network with every batch norm's running statistics re-estimated on the new
    cameras' crops (forward passes only, no labels, no gradient)."""
    import random

    import torch

    from vsearch.adapt.learn import LearnResult
    from vsearch.reidnet import load_checkpoint, to_tensor

    net = load_checkpoint(base, 1)
    t = time.monotonic()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over all batches
    net.train()
    net.features[: net.frozen].train()  # the frozen ImageNet blocks too
    order = random.Random(seed).sample(range(len(crops)), len(crops))
    with torch.no_grad():
        for i in range(0, len(order), batch):
            net.inference(to_tensor([crops[j] for j in order[i : i + batch]]))
    net.eval()
    return LearnResult(net, {"method": "adabn", "crops": len(crops), "train_s": round(time.monotonic() - t, 1),
                             "steps": 0, "rounds": []})  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=("cuhk03", "market"), default="cuhk03")
    ap.add_argument("--base", type=Path, required=True, help="base checkpoint (.pt) that never saw the target's cameras")
    ap.add_argument("--budget-s", type=float, default=600.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--link-similarity", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--global-weight", type=float, default=0.0)
    ap.add_argument("--train-from", type=int, default=0, help="blocks before this keep the base's weights")
    ap.add_argument("--embed-per-track", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--adabn", action="store_true",
                    help="instead of fine-tuning: only re-estimate the batch norms' statistics on the tracklets' crops")
    ap.add_argument("--export", type=Path, default=None, help="also write the adapted model here (.onnx) and score it")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from vsearch.adapt.learn import LearnOptions, embed_crops, fine_tune
    from vsearch.reidnet import H, W, load_checkpoint

    torch.set_num_threads(args.threads)
    if args.target == "market":
        imgs, pids, cams = cached_crops("market", load_market, (H, W))
        train_ids, test_ids = market_split()
    else:
        imgs, pids, cams = cached_crops("cuhk03", lambda: load_manifest_crops(CUHK03), (H, W))
        train_ids, test_ids = cuhk_split(CUHK03)
    test = np.isin(pids, test_ids)
    tracklets, truth = [], []
    for pid in train_ids:
        for cam in np.unique(cams).tolist():
            idx = np.flatnonzero((pids == pid) & (cams == cam))
            if len(idx):
                tracklets.append(Tracklet(f"{args.target}-c{cam}", 0.0, 1.0, [np.asarray(imgs[i]) for i in idx]))
                truth.append(pid)
    test_crops = [np.asarray(imgs[i]) for i in np.flatnonzero(test)]
    t = time.monotonic()
    before = score_variants(embed_crops(load_checkpoint(args.base, 1), test_crops, args.threads), pids[test], cams[test])
    embed_test_s = time.monotonic() - t
    print(json.dumps({"before": before}), flush=True)
    opts = LearnOptions(budget_s=args.budget_s, rounds=args.rounds, link_similarity=args.link_similarity, lr=args.lr,
                        global_weight=args.global_weight, train_from=args.train_from,
                        embed_per_track=args.embed_per_track, seed=args.seed, threads=args.threads,
                        max_steps=args.max_steps)  # fmt: skip
    if args.adabn:
        res = adabn(args.base, [c for t in tracklets for c in t.crops], args.seed)
    else:
        res = fine_tune(args.base, tracklets, opts, progress=lambda m: print(m, flush=True), truth=truth)
    after = score_variants(embed_crops(res.net, test_crops, args.threads), pids[test], cams[test])
    out: dict[str, Any] = {
        "benchmark": f"adapt-{args.target}", "machine": machine_info(["torch"]), "cpu": platform.processor() or platform.machine(),
        "base": str(args.base), "threads": args.threads, "target": {"cuhk03": "cuhk03-labeled-pair1", "market": "market1501-train"}[args.target],
        "train_ids": len(train_ids), "test_ids": len(test_ids), "test_crops": len(test_crops),
        "embed_test_s": round(embed_test_s, 1), "before": before, "after": after, "adapt": res.record,
    }  # fmt: skip
    if args.export:
        from training.eval_reid import onnx_embedder
        from vsearch.reidnet import export_onnx

        args.export.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(res.net, args.export)
        e = onnx_embedder(args.export)
        out["after_onnx"] = score_variants(e.embed(test_crops), pids[test], cams[test])
    print(json.dumps({k: out[k] for k in ("before", "after")}, indent=1))
    print(json.dumps(res.record["rounds"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
