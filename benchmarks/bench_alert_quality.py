"""How often a watchlist alert is right, on people (and, with a leave-source-out model, cameras) never trained on.

Part 1, identities: the held-out test identities of CUHK03 and CUHK01 (`training.datasets.cuhk_split(...)[1]`,
never in any reid-g training). Each identity's camera-1 crops are one watchlist entry, stored as the product stores
an entry of several images (one vector per image, `Catalog.add_watch_entry`) and scored by the product's
`vsearch.watchlist.Matcher` (an entry's score is its best vector's cosine similarity). Each identity's camera-2
crops are one track; a track's score for an entry is its best crop's (the product keeps one alert per entry and
track, with its best score). An alert at threshold t: an (entry, track) pair scoring >= t; right when the track is
the entry's person, else a false alert on a passer-by (every other held-out identity). Reported per threshold:
precision, recall (entries whose person is alerted on), false alerts per 1,000 passer-by tracks.

The default model (reid-g-all) trained on CUHK03/CUHK01's other identities, so these cameras are trained cameras
for it; the leave-source-out checkpoints (reid-g-nocuhk03 for CUHK03, reid-g-nocuhk01 for CUHK01, from
`--runs`, when present) never saw the set's cameras at all.

Part 2, footage with no watchlisted person, through the product's path (VSearch.ingest -> store -> matcher), at
the default threshold and rate limit: the sample clip's visitors as entries (built as bench_watchlist builds them)
while PETS 2009 S2L1 is ingested; then a few PETS people (the best crop of its longest tracks) as entries while
the sample clip is ingested. Every alert there is false.

    python -m benchmarks.bench_alert_quality [--size S|M] [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from benchmarks.bench_watchlist import CLIP, START, add_entries, visits, write_clip
from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from training.datasets import cuhk_split, read_manifest
from training.eval_reid import onnx_embedder
from vsearch.catalog import CameraInfo, SqliteCatalog, WatchVector
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import Embedder, make_embedder, thresholds
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.watchlist import FOLD_S, Matcher

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
PETS = DATASETS / "pets2009-s2l1-vtest" / "vtest.mp4"
SETS = {"cuhk03": DATASETS / "cuhk03-labeled-pair1", "cuhk01": DATASETS / "cuhk01"}
RUNS = PROJECT_ROOT.parent / "wt-31" / "training" / "runs"
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.95)
IDS = {"S": 12, "M": None}  # held-out identities per set (None: all 100)
FOOTAGE_S = {"S": (22.0, 8.0), "M": (1e9, 1e9)}  # seconds of (sample clip, PETS)
PETS_ENTRIES = {"S": 2, "M": 5}


def _embed_files(embedder: Embedder, paths: list[Path]) -> NDArray[np.float32]:
    out = []
    for i in range(0, len(paths), 64):
        crops = []
        for p in paths[i : i + 64]:
            img = cv2.imread(str(p))
            if img is None:
                raise SystemExit(f"cannot read {p}")
            crops.append(np.ascontiguousarray(img[:, :, ::-1]))
        out.append(embedder.embed(crops))
    return np.concatenate(out).astype(np.float32)


def identity_scores(root: Path, ids: list[int], embedder: Embedder, work: Path) -> tuple[list[int], NDArray[np.float32]]:
    """(identities, (entries x tracks) best score): entry i is identity i's camera-1 crops, track j identity j's
    camera-2 crops, scored through a real catalog's watchlist and the product's Matcher."""
    by: dict[tuple[int, int], list[Path]] = {}
    wanted = set(ids)
    for c in read_manifest(root):
        if c.pid in wanted:
            by.setdefault((c.pid, c.cam), []).append(c.path)
    people = [p for p in ids if (p, 1) in by and (p, 2) in by]
    catalog = SqliteCatalog(work / f"{root.name}-{embedder.name}.db")
    try:
        entry_of: dict[int, int] = {}
        for p in people:
            files = sorted(by[(p, 1)])
            vecs = _embed_files(embedder, files)
            e = catalog.add_watch_entry(f"id {p}", None, [], 0.01, None, embedder.name, "bench",
                                        [WatchVector(0, f"image:{f.name}", v) for f, v in zip(files, vecs)])  # fmt: skip
            entry_of[e.id] = p
        track_files = [(p, f) for p in people for f in sorted(by[(p, 2)])]
        entries, best = Matcher(catalog, embedder.name).scores(_embed_files(embedder, [f for _, f in track_files]))
    finally:
        catalog.close()
    col = {entry_of[e.id]: j for j, e in enumerate(entries)}
    owner = np.array([p for p, _ in track_files])
    scores = np.stack([best[owner == p].max(axis=0) for p in people], axis=1)  # (entry cols, track) -> per track
    scores = scores[[col[p] for p in people]]  # rows: entries in `people` order, columns: tracks in `people` order
    return people, scores


def curve(scores: NDArray[np.float32], ths: tuple[float, ...]) -> list[dict[str, Any]]:
    n = len(scores)
    mine = np.eye(n, dtype=bool)
    rows = []
    for t in ths:
        hit = scores >= t
        right, wrong = int((hit & mine).sum()), int((hit & ~mine).sum())
        rows.append({
            "threshold": t, "alerts": right + wrong, "right": right, "false": wrong,
            "precision": round(right / (right + wrong), 4) if right + wrong else None,
            "recall": round(right / n, 4), "false_per_1000_passers": round(1000 * wrong / (n * (n - 1)), 2),
            "entries_with_a_false_alert": int((hit & ~mine).any(axis=1).sum()),
        })  # fmt: skip
    return rows


def identities(size: str, runs: Path, work: Path) -> list[dict[str, Any]]:
    default = make_embedder(Settings())
    out = []
    for name, root in SETS.items():
        ids = cuhk_split(root)[1][: IDS[size]]
        models: list[tuple[Embedder, str]] = [(default, "trained cameras (other identities of the set in training)")]
        leave_out = runs / f"reid-g-no{name}.onnx"
        if size == "M" and leave_out.exists():
            models.append((onnx_embedder(leave_out, leave_out.stem), f"cameras never seen ({name} left out of training)"))
        for embedder, seen in models:
            people, scores = identity_scores(root, ids, embedder, work)
            mine = np.eye(len(people), dtype=bool)
            out.append({
                "set": name, "embedder": embedder.name, "cameras": seen, "identities": len(people),
                "passer_tracks_per_entry": len(people) - 1, "default_threshold": thresholds(embedder.name).alert,
                "same_person_score_median": round(float(np.median(scores[mine])), 4),
                "passer_score_p99": round(float(np.quantile(scores[~mine], 0.99)), 4),
                "passer_score_max": round(float(scores[~mine].max()), 4),
                "curve": curve(scores, SWEEP),
            })  # fmt: skip
    return out


def _alerts(svc: VSearch, camera: str) -> dict[str, Any]:
    """The camera's alerts, and the best score any of its sightings reached against an entry watching it (how
    close the footage came to a false alert)."""
    found = [v for v in svc.watchlists.alerts() if v.alert.camera_id == camera]
    ids = np.array([s.id for s in svc.catalog.sightings_between(0.0, 1e12, [camera])], np.int64)
    _, vecs = svc.catalog.embeddings(ids)
    entries, best = svc.watchlists.matcher.scores(np.asarray(vecs, np.float32))
    watching = [j for j, e in enumerate(entries) if camera in e.cameras]
    return {"alerts": len(found), "tracks_alerted": sum(v.alert.tracks for v in found),
            "scores": sorted(round(v.alert.score, 4) for v in found), "sightings": len(ids),
            "best_score": round(float(best[:, watching].max()), 4) if watching and len(ids) else None}  # fmt: skip


def footage(size: str, work: Path) -> dict[str, Any]:
    """No watchlisted person on the footage: every alert at the default threshold is false."""
    clip_s, pets_s = FOOTAGE_S[size]
    sample_a = write_clip(work / "cam-a.mp4", clip_s, transform=False)  # re-encoded: another file than CLIP
    sample_b = write_clip(work / "sample-b.mp4", clip_s + 1, transform=False) if clip_s < 1e8 else CLIP  # another file
    pets = write_clip(work / "pets.mp4", pets_s, transform=False, src=PETS) if pets_s < 1e8 else PETS
    svc = VSearch(Settings(data_dir=work / "footage"))
    default = thresholds(svc.embedder.name).alert
    try:
        t0 = parse_time(START)
        ingest = {}
        rep = svc.ingest([IngestItem(sample_a, "cam-a", t0)])[0]
        assert rep.status == "ingested", rep.error
        for cam in ("pets", "sample-b"):
            svc.catalog.set_camera_info(CameraInfo(cam, "bench_alert_quality"))
        in_visits = [v for v in visits() if v[2] <= clip_s]
        visitor_entries = add_entries(svc, in_visits, default, ("pets",))
        rep = svc.ingest([IngestItem(pets, "pets", t0 + 3600)])[0]
        assert rep.status == "ingested", rep.error
        ingest["pets"] = rep.video_s
        on_pets = _alerts(svc, "pets")
        video = next(v for v in svc.catalog.videos() if v.camera_id == "pets")
        rows = svc.catalog._q("SELECT id, track_id, quality FROM sightings WHERE video_id=?", (video.id,))
        tracks: dict[int, list[tuple[int, float]]] = {}
        for sid, tid, q in rows:
            tracks.setdefault(int(tid), []).append((int(sid), float(q)))
        longest = sorted(tracks, key=lambda t: -len(tracks[t]))[: PETS_ENTRIES[size]]
        for t in longest:
            best = max(tracks[t], key=lambda r: r[1])[0]
            svc.watchlists.add(f"pets track {t}", [], "bench", None, None, ["sample-b"], default, None, [best])
        rep = svc.ingest([IngestItem(sample_b, "sample-b", t0 + 7200)])[0]
        assert rep.status == "ingested", rep.error
        ingest["sample-b"] = rep.video_s
        on_sample = _alerts(svc, "sample-b")
    finally:
        svc.close()
    out = {"default_threshold": default, "fold_s": FOLD_S}
    for name, got, entries, cam in (("pets_with_sample_visitors", on_pets, len(visitor_entries), "pets"),
                                    ("sample_with_pets_people", on_sample, len(longest), "sample-b")):  # fmt: skip
        hours = ingest[cam] / 3600
        out[name] = {"entries": entries, "footage_s": round(ingest[cam], 1), **got,
                     "false_alerts_per_camera_hour": round(got["alerts"] / hours, 1)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(IDS), default="M")
    ap.add_argument("--runs", type=Path, default=RUNS, help="folder of the leave-source-out checkpoints")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_alert_quality.") as tmp:
        ident = identities(args.size, args.runs, Path(tmp))
        foot = footage(args.size, Path(tmp))
    for r in ident:
        print_table([{k: ("-" if v is None else v) for k, v in c.items()} for c in r["curve"]],
                    f"{r['set']} held-out, {r['identities']} entries, {r['embedder']}: {r['cameras']}")  # fmt: skip
    print_table([{"footage": k, **{f: v for f, v in foot[k].items() if f != "scores"}}
                 for k in ("pets_with_sample_visitors", "sample_with_pets_people")],
                f"footage with no watchlisted person, default threshold {foot['default_threshold']}")  # fmt: skip
    payload = {"benchmark": "bench_alert_quality", "size": args.size,
               "machine": machine_info(["onnxruntime", "openvino"]), "identities": ident, "footage": foot}  # fmt: skip
    write_json(f"bench_alert_quality_{args.size}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
