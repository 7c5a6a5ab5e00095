"""Quality of auto-grouping (vsearch.identities.cluster) on data with identity ground truth.

Items are "tracks": the L2-normalised mean embedding of a few crops of one person on one camera, as the product
builds them from a track's sightings. Ground truth gives the person. Scores: pairwise and BCubed precision/recall.

Two protocols, because the sets must be people the embedder never trained on (`--protocol`; by default `heldout`
for reid-mnv2-1400, the default embedder, and `legacy` for any other):

heldout (reid-mnv2-1400 trained on CUHK01, CUHK03, PKU-Reid and MOT17 except the CUHK test ids of
`training.datasets.cuhk_split`, the one definition of the held-out ids):
- cuhk03-heldout: all 100 CUHK03 test ids (tracks = mean of 2 crops; up to 2 tracks per camera): the threshold is
  chosen here (best BCubed F1 over a sweep), and only here.
- cuhk01-heldout: all 100 CUHK01 test ids (1 track per camera): scored at the tuned threshold (and at
  `--compare`, reid-mnv2's 0.80, for comparison). The sweep on it is recorded as `report_sweep`, never used to choose.
- mot17-constrained / unconstrained: MOT17-mini ground-truth tracks (every track its own person, all tracks of one
  sequence simultaneous; in the training data of both models): false merges that the cannot-link rule must prevent.

legacy (reid-mnv2, trained on PKU-Reid and MOT17-mini only, so CUHK is unseen data):
- cuhk03-tune: CUHK03 identities 0001-0400 sampled (`--ids`): the threshold is chosen here, and only here.
- cuhk03-test: CUHK03 identities 0401-0843 sampled, cuhk01: CUHK01 identities sampled (1 track per camera):
  scored at the tuned threshold.
- mot17-constrained / unconstrained: as above.

  python -m benchmarks.eval_identities [--embedder NAME] [--protocol heldout|legacy] [--ids 150] [--size S]

Writes results/eval_identities_<size>.json (legacy, and any S smoke run) or eval_identities_<size>_heldout.json.
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

from benchmarks.common import RESULTS_DIR, default_protocol, machine_info, print_table, write_json
from training.datasets import cuhk_split
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import Embedder, l2_normalize, make_embedder
from vsearch.identities import cannot_link, cluster, clustering_quality

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
SWEEP_HELDOUT = (0.4, 0.45, *SWEEP)  # reid-mnv2-1400 puts same-person pairs higher and strangers much lower
LEGACY_THRESHOLD = 0.8  # chosen with reid-mnv2 on CUHK03 ids 0001-0400 (the legacy protocol)


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
    """Tune the threshold, score every set, print the tables, write benchmarks/results/eval_identities_<size>[...].json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=150, help="identities sampled per set (legacy protocol only)")
    ap.add_argument("--size", choices=("S", "M"), default="M", help="S: 30 identities per set (smoke)")
    ap.add_argument("--embedder", default=Settings().embedder)
    ap.add_argument("--protocol", choices=("heldout", "legacy"), default=None,
                    help="heldout: tune on CUHK03 test ids, report on CUHK01 test ids (cuhk_split); legacy: CUHK03 "
                         "0001-0400 / 0401-0843 and CUHK01 sampled. Default: heldout for reid-mnv2-1400, else legacy")
    ap.add_argument("--compare", type=float, nargs="*", default=[LEGACY_THRESHOLD],
                    help="heldout protocol: also score the report sets at these thresholds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    protocol = args.protocol or default_protocol(args.embedder)
    n_ids = 30 if args.size == "S" else args.ids
    rng = np.random.default_rng(args.seed)
    embedder = make_embedder(Settings(embedder=args.embedder))
    t0 = time.perf_counter()

    c03 = DATASETS / "cuhk03-labeled-pair1"
    c01 = DATASETS / "cuhk01"
    if protocol == "legacy":
        ids03 = sorted({int(r["identity"]) for r in csv.DictReader(open(c03 / "manifest.csv"))})
        ids01 = sorted({int(r["identity"]) for r in csv.DictReader(open(c01 / "manifest.csv"))})
        tune_ids = sorted(rng.choice([i for i in ids03 if i <= 400], n_ids, replace=False).tolist())
        test03 = sorted(rng.choice([i for i in ids03 if i > 400], n_ids, replace=False).tolist())
        test01 = sorted(rng.choice(ids01, n_ids, replace=False).tolist())
        tune_name, report = "cuhk03-tune", [("cuhk03-test", c03, test03), ("cuhk01", c01, test01)]
        sweep_ths: tuple[float, ...] = SWEEP
    else:  # every held-out id (100 per set); a random 30 of them for the smoke size
        tune_ids, test01 = cuhk_split(c03)[1], cuhk_split(c01)[1]
        if args.size == "S":
            tune_ids = sorted(rng.choice(tune_ids, n_ids, replace=False).tolist())
            test01 = sorted(rng.choice(test01, n_ids, replace=False).tolist())
        tune_name, report = "cuhk03-heldout", [("cuhk01-heldout", c01, test01)]
        sweep_ths = SWEEP_HELDOUT

    emb, truth, _ = crop_tracks(c03, tune_ids, embedder)
    sweep = []
    for th in sweep_ths:
        q = clustering_quality(truth, cluster(emb, th))
        sweep.append({"set": tune_name, "threshold": th, **q})
    best = max(sweep, key=lambda r: r["bcubed_f1"])
    th = best["threshold"]
    others = [t for t in dict.fromkeys(args.compare) if t != th] if protocol == "heldout" else []
    rows = [dict(best, set=f"{tune_name} (chosen)")]
    rows += [dict(r, set=f"{tune_name} (compare)") for t in others for r in sweep if r["threshold"] == t]
    report_sweep = []
    for name, folder, ids in report:
        emb, truth, _ = crop_tracks(folder, ids, embedder)
        for t in (th, *others):
            rows.append({"set": name, "threshold": t, **clustering_quality(truth, cluster(emb, t))})
        if protocol == "heldout":  # for information only: the threshold is never chosen on a report set
            report_sweep += [{"set": name, "threshold": t, **clustering_quality(truth, cluster(emb, t))} for t in sweep_ths]
    memb, mtruth, mcams, ms, me = mot_tracks(DATASETS / "mot17-mini" / "train", embedder)
    cl = cannot_link(mcams, ms, me)
    for t in (th, *others):
        for constrained in (False, True):
            labels = cluster(memb, t, cl if constrained else None)
            rows.append({"set": f"mot17-{'constrained' if constrained else 'unconstrained'}", "threshold": t,
                         **clustering_quality(mtruth, labels)})  # fmt: skip
    keep = ["set", "threshold", "items", "true_identities", "clusters", "pairwise_precision", "pairwise_recall",
            "bcubed_precision", "bcubed_recall", "bcubed_f1"]  # fmt: skip
    print_table([{k: r[k] for k in keep} for r in sweep], f"threshold sweep ({tune_name})")
    if report_sweep:
        print_table([{k: r[k] for k in keep} for r in report_sweep], "report-set sweep (information only, not for choosing)")
    print_table([{k: r[k] for k in keep} for r in rows], f"auto-grouping quality at threshold {th} ({args.embedder}, {protocol})")
    notes = {
        "legacy": "tracks = mean of 2 crops of one person and camera (CUHK03: up to 2 per camera; CUHK01: 1 per camera);"
                  " the threshold is chosen on cuhk03-tune only; MOT17-mini was in reid-mnv2's training data",
        "heldout": "tracks = mean of 2 crops of one person and camera (CUHK03: up to 2 per camera; CUHK01: 1 per camera);"
                   " cuhk03-heldout / cuhk01-heldout = training.datasets.cuhk_split test ids (never trained on); the"
                   " threshold is chosen on cuhk03-heldout only (report_sweep is information); MOT17 was in the training data",
    }  # fmt: skip
    payload = {
        "benchmark": "eval_identities", "embedder": args.embedder, "protocol": protocol, "seed": args.seed,
        "ids_per_set": n_ids if protocol == "legacy" or args.size == "S" else len(tune_ids),
        "threshold": th, "sweep": sweep, "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine_info(["onnxruntime", "numpy"]), "notes": notes[protocol],
    }  # fmt: skip
    if report_sweep:
        payload["report_sweep"] = report_sweep
    suffix = "_heldout" if protocol == "heldout" and args.size != "S" else ""  # an S run is a smoke test
    write_json(f"eval_identities_{args.size}{suffix}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
