"""Identities across cameras: cluster a time window's tracks into putative people, and score a clustering.

Each track (one person's continuous presence on one camera, as the tracker cut it) is one item, represented by the
L2-normalised mean of its sightings' embeddings. Average-linkage agglomerative clustering on cosine similarity
merges the most similar pair of clusters while their average similarity is at least a threshold, with one
constraint: two tracks seen on the same camera at the same time are two people, so clusters holding such a pair
never merge (the constraint is inherited by every merge).

Quality is measured with pairwise precision/recall (over pairs of items) and BCubed precision/recall (per item,
so large clusters do not dominate); `benchmarks/eval_identities.py` reports both on data with ground truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import Catalog
from vsearch.embed import l2_normalize
from vsearch.errors import InputError

MAX_WINDOW_SIGHTINGS = 200_000
MAX_WINDOW_TRACKS = 5000  # O(n^2) clustering memory: 5000 tracks take 200 MB
OVERLAP_MARGIN_S = 0.0  # tracks of one camera overlapping by more than this are simultaneous


@dataclass(frozen=True)
class TrackObs:
    """One track's appearance and its place and time span."""

    video_id: int
    track_id: int
    camera_id: str
    start_ts_s: float
    end_ts_s: float
    embedding: NDArray[np.float32]  # L2-normalised mean of its sightings' embeddings
    sighting_ids: tuple[int, ...]


@dataclass(frozen=True)
class Identity:
    """A putative person: tracks clustered together, with where and when they were seen."""

    id: int  # rank in this answer (1 = most sightings)
    tracks: tuple[TrackObs, ...]
    cameras: tuple[str, ...]
    first_ts_s: float
    last_ts_s: float
    sightings: int
    representative_sighting_id: int  # a sighting of its longest track


def cannot_link(cameras: Sequence[str], starts: Sequence[float], ends: Sequence[float], margin_s: float = OVERLAP_MARGIN_S) -> NDArray[np.bool_]:
    """(n, n) True where two items are on one camera and overlap in time by more than `margin_s`."""
    cam = np.asarray(cameras)
    a, b = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    overlap = np.minimum(b[:, None], b[None, :]) - np.maximum(a[:, None], a[None, :]) > margin_s
    same = cam[:, None] == cam[None, :]
    out = overlap & same
    np.fill_diagonal(out, False)
    return out


def cluster(embeddings: NDArray[np.float32], threshold: float, cannot: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
    """Constrained average-linkage clustering of L2-normalised rows; returns labels 0..k-1 (in first-seen order).

    O(n^2) memory and about O(n^2) work per merge: meant for a window's tracks (thousands), not a whole archive.
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, np.int64)
    x = np.asarray(embeddings, np.float64)
    avg = x @ x.T  # average similarity between clusters (Lance-Williams update for average linkage)
    blocked = np.zeros((n, n), bool) if cannot is None else np.array(cannot, bool)
    size = np.ones(n)
    alive = np.ones(n, bool)
    owner = np.arange(n)
    eff = np.where(blocked, -np.inf, avg)
    np.fill_diagonal(eff, -np.inf)
    while True:
        flat = int(np.argmax(eff))
        i, j = divmod(flat, n)
        if not eff[i, j] >= threshold:
            break
        avg[i] = (size[i] * avg[i] + size[j] * avg[j]) / (size[i] + size[j])
        avg[:, i] = avg[i]
        blocked[i] |= blocked[j]
        blocked[:, i] = blocked[i]
        size[i] += size[j]
        alive[j] = False
        owner[owner == j] = i
        row = np.where(blocked[i] | ~alive, -np.inf, avg[i])
        row[i] = -np.inf
        eff[i], eff[:, i] = row, row
        eff[j], eff[:, j] = -np.inf, -np.inf
    _, labels = np.unique(owner, return_inverse=True)
    first: dict[int, int] = {}
    for lab in labels:
        first.setdefault(int(lab), len(first))
    return np.array([first[int(lab)] for lab in labels], np.int64)


# -- quality -----------------------------------------------------------------------------------------------------


def _pairs(counts: NDArray[np.int64]) -> float:
    return float((counts * (counts - 1) // 2).sum())


def pairwise_scores(truth: Sequence[object], pred: Sequence[int]) -> dict[str, float]:
    """Pairwise precision, recall and F1: over all pairs of items, same-cluster pairs that are the same person."""
    _, t = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
    p = np.asarray(pred)
    joint = np.unique(np.stack([t, p], 1), axis=0, return_counts=True)[1]
    tp = _pairs(joint)
    pred_pairs = _pairs(np.unique(p, return_counts=True)[1])
    true_pairs = _pairs(np.unique(t, return_counts=True)[1])
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def bcubed_scores(truth: Sequence[object], pred: Sequence[int]) -> dict[str, float]:
    """BCubed precision, recall and F1 (Bagga & Baldwin 1998; Amigó et al. 2009), averaged over items."""
    t = [str(v) for v in truth]
    p = [int(v) for v in pred]
    joint: dict[tuple[str, int], int] = defaultdict(int)
    tc: dict[str, int] = defaultdict(int)
    pc: dict[int, int] = defaultdict(int)
    for a, b in zip(t, p):
        joint[(a, b)] += 1
        tc[a] += 1
        pc[b] += 1
    n = len(t)
    if n == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = sum(joint[(a, b)] / pc[b] for a, b in zip(t, p)) / n
    recall = sum(joint[(a, b)] / tc[a] for a, b in zip(t, p)) / n
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def clustering_quality(truth: Sequence[object], pred: Sequence[int]) -> dict[str, float]:
    """Pairwise and BCubed scores plus cluster counts, as one flat dict."""
    pw, bc = pairwise_scores(truth, pred), bcubed_scores(truth, pred)
    return {
        "items": len(pred), "true_identities": len(set(map(str, truth))), "clusters": len(set(pred)),
        "pairwise_precision": pw["precision"], "pairwise_recall": pw["recall"], "pairwise_f1": pw["f1"],
        "bcubed_precision": bc["precision"], "bcubed_recall": bc["recall"], "bcubed_f1": bc["f1"],
    }  # fmt: skip


# -- over the catalog -------------------------------------------------------------------------------------------


def track_observations(
    catalog: Catalog, from_ts_s: float, to_ts_s: float, cameras: Sequence[str] | None = None
) -> list[TrackObs]:
    """The tracks with sightings in a window: mean embedding, camera, and time span (from the track's boxes)."""
    by_track: dict[tuple[int, int], list] = defaultdict(list)
    found = catalog.sightings_between(from_ts_s, to_ts_s, cameras, MAX_WINDOW_SIGHTINGS + 1)
    if len(found) > MAX_WINDOW_SIGHTINGS:
        raise InputError(f"more than {MAX_WINDOW_SIGHTINGS} sightings in this window: narrow it (time or cameras)")
    for s in found:
        by_track[(s.video_id, s.track_id)].append(s)
    if not by_track:
        return []
    ids = np.array([s.id for ss in by_track.values() for s in ss], np.int64)
    got_ids, vecs = catalog.embeddings(ids)
    vec_of = {int(i): v for i, v in zip(got_ids, vecs)}
    out = []
    for (video_id, track_id), ss in sorted(by_track.items()):
        offset = ss[0].ts_s - ss[0].pts_s
        times = [b[0] for b in catalog.track_boxes(video_id, track_id)] or [s.pts_s for s in ss]
        mean = np.asarray(np.mean([vec_of[s.id] for s in ss if s.id in vec_of], axis=0), np.float32)
        out.append(TrackObs(
            video_id, track_id, ss[0].camera_id, offset + min(times), offset + max(times),
            l2_normalize(mean[None, :])[0], tuple(s.id for s in ss),
        ))  # fmt: skip
    return out


def identities_in_window(
    catalog: Catalog, from_ts_s: float, to_ts_s: float, cameras: Sequence[str] | None,
    threshold: float,
) -> list[Identity]:  # fmt: skip
    """The people seen in a window: tracks clustered across cameras, most sightings first."""
    tracks = track_observations(catalog, from_ts_s, to_ts_s, cameras)
    if not tracks:
        return []
    if len(tracks) > MAX_WINDOW_TRACKS:
        raise InputError(f"{len(tracks)} tracks in this window; at most {MAX_WINDOW_TRACKS} can be grouped at once: narrow it")
    labels = cluster(
        np.stack([t.embedding for t in tracks]), threshold,
        cannot_link([t.camera_id for t in tracks], [t.start_ts_s for t in tracks], [t.end_ts_s for t in tracks]),
    )  # fmt: skip
    groups: dict[int, list[TrackObs]] = defaultdict(list)
    for t, lab in zip(tracks, labels):
        groups[int(lab)].append(t)
    people = []
    for ts in groups.values():
        longest = max(ts, key=lambda t: (t.end_ts_s - t.start_ts_s, len(t.sighting_ids)))
        people.append(Identity(
            0, tuple(sorted(ts, key=lambda t: t.start_ts_s)), tuple(sorted({t.camera_id for t in ts})),
            min(t.start_ts_s for t in ts), max(t.end_ts_s for t in ts), sum(len(t.sighting_ids) for t in ts),
            longest.sighting_ids[len(longest.sighting_ids) // 2],
        ))  # fmt: skip
    people.sort(key=lambda p: (-p.sightings, p.first_ts_s))
    return [replace(p, id=i + 1) for i, p in enumerate(people)]



def identities_to_dict(people: Sequence[Identity]) -> list[dict]:
    """Identities as JSON-able rows with ISO times."""
    from vsearch.types import ts_to_iso

    return [
        {"id": p.id, "cameras": list(p.cameras), "first_seen": ts_to_iso(p.first_ts_s), "last_seen": ts_to_iso(p.last_ts_s),
         "sightings": p.sightings, "representative_sighting_id": p.representative_sighting_id,
         "tracks": [{"video_id": t.video_id, "track_id": t.track_id, "camera_id": t.camera_id,
                     "start": ts_to_iso(t.start_ts_s), "end": ts_to_iso(t.end_ts_s), "sightings": len(t.sighting_ids)}
                    for t in p.tracks]}
        for p in people
    ]  # fmt: skip
