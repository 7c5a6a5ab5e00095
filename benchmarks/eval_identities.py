"""Quality of auto-grouping (vsearch.identities.cluster) on data with identity ground truth.

Items are "tracks": the L2-normalised mean embedding of a few crops of one person on one camera, as the product
builds them from a track's sightings. Ground truth gives the person. Scores: pairwise and BCubed precision/recall.

Sets (the default embedder, reid-mnv2, was trained on PKU-Reid and MOT17-mini only, so CUHK is unseen data):
- cuhk03-tune: CUHK03 identities 0001-0400 (tracks = mean of 2 crops; up to 2 tracks per camera): the threshold is
  chosen here (best BCubed F1 over a sweep), and only here.
- cuhk03-test: CUHK03 identities 0401-0843 sampled, cuhk01: CUHK01 identities sampled (1 track per camera):
  scored at the tuned threshold.
- mot17-constrained: MOT17-mini ground-truth tracks (the model's training data; every track its own person, all
  tracks of one sequence simultaneous): counts false merges that the cannot-link constraint must prevent.

  python -m benchmarks.eval_identities [--ids 150] [--size S]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import Embedder, l2_normalize, make_embedder
from vsearch.identities import cannot_link, cluster, clustering_quality

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def _rgb(path: Path) -> NDArray[np.uint8]:
    img = cv2.imread(str(path))
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def crops_by_person(folder: Path, ids: list[int]) -> dict[tuple[int, str], list[Path]]:
    """(identity, camera) -> crop paths, in name order, of a crop set with `manifest.csv` (file, identity, camera)."""
    by: dict[tuple[int, str], list[Path]] = defaultdict(list)
    wanted = set(ids)
    with open(folder / "manifest.csv") as f:
        for r in csv.DictReader(f):
            if int(r["identity"]) in wanted:
                by[(int(r["identity"]), r["camera"])].append(folder / r["file"])
    return {k: sorted(v) for k, v in sorted(by.items())}


def crop_tracks(
    folder: Path, ids: list[int], embedder: Embedder, per_track: int = 2
) -> tuple[NDArray[np.float32], list[int], list[str]]:
    """Tracks of a Market-layout crop set (`manifest.csv`: file, identity, camera): consecutive crops of one person
    and camera, `per_track` at a time, averaged. Returns (embeddings, identity per track, camera per track)."""
    by = crops_by_person(folder, ids)
    groups = [(k, v[i : i + per_track]) for k, v in by.items() for i in range(0, len(v), per_track)]
    paths = [p for _, g in groups for p in g]
    vecs = np.concatenate([embedder.embed([_rgb(p) for p in paths[i : i + 64]]) for i in range(0, len(paths), 64)])
    out, at = [], 0
    for _, g in groups:
        out.append(vecs[at : at + len(g)].mean(0))
        at += len(g)
    return l2_normalize(np.stack(out).astype(np.float32)), [k[0] for k, _ in groups], [k[1] for k, _ in groups]


def mot_tracks(root: Path, embedder: Embedder) -> tuple[NDArray[np.float32], list[str], list[str], list[float], list[float]]:
    """MOT17-mini pedestrian gt tracks (visible >= 0.3, >= 64 px): mean embedding of their crops, with the sequence
    as the camera and the frame span as the time span."""
    embs, truth, cams, starts, ends = [], [], [], [], []
    for seq in sorted(d for d in root.iterdir() if (d / "gt" / "gt.txt").is_file()):
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 8] >= 0.3) & (gt[:, 5] >= 64)]
        frames = {int(f): cv2.imread(str(seq / "img1" / f"{int(f):06d}.jpg")) for f in np.unique(gt[:, 0])}
        for tid in np.unique(gt[:, 1]).astype(int):
            rows = gt[gt[:, 1] == tid]
            crops = []
            for r in rows:
                img = frames[int(r[0])]
                x, y, w, h = r[2:6]
                x1, y1 = max(0, int(x)), max(0, int(y))
                crops.append(np.ascontiguousarray(img[y1 : int(y + h), x1 : int(x + w), ::-1]))
            embs.append(embedder.embed(crops).mean(0))
            truth.append(f"{seq.name}:{tid}")
            cams.append(seq.name)
            starts.append(float(rows[:, 0].min()))
            ends.append(float(rows[:, 0].max()) + 1)
    return l2_normalize(np.stack(embs).astype(np.float32)), truth, cams, starts, ends


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Tune the threshold, score every set, print the tables, write benchmarks/results/eval_identities_<size>.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=150, help="identities sampled per test set")
    ap.add_argument("--size", choices=("S", "M"), default="M", help="S: 30 identities per set, short sweep (smoke)")
    ap.add_argument("--embedder", default="reid-mnv2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    n_ids = 30 if args.size == "S" else args.ids
    rng = np.random.default_rng(args.seed)
    embedder = make_embedder(Settings(embedder=args.embedder))
    t0 = time.perf_counter()

    c03 = DATASETS / "cuhk03-labeled-pair1"
    c01 = DATASETS / "cuhk01"
    ids03 = sorted({int(r["identity"]) for r in csv.DictReader(open(c03 / "manifest.csv"))})
    ids01 = sorted({int(r["identity"]) for r in csv.DictReader(open(c01 / "manifest.csv"))})
    tune_ids = sorted(rng.choice([i for i in ids03 if i <= 400], n_ids, replace=False).tolist())
    test03 = sorted(rng.choice([i for i in ids03 if i > 400], n_ids, replace=False).tolist())
    test01 = sorted(rng.choice(ids01, n_ids, replace=False).tolist())

    emb, truth, _ = crop_tracks(c03, tune_ids, embedder)
    sweep = []
    for th in SWEEP:
        q = clustering_quality(truth, cluster(emb, th))
        sweep.append({"set": "cuhk03-tune", "threshold": th, **q})
    best = max(sweep, key=lambda r: r["bcubed_f1"])
    th = best["threshold"]
    rows = [dict(best, set="cuhk03-tune (chosen)")]
    for name, folder, ids in (("cuhk03-test", c03, test03), ("cuhk01", c01, test01)):
        emb, truth, _ = crop_tracks(folder, ids, embedder)
        rows.append({"set": name, "threshold": th, **clustering_quality(truth, cluster(emb, th))})
    memb, mtruth, mcams, ms, me = mot_tracks(DATASETS / "mot17-mini" / "train", embedder)
    cl = cannot_link(mcams, ms, me)
    for constrained in (False, True):
        labels = cluster(memb, th, cl if constrained else None)
        rows.append({"set": f"mot17-{'constrained' if constrained else 'unconstrained'}", "threshold": th,
                     **clustering_quality(mtruth, labels)})  # fmt: skip
    keep = ["set", "threshold", "items", "true_identities", "clusters", "pairwise_precision", "pairwise_recall",
            "bcubed_precision", "bcubed_recall", "bcubed_f1"]  # fmt: skip
    print_table([{k: r[k] for k in keep} for r in sweep], "threshold sweep (CUHK03 tune identities)")
    print_table([{k: r[k] for k in keep} for r in rows], f"auto-grouping quality at threshold {th} ({args.embedder})")
    payload = {
        "benchmark": "eval_identities", "embedder": args.embedder, "seed": args.seed, "ids_per_set": n_ids,
        "threshold": th, "sweep": sweep, "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine_info(["onnxruntime", "numpy"]),
        "notes": "tracks = mean of 2 crops of one person and camera (CUHK03: up to 2 per camera; CUHK01: 1 per camera);"
                 " the threshold is chosen on cuhk03-tune only; MOT17-mini was in reid-mnv2's training data",
    }  # fmt: skip
    write_json(f"eval_identities_{args.size}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
