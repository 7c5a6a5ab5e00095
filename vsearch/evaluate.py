"""Re-identification accuracy: Market-1501-layout folders, rank-k (CMC) and mAP by the standard protocol.

Layout: DIR/query/ and DIR/bounding_box_test/ holding crops named `PPPP_cCsS_FFFFFF_NN.jpg|png` (person id,
camera, sequence, frame, box). Protocol (Market-1501's): for each query, gallery crops of the same person AND the
same camera are left out (the match must come from another camera), junk crops (pid -1) are left out, and
distractors (pid 0000) stay in as negatives. Queries with no valid match are skipped.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.embed import Embedder
from vsearch.errors import InputError

NAME = re.compile(r"^(-1|\d+)_c(\d+)s?(\d*)_?.*\.(jpg|jpeg|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class ReidSet:
    """Crops of one side (query or gallery) with their person and camera ids."""

    paths: list[Path]
    pids: NDArray[np.int64]
    cams: NDArray[np.int64]


def read_split(folder: Path) -> ReidSet:
    """Parse a Market-layout folder; InputError when it is missing or holds no crop with a Market name."""
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder of Market-1501-named crops (PPPP_cCsS_FFFFFF_NN.jpg)")
    paths, pids, cams = [], [], []
    for p in sorted(folder.iterdir()):
        m = NAME.match(p.name)
        if m:
            paths.append(p)
            pids.append(int(m.group(1)))
            cams.append(int(m.group(2)))
    if not paths:
        raise InputError(f"{folder}: no crop named like 0001_c1s1_000151_01.jpg")
    return ReidSet(paths, np.array(pids, np.int64), np.array(cams, np.int64))


def cmc_map(
    dist: NDArray[np.float32],
    q_pids: NDArray[np.int64],
    q_cams: NDArray[np.int64],
    g_pids: NDArray[np.int64],
    g_cams: NDArray[np.int64],
    max_rank: int = 10,
) -> tuple[NDArray[np.float64], float, int]:
    """CMC curve (ranks 1..max_rank), mAP and the number of valid queries, from a (n_query, n_gallery) distance
    matrix (smaller is closer), with same-person-same-camera and junk (-1) gallery entries removed per query."""
    cmc_sum = np.zeros(max_rank)
    aps = []
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~(((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])) | (g_pids[order] == -1))
        matches = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if not matches.any():
            continue
        first = int(np.argmax(matches))
        if first < max_rank:
            cmc_sum[first:] += 1
        hits = np.cumsum(matches)
        precision_at_hit = hits[matches == 1] / (np.flatnonzero(matches) + 1)
        aps.append(float(precision_at_hit.mean()))
    n = len(aps)
    if n == 0:
        raise InputError("no query has a match from another camera in the gallery: nothing to score")
    return cmc_sum / n, float(np.mean(aps)), n


def _load_rgb(path: Path) -> NDArray[np.uint8]:
    img = cv2.imread(str(path))
    if img is None:
        raise InputError(f"{path}: cannot decode image")
    return np.ascontiguousarray(img[:, :, ::-1])


def embed_paths(embedder: Embedder, paths: Sequence[Path], batch: int = 64) -> NDArray[np.float32]:
    """Embeddings (n, dim) of the image files at `paths`, read as RGB."""
    out = [embedder.embed([_load_rgb(p) for p in paths[i : i + batch]]) for i in range(0, len(paths), batch)]
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)


def evaluate_folder(folder: Path, embedder: Embedder) -> dict[str, Any]:
    """rank_1, rank_5, rank_10 and mAP (fractions 0..1) of `embedder` on a Market-layout folder."""
    q = read_split(Path(folder) / "query")
    g = read_split(Path(folder) / "bounding_box_test")
    qf, gf = embed_paths(embedder, q.paths), embed_paths(embedder, g.paths)
    dist = 1.0 - qf @ gf.T  # cosine distance on unit vectors
    cmc, mean_ap, n = cmc_map(dist, q.pids, q.cams, g.pids, g.cams)
    return {"embedder": embedder.name, "dataset": str(folder), "rank_1": float(cmc[0]), "rank_5": float(cmc[4]),
            "rank_10": float(cmc[9]), "mAP": mean_ap, "queries": n, "gallery": len(g.paths)}  # fmt: skip


def convert_pku(src: Path, out: Path, pids: Sequence[int] | None = None) -> dict[str, int]:
    """Write PKU-Reid crops (`<pid>/<cam>_<orientation>.png` under src, searched recursively, duplicates of
    val/query and val/gallery ignored) in the Market layout.

    Protocol (cross-camera): the crops of camera 01 are the queries, the crops of camera 02 the gallery, so every
    query must find its person among the other camera's crops of all identities (`PPPP_cC_00000O_00.png`). This
    matches how an investigator searches another camera with a crop from one. `pids` restricts the identities
    (e.g. a held-out fold).
    """
    src, out = Path(src), Path(out)
    crops: dict[tuple[int, int, int], Path] = {}
    for p in sorted(src.rglob("*.png")):
        if {"query", "gallery"} & set(p.parts):
            continue
        m = re.match(r"^0?(\d)_(\d)\.png$", p.name)
        if not m or not p.parent.name.isdigit():
            continue
        pid, cam, orient = int(p.parent.name), int(m.group(1)), int(m.group(2))
        if pids is None or pid in set(pids):
            crops.setdefault((pid, cam, orient), p)
    if not crops:
        raise InputError(f"{src}: no PKU-Reid crops (<pid>/<cam>_<orientation>.png) found")
    for sub in ("query", "bounding_box_test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for (pid, cam, orient), p in crops.items():
        sub = "query" if cam == 1 else "bounding_box_test"
        shutil.copyfile(p, out / sub / f"{pid:04d}_c{cam}s1_{orient:06d}_00.png")
    return {"identities": len({k[0] for k in crops}), "crops": len(crops)}


def convert_mot(src: Path, out: Path, min_h: int = 64, min_visibility: float = 0.6) -> dict[str, int]:
    """Write pedestrian crops of MOTChallenge sequences (`src/<SEQ>/img1/*.jpg`, `src/<SEQ>/gt/gt.txt`) in the
    Market layout, as an identity-retrieval set pooled over all sequences.

    Protocol: every pedestrian (class 1, consider 1, visibility >= `min_visibility`, box >= `min_h` px tall) seen in
    two or more frames of a sequence gives one query, its crop in its first frame (camera 1), and one gallery crop,
    its crop in its last frame (camera 2); the gallery holds those crops of every identity of every sequence.
    Identities are unique within a sequence, so person id = 1000 * (sequence index + 1) + track id. On MOT17-mini
    (the first 4-8 frames of each sequence) query and match are a fraction of a second apart: an easy, same-camera
    set that checks an embedder on real street footage, not a cross-camera benchmark.
    """
    src, out = Path(src), Path(out)
    seqs = sorted(d for d in src.iterdir() if (d / "gt" / "gt.txt").is_file()) if src.is_dir() else []
    if not seqs:
        raise InputError(f"{src}: no MOTChallenge sequences (<SEQ>/gt/gt.txt) found")
    for sub in ("query", "bounding_box_test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    n_ids = 0
    for s_i, seq in enumerate(seqs):
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 8] >= min_visibility) & (gt[:, 5] >= min_h)]
        for tid in np.unique(gt[:, 1]).astype(int):
            rows = gt[gt[:, 1] == tid]
            rows = rows[np.argsort(rows[:, 0])]
            if len(rows) < 2:
                continue
            pid = 1000 * (s_i + 1) + int(tid)
            for cam, row in ((1, rows[0]), (2, rows[-1])):
                frame = int(row[0])
                img = cv2.imread(str(seq / "img1" / f"{frame:06d}.jpg"))
                if img is None:
                    raise InputError(f"{seq}: cannot read frame {frame}")
                x, y, w, h = row[2:6]
                x1, y1 = max(0, int(round(x))), max(0, int(round(y)))
                x2, y2 = min(img.shape[1], int(round(x + w))), min(img.shape[0], int(round(y + h)))
                sub = "query" if cam == 1 else "bounding_box_test"
                cv2.imwrite(str(out / sub / f"{pid:04d}_c{cam}s{s_i + 1}_{frame:06d}_00.png"), img[y1:y2, x1:x2])
            n_ids += 1
    if not n_ids:
        raise InputError(f"{src}: no pedestrian seen in two frames")
    return {"identities": n_ids, "crops": 2 * n_ids}


def pku_ids(src: Path) -> list[int]:
    """Identity ids present in a PKU-Reid folder (from its manifest.csv when there is one)."""
    manifest = Path(src) / "manifest.csv"
    if manifest.exists():
        with open(manifest) as f:
            return sorted({int(r["person_id"]) for r in csv.DictReader(f)})
    return sorted({int(p.parent.name) for p in Path(src).rglob("*.png") if p.parent.name.isdigit()})


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of `evaluate_folder` results (percentages), for the CLI."""
    head = f"{'embedder':22} {'dataset':28} {'rank-1':>7} {'rank-5':>7} {'rank-10':>7} {'mAP':>7} {'queries':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['embedder']:22} {Path(r['dataset']).name[:28]:28} {100 * r['rank_1']:6.1f}% {100 * r['rank_5']:6.1f}%"
            f" {100 * r['rank_10']:6.1f}% {100 * r['mAP']:6.1f}% {r['queries']:7d}"
        )
    return "\n".join(lines)


def run_eval(folder: Path, embedders: Sequence[Embedder], json_out: Path | None = None) -> list[dict[str, Any]]:
    """Evaluate each embedder on `folder`; optionally write the rows as JSON (a list, or one object for one)."""
    rows = [evaluate_folder(folder, e) for e in embedders]
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2) + "\n")
    return rows


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return (inter / (area(a)[:, None] + area(b)[None, :] - inter)).astype(np.float32)


def evaluate_footage(seq_dirs: Sequence[Path], service: Any, k: int = 10, min_h: int = 80) -> dict[str, Any]:
    """Retrieval through the real ingest and search path on footage with identity ground truth (MOTChallenge
    layout: SEQ/img1/*.jpg, SEQ/gt/gt.txt, SEQ/seqinfo.ini).

    Every frame is ingested (camera = sequence name). Each stored sighting takes the identity of the ground-truth
    box it overlaps (IoU >= 0.5). For every identity with sightings in two or more frames, its ground-truth crop
    in its first such frame is the query, searched within its camera; the sightings of that same frame are left
    out of the ranking. Reported: rank-1 (the best other sighting is the identity), recall@k (share of the identity's other sightings in the top k) and
    precision@k (share of the top k that are the identity), averaged over queries.
    """
    from vsearch.ingest import IngestItem
    from vsearch.search import SearchFilters, query_crop, search
    from vsearch.video import probe

    s = service.settings
    recalls, precisions, top1, n_queries = [], [], [], 0
    for seq in map(Path, seq_dirs):
        frames = seq / "img1"
        info = probe(frames)
        rep = service.ingest([IngestItem(frames, seq.name, 0.0, sample_fps=info.fps)])[0]  # every frame
        if rep.status == "failed":
            raise InputError(f"{seq}: {rep.error}")
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 5] >= min_h)]
        sightings = [x for x in service.catalog.sightings(service.store.index.ids().tolist()).values() if x.camera_id == seq.name]
        identity: dict[int, int] = {}
        frame_of: dict[int, int] = {}
        for x in sightings:
            f = round(x.pts_s * info.fps) + 1
            rows = gt[gt[:, 0] == f]
            frame_of[x.id] = f
            if len(rows):
                boxes = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1).astype(np.float32)
                iou = _iou(np.array([x.xyxy], np.float32), boxes)[0]
                if iou.max() >= 0.5:
                    identity[x.id] = int(rows[int(iou.argmax()), 1])
        for pid in sorted(set(identity.values())):
            mine = [sid for sid, p in identity.items() if p == pid]
            frames_seen = sorted({frame_of[sid] for sid in mine})
            if len(frames_seen) < 2:
                continue
            qf = frames_seen[0]
            row = gt[(gt[:, 0] == qf) & (gt[:, 1] == pid)][0]
            img = np.asarray(cv2.imread(str(frames / f"{qf:06d}.jpg")), np.uint8)
            x1, y1, w, h = (int(v) for v in row[2:6])
            q = query_crop(img, service.detector, s, (x1, y1, x1 + w, y1 + h))
            allowed_all = np.array([x.id for x in sightings if frame_of[x.id] != qf], np.int64)
            res = search(q, SearchFilters(cameras=(seq.name,), top_k=1000), service.embedder, service.store, s)
            ranked = [h.sighting.id for h in sorted(res.hits, key=lambda h: -h.score) if h.sighting.id in set(allowed_all)][:k]
            positives = {sid for sid in mine if frame_of[sid] != qf}
            top1.append(bool(ranked) and ranked[0] in positives)
            recalls.append(len(positives & set(ranked)) / len(positives))
            precisions.append(len(positives & set(ranked)) / max(1, len(ranked)))
            n_queries += 1
    if not n_queries:
        raise InputError("no identity was stored in two or more frames: nothing to score")
    return {"embedder": service.embedder.name, "k": k, "queries": n_queries, "rank_1": float(np.mean(top1)),
            f"recall_at_{k}": float(np.mean(recalls)), f"precision_at_{k}": float(np.mean(precisions))}  # fmt: skip
