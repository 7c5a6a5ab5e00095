"""Re-identification accuracy: Market-1501-layout folders, rank-k (CMC) and mAP by the standard protocol.

Layout: DIR/query/ and DIR/bounding_box_test/ holding crops named `PPPP_cCsS_FFFFFF_NN.jpg|png` (person id,
camera, sequence, frame, box). Protocol (Market-1501's): for each query, gallery crops of the same person AND the
same camera are left out (the match must come from another camera), junk crops (pid -1) are left out, and
distractors (pid 0000) stay in as negatives. Queries with no valid match are skipped.
"""

from __future__ import annotations

import json
import re
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
