"""Search quality beyond one crop: several query images fused, re-ranking of the top candidates, and investigator
feedback ("same person" on the first correct hit), scored with vsearch.evaluate's rank-k / mAP.

    python -m benchmarks.eval_search                # M: PKU held-out fold + 200 CUHK03 ids + footage
    python -m benchmarks.eval_search --size S       # smoke: fewer ids, no footage
    python -m benchmarks.eval_search --testtime --embedder reid-mnv2-1400   # test-time help on footage only

Re-ID sets (camera 1 queries camera 2; the scoring and re-ranking code is vsearch.ranking, as search.py runs it):
- `pku-fold1-heldout`: the 11 PKU identities of fold 1, embedded by `reid-mnv2-fold1.onnx`, which was trained
  without them (models/reid/README.md). 8 crops per person and camera.
- `cuhk03-pair1`: the first N CUHK03 identities, embedded by the default `reid-mnv2`, trained on PKU and MOT17
  only: never seen. At most 4 crops per person and camera.
A query of k images of one person is every run of k consecutive camera-1 crops of that person (cyclically).
Re-ranking is applied per query to its top `RERANK_TOP_N` candidates, as in the product.
Feedback: for each single-image query, the first correct hit is confirmed (fused into the query, taken out of the
gallery), and the person's remaining gallery crops are scored before and after.

Footage (M only), through the real ingest and search path: the bundled sample clip (six visitors,
`sample_videos/visits_approx.csv`), Market's 16 frames as two cameras of stills with both query crops of person 0001
(her boxes: `benchmarks/data/market1501_0001_boxes.json`), and MOT17-mini (training.footage.evaluate_footage); re-ranking
off and on, and feedback on the first two.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine_info, print_table, write_json
from training.datasets import PKU, convert_pku
from training.datasets import pku_fold as fold_ids
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import OnnxEmbedder, make_embedder
from vsearch.evaluate import ReidSet, cmc_map, embed_paths, read_split
from vsearch.ranking import FUSIONS, RERANKS, Fusion, Rerank, fused_scores, rerank_scores

CUHK03 = PROJECT_ROOT.parent / "shared" / "datasets" / "cuhk03-labeled-pair1"
MOT = PROJECT_ROOT.parent / "shared" / "datasets" / "mot17-mini" / "train"
MARKET = PROJECT_ROOT.parent / "shared" / "datasets" / "market1501-fullframe-demo"
RERANK_TOP_N = 100


@dataclass
class Embedded:
    name: str
    note: str
    q: ReidSet
    g: ReidSet
    qf: NDArray[np.float32]
    gf: NDArray[np.float32]


def reid_sets(size: str, tmp: Path) -> Iterator[Embedded]:
    fold_model = PROJECT_ROOT / "models" / "reid" / "reid-mnv2-fold1.onnx"
    emb = OnnxEmbedder("reid-mnv2-fold1", 256, lambda: fold_model, (128, 256))
    convert_pku(PKU, tmp / "pku1", fold_ids(1))
    q, g = read_split(tmp / "pku1" / "query"), read_split(tmp / "pku1" / "bounding_box_test")
    yield Embedded("pku-fold1-heldout", "11 ids the fold-1 model never saw", q, g, embed_paths(emb, q.paths),
                   embed_paths(emb, g.paths))  # fmt: skip
    n_ids = 20 if size == "S" else 200
    every = read_split(CUHK03 / "images")
    keep = every.pids <= n_ids
    sub = ReidSet([p for p, k in zip(every.paths, keep) if k], every.pids[keep], every.cams[keep])
    default = make_embedder(Settings())
    feats = embed_paths(default, sub.paths)
    qm, gm = sub.cams == 1, sub.cams == 2
    split = lambda m: ReidSet([p for p, k in zip(sub.paths, m) if k], sub.pids[m], sub.cams[m])  # noqa: E731
    yield Embedded(f"cuhk03-pair1-{n_ids}ids", f"{default.name}, trained on PKU+MOT17 only: never seen", split(qm),
                   split(gm), feats[qm], feats[gm])  # fmt: skip


def multi_queries(s: Embedded, k: int) -> list[tuple[int, NDArray[np.int64]]]:
    """(person id, indices into s.q) for every run of k consecutive camera-1 crops of each person."""
    out = []
    for pid in np.unique(s.q.pids):
        idx = np.flatnonzero(s.q.pids == pid)
        if len(idx) < k:
            continue
        starts = range(len(idx)) if k < len(idx) else range(1)
        out += [(int(pid), idx[(st + np.arange(k)) % len(idx)]) for st in starts]
    return out


def ranked_scores(qv: NDArray[np.float32], gf: NDArray[np.float32], fusion: Fusion, rerank: Rerank) -> NDArray[np.float64]:
    """A distance over the gallery (smaller first): the top RERANK_TOP_N by fused score re-ranked, the rest after."""
    s = fused_scores(qv, gf, fusion).astype(np.float64)
    dist = -s
    if rerank != "none":
        top = np.argsort(-s, kind="stable")[:RERANK_TOP_N]
        dist[top] = -rerank_scores(qv, gf[top], fusion, rerank) - 10.0
    return dist


def score(s: Embedded, k: int, fusion: Fusion, rerank: Rerank) -> dict[str, Any]:
    qs = multi_queries(s, k)
    dist = np.stack([ranked_scores(s.qf[ix], s.gf, fusion, rerank) for _, ix in qs])
    pids = np.array([p for p, _ in qs], np.int64)
    cmc, mean_ap, n = cmc_map(dist, pids, np.ones_like(pids), s.g.pids, s.g.cams)
    return {"set": s.name, "images": k, "fusion": fusion if k > 1 else "-", "rerank": rerank,
            "rank_1_pct": round(100 * cmc[0], 1), "rank_5_pct": round(100 * cmc[4], 1),
            "mAP_pct": round(100 * mean_ap, 1), "queries": n}  # fmt: skip


def _ap(labels: NDArray[np.bool_]) -> float:
    hits = np.flatnonzero(labels)
    return float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1))) if len(hits) else 0.0


def feedback(s: Embedded, fusion: Fusion) -> dict[str, Any]:
    """Confirm the first correct hit of each single-image query; score the person's other gallery crops."""
    before_ap, after_ap, before_r1, after_r1, before_rank, after_rank, first_at = [], [], [], [], [], [], []
    for i in range(len(s.q.paths)):
        pos = s.g.pids == s.q.pids[i]
        if pos.sum() < 2:
            continue  # nothing would remain after confirming one
        order = np.argsort(-fused_scores(s.qf[i : i + 1], s.gf, fusion), kind="stable")
        first = int(order[np.argmax(pos[order])])
        first_at.append(int(np.argmax(pos[order])) + 1)
        rest = np.flatnonzero(np.arange(len(pos)) != first)
        q_after = np.vstack([s.qf[i : i + 1], s.gf[first : first + 1]])
        for qv, ap_out, r1_out, rank_out in ((s.qf[i : i + 1], before_ap, before_r1, before_rank),
                                             (q_after, after_ap, after_r1, after_rank)):  # fmt: skip
            o = rest[np.argsort(-fused_scores(qv, s.gf[rest], fusion), kind="stable")]
            lab = pos[o]
            ap_out.append(_ap(lab))
            r1_out.append(bool(lab[0]))
            rank_out.append(float(np.mean(np.flatnonzero(lab) + 1)))
    return {"set": s.name, "fusion": fusion, "queries": len(first_at),
            "first_correct_at_mean": round(float(np.mean(first_at)), 2),
            "rest_rank_1_before_pct": round(100 * float(np.mean(before_r1)), 1),
            "rest_rank_1_after_pct": round(100 * float(np.mean(after_r1)), 1),
            "rest_mAP_before_pct": round(100 * float(np.mean(before_ap)), 1),
            "rest_mAP_after_pct": round(100 * float(np.mean(after_ap)), 1),
            "rest_mean_rank_before": round(float(np.mean(before_rank)), 2),
            "rest_mean_rank_after": round(float(np.mean(after_rank)), 2)}  # fmt: skip


def visitor_query(svc: Any, video: Path, pts_s: float) -> bytes:
    """JPEG of the largest person in the frame at pts_s (off the 2 fps sampling grid), as tests/test_pipeline.py."""
    import cv2

    from vsearch.video import read_frame_at

    img = read_frame_at(video, pts_s)
    d = svc.detector.detect([img], conf=0.35)[0]
    x1, y1, x2, y2 = d.xyxy[int(np.argmax(d.area))].astype(int)
    return bytes(cv2.imencode(".jpg", img[y1:y2, x1:x2])[1].tobytes())


def _ranked_ids(svc: Any, query: bytes, feedback: Any = None) -> list[int]:
    from vsearch.search import Feedback, SearchFilters

    r = svc.search(query, SearchFilters(top_k=200), feedback=feedback or Feedback())
    return [h.sighting.id for c in r.clips for h in c.sightings]


# a footage query: its image, the sightings that are its person, and sightings left out of the ranking
FootageQuery = tuple[bytes, set[int], set[int]]


def footage_rows(svc: Any, name: str, queries: list[FootageQuery]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Re-ranking off and on, and feedback (first correct hit confirmed), through svc.search on one footage set,
    ranking sightings (track-level ranking off: it returns one sighting a track, and these rows score sightings;
    testtime_rows scores tracks)."""
    from vsearch.search import Feedback

    svc.settings = svc.settings.model_copy(update={"search_track_level": False})
    rerank_rows = []
    for method in RERANKS:
        svc.settings = svc.settings.model_copy(update={"search_rerank": method})
        r1, aps = [], []
        for q, pos, skip in queries:
            lab = np.array([i in pos for i in _ranked_ids(svc, q) if i not in skip])
            r1.append(bool(lab[0]))
            aps.append(_ap(lab) * lab.sum() / len(pos))  # AP over all positives (missing ones count as 0)
        rerank_rows.append({"set": name, "rerank": method, "rank_1_pct": round(100 * float(np.mean(r1)), 1),
                            "mAP_pct": round(100 * float(np.mean(aps)), 1), "queries": len(queries)})  # fmt: skip
    svc.settings = svc.settings.model_copy(update={"search_rerank": "none"})
    before, after, first_at = [], [], []
    for q, pos, skip in queries:
        ranked = [i for i in _ranked_ids(svc, q) if i not in skip]
        first = next(i for i in ranked if i in pos)
        first_at.append(ranked.index(first) + 1)
        rest = pos - {first}
        for out, fb in ((before, None), (after, Feedback(confirmed=(first,)))):
            ids = [i for i in _ranked_ids(svc, q, fb) if i not in skip and i != first]
            out.append((_ap(np.array([i in rest for i in ids])), float(np.mean([ids.index(i) + 1 for i in rest if i in ids]))))
    feedback = {"set": name, "fusion": "max", "queries": len(queries),
                "first_correct_at_mean": round(float(np.mean(first_at)), 2),
                "rest_mAP_before_pct": round(100 * float(np.mean([b[0] for b in before])), 1),
                "rest_mAP_after_pct": round(100 * float(np.mean([a[0] for a in after])), 1),
                "rest_mean_rank_before": round(float(np.mean([b[1] for b in before])), 2),
                "rest_mean_rank_after": round(float(np.mean([a[1] for a in after])), 2)}  # fmt: skip
    return rerank_rows, feedback


def sample_clip_queries(tmp: Path, base: Settings | None = None) -> tuple[Any, list[FootageQuery]]:
    """The sample clip ingested; per visit a visitor crop mid-visit, the visit's other sightings as positives.
    `base`: the settings (embedder) to ingest with, the data dir aside."""
    import csv

    from vsearch.ingest import IngestItem
    from vsearch.service import VSearch

    video = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
    with open(PROJECT_ROOT / "sample_videos" / "visits_approx.csv") as f:
        visits = [(float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]
    svc = VSearch(_settings(base, tmp / "clip"))
    svc.ingest([IngestItem(video, "lobby", 0.0)])
    every = svc.catalog.sightings(svc.store.index.ids().tolist())
    queries = []
    for a, b in visits:
        q_pts = (a + b) / 2 + 0.3
        # the instants next to the query crop are (nearly) its own pixels: left out
        near = {i for i, x in every.items() if abs(x.pts_s - q_pts) <= 1.0}
        pos = {i for i, x in every.items() if a - 1.5 <= x.pts_s <= b + 1.5} - near
        queries.append((visitor_query(svc, video, q_pts), pos, near))
    return svc, queries


def market_queries(tmp: Path, base: Settings | None = None) -> tuple[Any, list[FootageQuery]]:
    """The 16 Market frames as two cameras of stills; both query crops of person 0001; her sightings by IoU >= 0.5
    with her hand-read boxes (benchmarks/data/market1501_0001_boxes.json). Nothing is left out: the query crops'
    frames are not in the index (camera 6), or are (camera 1: her own crop there is a match, as for an investigator)."""
    import json
    import shutil

    from training.footage import iou
    from vsearch.ingest import plan_ingest
    from vsearch.service import VSearch

    boxes = json.loads((Path(__file__).parent / "data" / "market1501_0001_boxes.json").read_text())["xyxy"]
    frames: dict[str, list[str]] = {}
    for f in sorted((MARKET / "frames").glob("*.jpg")):
        (tmp / "market-footage" / f.name[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, tmp / "market-footage" / f.name[:2] / f.name)
        frames.setdefault(f.name[:2], []).append(f.stem)
    svc = VSearch(_settings(base, tmp / "market"))
    svc.ingest(plan_ingest([tmp / "market-footage"], None, 0.0, frame_interval_s=10.0))
    every = svc.catalog.sightings(svc.store.index.ids().tolist())
    her = set()
    for i, x in every.items():
        ref = np.array([boxes[frames[x.camera_id][round(x.pts_s / 10.0)]]], np.float32)
        if iou(np.array([x.xyxy], np.float32), ref)[0, 0] >= 0.5:
            her.add(i)
    return svc, [(p.read_bytes(), her, set()) for p in sorted((MARKET / "query").glob("*.jpg"))]


def _settings(base: Settings | None, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir) if base is None else base.model_copy(update={"data_dir": data_dir})


# test-time help in search (vsearch.search.test_time_vectors), each alone and both
TESTTIME: dict[str, dict[str, Any]] = {
    "plain": {},
    "camera-norm": {"search_camera_norm": True},
    "track-level": {"search_track_level": True},
    "track-level + camera-norm": {"search_track_level": True, "search_camera_norm": True},
}


def _ranked_tracks(svc: Any, query: bytes, seen: dict[int, Any]) -> list[tuple[int, int]]:
    """The tracks of the search's ranked sightings, each once, in order."""
    return list(dict.fromkeys((seen[i].video_id, seen[i].track_id) for i in _ranked_ids(svc, query)))


def testtime_rows(svc: Any, name: str, queries: list[FootageQuery]) -> list[dict[str, Any]]:
    """Each test-time variant through svc.search, scored by tracks (what track-level ranking returns): a query's
    positives are the tracks holding any of its person's sightings; the tracks holding a sighting left out (the
    query's own moment) are left out of the ranking and of the positives."""
    every = svc.catalog.sightings(svc.store.index.ids().tolist())
    track = {i: (x.video_id, x.track_id) for i, x in every.items()}
    base = svc.settings
    rows = []
    for variant, update in TESTTIME.items():
        svc.settings = base.model_copy(update=update)
        r1, aps = [], []
        for q, pos, skip in queries:
            out = {track[i] for i in skip}
            positives = {track[i] for i in pos} - out
            lab = np.array([t in positives for t in _ranked_tracks(svc, q, every) if t not in out])
            r1.append(bool(len(lab) and lab[0]))
            aps.append(_ap(lab) * lab.sum() / len(positives) if lab.any() else 0.0)
        rows.append({"set": name, "embedder": svc.embedder.name, "variant": variant,
                     "track_rank_1_pct": round(100 * float(np.mean(r1)), 1),
                     "track_mAP_pct": round(100 * float(np.mean(aps)), 1), "queries": len(queries)})  # fmt: skip
    svc.settings = base
    return rows


def run_testtime_footage(tmp: Path, base: Settings) -> list[dict[str, Any]]:
    """Test-time help on footage, through ingest and search, with `base`'s embedder: the sample clip's visits and
    Market's two cameras by tracks (testtime_rows); MOT17-mini (training.footage.evaluate_footage: it scores the
    other sightings of the query's own track, so only camera-norm is scored there)."""
    from training.footage import evaluate_footage
    from vsearch.service import VSearch

    rows = []
    for name, make in (("sample-clip-6-visits", sample_clip_queries), ("market-2-cams-16-stills", market_queries)):
        svc, queries = make(tmp, base)
        rows += testtime_rows(svc, name, queries)
        svc.close()
    mot = VSearch(_settings(base, tmp / "mot"))
    seqs = sorted(d for d in MOT.iterdir() if (d / "gt" / "gt.txt").is_file())
    for variant in ("plain", "camera-norm"):
        mot.settings = _settings(base, tmp / "mot").model_copy(update=TESTTIME[variant])
        r = evaluate_footage(seqs, mot)
        rows.append({"set": f"mot17-mini-{len(seqs)}-seqs", "embedder": mot.embedder.name, "variant": variant,
                     "rank_1_pct": round(100 * r["rank_1"], 1), "recall_at_10_pct": round(100 * r["recall_at_10"], 1),
                     "queries": r["queries"]})  # fmt: skip
    mot.close()
    return rows


def run_footage(tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """Footage through ingest and search: the sample clip's visits and Market's two cameras (re-ranking off and on,
    feedback), MOT17-mini (re-ranking off and on, training.footage.evaluate_footage)."""
    from training.footage import evaluate_footage
    from vsearch.service import VSearch

    rerank_rows, feedback_rows = [], []
    for name, make in (("sample-clip-6-visits", sample_clip_queries), ("market-2-cams-16-stills", market_queries)):
        svc, queries = make(tmp)
        rows, feedback = footage_rows(svc, name, queries)
        rerank_rows += rows
        feedback_rows.append(feedback)
        svc.close()
    mot = VSearch(Settings(data_dir=tmp / "mot"))
    seqs = sorted(d for d in MOT.iterdir() if (d / "gt" / "gt.txt").is_file())
    for method in RERANKS:
        mot.settings = mot.settings.model_copy(update={"search_rerank": method})
        r = evaluate_footage(seqs, mot)
        rerank_rows.append({"set": f"mot17-mini-{len(seqs)}-seqs", "rerank": method,
                            "rank_1_pct": round(100 * r["rank_1"], 1), "recall_at_10_pct": round(100 * r["recall_at_10"], 1),
                            "precision_at_10_pct": round(100 * r["precision_at_10"], 1), "queries": r["queries"]})  # fmt: skip
    mot.close()
    return {"footage_rerank": rerank_rows, "footage_feedback": feedback_rows}


def run_reid(size: str) -> dict[str, list[dict[str, Any]]]:
    fusion_rows, rerank_rows, feedback_rows = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in reid_sets(size, Path(tmp)):
            max_k = int(np.bincount(s.q.pids).max())
            ks = [k for k in (1, 2, 4, 8) if k <= max_k]
            fusion_rows.append(score(s, 1, "mean", "none"))
            fusion_rows += [score(s, k, f, "none") for k in ks[1:] for f in FUSIONS]
            rerank_rows += [score(s, k, "mean", r) for k in (1, ks[-1]) for r in RERANKS]
            feedback_rows += [feedback(s, f) for f in FUSIONS]
    return {"fusion": fusion_rows, "rerank": rerank_rows, "feedback": feedback_rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("S", "M"), default="M")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--testtime", action="store_true",
                    help="only the test-time help on footage (eval_search_testtime_<embedder>.json)")
    ap.add_argument("--embedder", default=None, help="embedder of the --testtime footage (default: configured)")
    args = ap.parse_args(argv)
    if args.testtime:
        base = Settings() if args.embedder is None else Settings(embedder=args.embedder)
        with tempfile.TemporaryDirectory() as tmp:
            rows = run_testtime_footage(Path(tmp), base)
        print_table(rows, "Test-time help on footage, through ingest and search")
        out = {"benchmark": "eval_search_testtime", "machine": machine_info(["onnxruntime", "faiss-cpu"]), "rows": rows}
        write_json(f"eval_search_testtime_{base.embedder}", out, *([args.out] if args.out else []))
        return out
    result: dict[str, Any] = run_reid(args.size)
    if args.size != "S":
        with tempfile.TemporaryDirectory() as tmp:
            result.update(run_footage(Path(tmp)))
    print_table(result["fusion"], "Several images of one person, fused (camera 1 queries camera 2)")
    print_table(result["rerank"], "\nRe-ranking the top candidates")
    print_table(result["feedback"], "\nFeedback: first correct hit confirmed; the person's other crops")
    if "footage_rerank" in result:
        print_table(result["footage_rerank"], "\nFootage, through ingest and search: re-ranking off and on")
        print_table(result["footage_feedback"], "\nFootage: first correct hit confirmed; the visit's other sightings")
    payload = {"benchmark": "eval_search", "size": args.size, "machine": machine_info(["onnxruntime", "faiss-cpu"]),
               **result}  # fmt: skip
    write_json(f"eval_search_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
