"""Retrieval measured through the product's real ingest and search path, on footage with identity ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import InputError


def iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pairwise IoU of boxes a (n, 4) and b (m, 4), xyxy: an (n, m) matrix."""
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
    out of the ranking. With track-level ranking (one hit per track) a hit stands for its track's sightings. Reported: rank-1 (the best other sighting is the identity), recall@k (share of the identity's other sightings in the top k) and
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
        track_of: dict[tuple[int, int], list[Any]] = {}
        for x in sorted(sightings, key=lambda x: x.ts_s):
            track_of.setdefault((x.video_id, x.track_id), []).append(x)
        identity: dict[int, int] = {}
        frame_of: dict[int, int] = {}
        for x in sightings:
            f = round(x.pts_s * info.fps) + 1
            rows = gt[gt[:, 0] == f]
            frame_of[x.id] = f
            if len(rows):
                boxes = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1).astype(np.float32)
                overlap = iou(np.array([x.xyxy], np.float32), boxes)[0]
                if overlap.max() >= 0.5:
                    identity[x.id] = int(rows[int(overlap.argmax()), 1])
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
            allowed = set(allowed_all.tolist())
            hits = [h.sighting for h in sorted(res.hits, key=lambda h: -h.score)]
            if s.search_track_level:  # a hit stands for its track (one per track): its sightings, in time order
                hits = [x for h in hits for x in track_of[(h.video_id, h.track_id)]]
            ranked = [x.id for x in hits if x.id in allowed][:k]
            positives = {sid for sid in mine if frame_of[sid] != qf}
            top1.append(bool(ranked) and ranked[0] in positives)
            recalls.append(len(positives & set(ranked)) / len(positives))
            precisions.append(len(positives & set(ranked)) / max(1, len(ranked)))
            n_queries += 1
    if not n_queries:
        raise InputError("no identity was stored in two or more frames: nothing to score")
    return {"embedder": service.embedder.name, "k": k, "queries": n_queries, "rank_1": float(np.mean(top1)),
            f"recall_at_{k}": float(np.mean(recalls)), f"precision_at_{k}": float(np.mean(precisions))}  # fmt: skip
