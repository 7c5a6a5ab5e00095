"""How often the true companion is in the top 3 of vsearch.companions, on episodes with known groups.

No local footage has ground truth for people walking together over several seconds: MOT17-mini holds 4-8
frames (under 0.5 s) per sequence and the PETS 2009 copy has no labels. So the episodes are semi-synthetic, built
from real parts, and the measurement says so:
- Geometry: real pedestrian boxes and their motion from MOT17-mini ground truth (7 street/mall scenes, real fps).
  In each visit the target takes one ground-truth track and the companion the track nearest to it (feet within
  1.5 heights in the first frame: people close together); every other track of the scene is a stranger.
- Appearance: people the embedder never trained on, embedded from their crops; a visit on "camera c1" uses crops
  of CUHK camera 1, on "c2" those of camera 2 (cross-view), two crops per track. Target, companion and strangers
  all come from one identity set, chosen by `--protocol` (by default `heldout` for reid-mnv2-1400, the default
  embedder, `legacy` for any other) and `--split`:
  - heldout (reid-mnv2-1400 trained on all CUHK ids except `training.datasets.cuhk_split`'s test ids):
    `--split tune` = the 100 held-out CUHK03 ids (choose the threshold here), `--split test` = the 100 held-out
    CUHK01 ids (report). The strangers' pool is every id of the set but the target and companion (98; `--pool`).
    CUHK01 has 2 crops per person and camera, so there a person's stays on one camera repeat the same look; CUHK03
    has up to 4 (a different pair per occasion).
  - legacy (reid-mnv2, which never saw CUHK): `--split tune` = CUHK03 identities 0001-0400, `--split test` =
    CUHK03 identities 0401-0843, 150 strangers' identities by default.
- Time: the target's visits are an hour apart; strangers come from a pool (so a stranger can recur by chance).
Each episode runs the product's code (encounters_at, then group_and_rank) and records the rank of the companion's
group. Baselines on the same episodes: no appearance grouping (every encounter its own row) and oracle grouping
(by true identity, an upper bound for this geometry).

  python -m benchmarks.eval_companions [--embedder NAME] [--protocol heldout|legacy] [--split test|tune]
      [--threshold T ...] [--episodes 200] [--size S]

Every `--threshold` runs the same episodes (same seed). Writes results/eval_companions_<size>.json (legacy test
split at the embedder's companion threshold (vsearch.embed.thresholds), or any S smoke run), eval_companions_<size>_<split>_t<T>.json (other legacy runs, one per
threshold) or eval_companions_<size>_heldout_<split>.json (heldout: every threshold, with the mean top-3 of each).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import RESULTS_DIR, default_protocol, machine_info, print_table, write_json
from benchmarks.eval_identities import crops_by_person
from training.datasets import cuhk_split
from vsearch.companions import (
    MAX_DIST_H,
    Companion,
    Encounter,
    Presence,
    encounters_at,
    group_and_rank,
)
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import l2_normalize, make_embedder, thresholds

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"


def load_scenes(root: Path) -> dict[str, dict[int, tuple[NDArray[np.float64], NDArray[np.float32]]]]:
    """MOT17-mini pedestrian tracks per sequence: track id -> (times_s, xyxy boxes)."""
    scenes = {}
    for seq in sorted(d for d in root.iterdir() if (d / "gt" / "gt.txt").is_file()):
        ini = configparser.ConfigParser()
        ini.read(seq / "seqinfo.ini")
        fps = float(ini["Sequence"]["frameRate"])
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
        tracks = {}
        for tid in np.unique(gt[:, 1]).astype(int):
            r = gt[gt[:, 1] == tid]
            r = r[np.argsort(r[:, 0])]
            xyxy = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], 1).astype(np.float32)
            tracks[int(tid)] = ((r[:, 0] - 1) / fps, xyxy)
        scenes[seq.name] = tracks
    return scenes


def load_people(folder: Path, ids: list[int], embedder: Any) -> dict[int, dict[str, NDArray[np.float32]]]:
    """identity -> camera ('1'/'2') -> embeddings of its crops (rows)."""
    people: dict[int, dict[str, NDArray[np.float32]]] = defaultdict(dict)
    for (pid, cam), ps in crops_by_person(folder, ids).items():
        crops = [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in ps]
        people[pid][cam] = embedder.embed(crops)
    return {p: v for p, v in people.items() if len(v) == 2}


def _look(people: dict[int, dict[str, NDArray[np.float32]]], pid: int, cam: str, occasion: int) -> NDArray[np.float32]:
    """A track's appearance: the mean of two crops of that person and camera, a different pair per occasion."""
    rows = people[pid][cam]
    i = (2 * occasion) % len(rows)
    pick = rows[[i, (i + 1) % len(rows)]]
    return l2_normalize(pick.mean(0, keepdims=True).astype(np.float32))[0]


def _feet_dist(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    fa, fb = np.array([(a[0] + a[2]) / 2, a[3]]), np.array([(b[0] + b[2]) / 2, b[3]])
    return float(np.linalg.norm(fa - fb) / (((a[3] - a[1]) + (b[3] - b[1])) / 2))


def run_episode(
    rng: np.random.Generator, scenes: dict, people: dict, target: int, companion: int, pool: list[int],
    visits: int, with_companion: int, threshold: float,
) -> dict[str, int | None]:  # fmt: skip
    """One target's visits; returns the companion's best rank under the product, no grouping, oracle grouping."""
    encounters: list[Encounter] = []
    appearance: dict[tuple[int, int], NDArray[np.float32]] = {}
    who: dict[tuple[int, int], int] = {}
    present = set(rng.choice(visits, with_companion, replace=False).tolist())
    for v in range(visits):
        name = rng.choice(sorted(scenes))
        tracks = scenes[name]
        pairs = [(a, b) for a in tracks for b in tracks if a != b and _feet_dist(tracks[a][1][0], tracks[b][1][0]) <= MAX_DIST_H]
        while not pairs:  # a scene where nobody stands close to anybody cannot host the pair
            name = rng.choice(sorted(scenes))
            tracks = scenes[name]
            pairs = [(a, b) for a in tracks for b in tracks if a != b and _feet_dist(tracks[a][1][0], tracks[b][1][0]) <= MAX_DIST_H]
        t_tid, c_tid = pairs[int(rng.integers(len(pairs)))]
        cam, occasion = ("1", "2")[v % 2], v // 2
        strangers = iter(rng.permutation(pool).tolist())
        vid = v + 1
        presences = {}
        for tid, (times, xyxy) in tracks.items():
            pid = target if tid == t_tid else companion if (tid == c_tid and v in present) else next(strangers)
            key = (vid, tid)
            who[key] = pid
            appearance[key] = _look(people, pid, cam, occasion)
            presences[tid] = Presence(vid, tid, f"{name}/c{cam}", times + 3600.0 * v, xyxy)
        others = [p for tid, p in presences.items() if tid != t_tid]
        encounters += encounters_at(presences[t_tid], others, v)
    target_vec = appearance[next(k for k, p in who.items() if p == target)]
    ranked = group_and_rank(encounters, appearance, target_vec, threshold)
    alone = group_and_rank(encounters, {}, None, threshold)
    oracle = _oracle(encounters, who)
    return {"product": _rank_of(ranked, who, companion), "no_grouping": _rank_of(alone, who, companion),
            "oracle_grouping": _rank_of(oracle, who, companion)}  # fmt: skip


def _oracle(encounters: list[Encounter], who: dict[tuple[int, int], int]) -> list[Companion]:
    """Encounters grouped by true identity, ranked as the product ranks."""
    fake = {k: np.eye(1, 1 + max(who.values()), pid, np.float32)[0] for k, pid in who.items()}
    return group_and_rank(encounters, fake, None, 0.5)


def _rank_of(rows: list[Companion], who: dict[tuple[int, int], int], companion: int) -> int | None:
    """The best rank of a row whose encounters are mostly the companion's."""
    for c in rows:
        ids = Counter(who[(e.video_id, e.track_id)] for e in c.encounters)
        if ids[companion] * 2 >= sum(ids.values()) and ids[companion]:
            return c.rank
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the episodes, print the table, write benchmarks/results/eval_companions_<size>[...].json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--size", choices=("S", "M"), default="M", help="S: 20 episodes per setting (smoke)")
    ap.add_argument("--pool", type=int, default=None,
                    help="strangers' identities (default: 150 legacy; every id of the set but target and companion heldout)")
    ap.add_argument("--threshold", type=float, nargs="+", default=None, help="default: the embedder's measured one")
    ap.add_argument("--embedder", default=Settings().embedder)
    ap.add_argument("--protocol", choices=("heldout", "legacy"), default=None,
                    help="heldout: CUHK03 / CUHK01 test ids of cuhk_split; legacy: CUHK03 0001-0400 / 0401-0843. "
                         "Default: heldout for reid-mnv2-1400, else legacy")
    ap.add_argument("--split", choices=("test", "tune"), default="test",
                    help="test: reported (heldout: CUHK01 held-out ids; legacy: CUHK03 0401-0843); tune: for choosing "
                         "a threshold (heldout: CUHK03 held-out ids; legacy: CUHK03 0001-0400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    protocol = args.protocol or default_protocol(args.embedder)
    measured = thresholds(args.embedder).companion
    args.threshold = args.threshold or [measured]
    episodes = 20 if args.size == "S" else args.episodes
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    scenes = load_scenes(DATASETS / "mot17-mini" / "train")
    if protocol == "legacy":
        folder = DATASETS / "cuhk03-labeled-pair1"
        every = {int(r["identity"]) for r in csv.DictReader(open(folder / "manifest.csv"))}
        ids = sorted(every - set(range(1, 401)) if args.split == "test" else every & set(range(1, 401)))
        pool_size = 150 if args.pool is None else args.pool
        chosen = rng.choice(ids, min(len(ids), pool_size + 2 * 60), replace=False).tolist()
        source = f"CUHK03 {'0401-0843' if args.split == 'test' else '0001-0400'}"
    else:
        folder = DATASETS / ("cuhk01" if args.split == "test" else "cuhk03-labeled-pair1")
        chosen = cuhk_split(folder)[1]
        pool_size = len(chosen) if args.pool is None else args.pool
        source = f"{folder.name} held-out ids"
    people = load_people(folder, chosen, make_embedder(Settings(embedder=args.embedder)))
    everyone = sorted(people)
    state = rng.bit_generator.state
    rows = []
    for threshold in args.threshold:
        rng.bit_generator.state = state  # the same episodes for every threshold
        for visits, with_c in ((3, 3), (3, 2), (2, 2), (4, 2)):
            ranks: dict[str, list[int | None]] = defaultdict(list)
            for _ in range(episodes):
                t, c = rng.choice(everyone, 2, replace=False).tolist()
                pool = [p for p in everyone if p not in (t, c)][:pool_size]
                for k, r in run_episode(rng, scenes, people, t, c, pool, visits, with_c, threshold).items():
                    ranks[k].append(r)
            for method, rs in ranks.items():
                rows.append({
                    "threshold": threshold, "target_visits": visits, "companion_in": with_c, "method": method,
                    "episodes": episodes, "top1_rate": sum(r == 1 for r in rs) / len(rs),
                    "top3_rate": sum(r is not None and r <= 3 for r in rs) / len(rs),
                    "found_rate": sum(r is not None for r in rs) / len(rs),
                })  # fmt: skip
    mean_top3 = [{"threshold": th, "mean_top3_rate": float(np.mean([r["top3_rate"] for r in rows
                  if r["threshold"] == th and r["method"] == "product"]))} for th in args.threshold]  # fmt: skip
    print_table(rows, f"companion in the top 3 ({args.embedder}, {protocol}; MOT17-mini geometry, {source} appearances)")
    print_table(mean_top3, "mean top-3 of the product over the four settings")
    notes = (f"semi-synthetic: real MOT17-mini gt geometry, real crops of {source} (never trained on by {args.embedder}),"
             f" groups by construction; strangers' pool {pool_size}")  # fmt: skip
    wall = round(time.perf_counter() - t0, 1)
    info = machine_info(["onnxruntime", "numpy"])
    if protocol == "heldout" and args.size != "S":  # one file with every threshold
        payload = {
            "benchmark": "eval_companions", "embedder": args.embedder, "protocol": protocol, "split": args.split,
            "identities": source, "seed": args.seed, "episodes_per_setting": episodes, "pool": pool_size,
            "thresholds": args.threshold, "max_dist_h": MAX_DIST_H, "mean_top3": mean_top3,
            "rows": rows, "wall_s": wall, "machine": info, "notes": notes,
        }  # fmt: skip
        if args.split == "tune":  # a threshold is chosen on the tune split only
            payload["best_threshold"] = max(mean_top3, key=lambda r: r["mean_top3_rate"])["threshold"]
        write_json(f"eval_companions_{args.size}_heldout_{args.split}", payload, args.out)
        return payload
    for threshold in args.threshold:  # legacy (and smoke) files: one per threshold
        payload = {
            "benchmark": "eval_companions", "embedder": args.embedder, "protocol": protocol, "split": args.split,
            "seed": args.seed, "episodes_per_setting": episodes, "pool": pool_size, "threshold": threshold,
            "max_dist_h": MAX_DIST_H, "rows": [r for r in rows if r["threshold"] == threshold], "wall_s": wall,
            "machine": info, "notes": notes,
        }  # fmt: skip
        suffix = "" if args.split == "test" and threshold == measured else f"_{args.split}_t{threshold:g}"
        write_json(f"eval_companions_{args.size}{suffix}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
