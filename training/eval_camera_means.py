"""How many people a camera's mean needs before taking it out helps (search's per-camera normalisation, issue 31).

    python -m training.eval_camera_means --onnx ../wt-31/training/runs/reid-g-nocuhk03.onnx --set cuhk03-test-100-ids \\
        --onnx ../wt-31/training/runs/reid-g-nomarket.onnx --set market-test-151-ids \\
        --onnx ../wt-31/training/runs/reid-g-nocuhk01.onnx --set cuhk01-test-100-ids \\
        --json training/results/testtime/camera_mean_tracks.json

Each leave-one-source-out model on the held-out people of the source it never saw (training/eval_testtime.py's
sets, one-crop queries, the raw top 240 re-scored as search does with track-level ranking on): each camera's mean
taken from T tracks drawn at random among its tracks (3 draws below 100, seed 0), the query centred by the mean of
the camera means; T = 0 is no centring. What it fixes: `camera_norm_min_tracks` in vsearch/config.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine_info, print_table, write_json
from training.eval_testtime import CANDIDATES, _row, embedded, group_means, held_out_sets, split
from vsearch.ranking import rescore

TRACKS = (0, 5, 10, 20, 50, 100)


def score(f: NDArray[np.float32], pids: NDArray[np.int64], cams: NDArray[np.int64], protocol: str,
          means: dict[int, NDArray[np.float32]] | None) -> float:  # fmt: skip
    """Track-level rank-1 (%) with each camera's given mean taken out (None: no centring)."""
    qi, gi = split(pids, cams, protocol)
    track = group_means(f, pids * 10 + cams)
    cm = qm = None
    if means is not None:
        cm = np.stack([means[int(c)] for c in cams])
        qm = np.mean(list(means.values()), axis=0, keepdims=True)
    raw = f[qi] @ f[gi].T
    sim = raw.copy()
    for a, q in enumerate(qi):
        top = np.argsort(-raw[a], kind="stable")[:CANDIDATES]
        qv, gv = rescore(f[q][None, :], f[gi[top]], track[gi[top]], None if cm is None else cm[gi[top]], qm)
        sim[a] -= 10.0
        sim[a, top] = gv @ qv[0] + 10.0
    return float(_row("", sim, pids, cams, qi, gi)["track_rank_1_pct"])


def run(models: list[tuple[Any, str]], tracks: tuple[int, ...] = TRACKS, seed: int = 0) -> dict[str, Any]:
    sets = held_out_sets()
    rng = np.random.default_rng(seed)
    rows = []
    for e, set_name in models:
        imgs, pids, cams, protocol = sets[set_name]
        f = embedded(e, set_name, imgs)
        keys = pids * 10 + cams
        per_camera = {int(c): len(np.unique(keys[cams == c])) for c in np.unique(cams)}
        for t in tracks:
            got = []
            for _ in range(3 if 0 < t < 100 else 1):
                means = None
                if t:
                    means = {}
                    for c in np.unique(cams):
                        own = np.unique(keys[cams == c])
                        pick = rng.choice(own, min(t, len(own)), replace=False)
                        means[int(c)] = f[np.isin(keys, pick)].mean(0)
                got.append(score(f, pids, cams, protocol, means))
            rows.append({"set": set_name, "embedder": e.name, "tracks_per_camera": t, "track_rank_1_pct": round(float(np.mean(got)), 1),
                         "draws": got, "tracks_available": per_camera})  # fmt: skip
    return {"benchmark": "camera-mean-tracks", "machine": machine_info(["onnxruntime"]), "candidates": CANDIDATES,
            "rows": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from training.eval_reid import onnx_embedder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, action="append", required=True, help="model file (repeatable, with --set)")
    ap.add_argument("--set", action="append", required=True, help="its held-out set (one per --onnx)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if len(args.onnx) != len(args.set):
        ap.error("give one --set per --onnx")
    out = run([(onnx_embedder(p), s) for p, s in zip(args.onnx, args.set)])
    print_table([{k: v for k, v in r.items() if k != "tracks_available"} for r in out["rows"]],
                "Track-level rank-1 (%) with camera means from T tracks a camera")  # fmt: skip
    if args.json:
        write_json(args.json.stem, out, args.json.parent)
    return out


if __name__ == "__main__":
    main()
