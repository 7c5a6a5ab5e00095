"""Who they were with: people seen close to a confirmed person, grouped across places and times by appearance.

1. Encounters. For each stay of the target (one track on one camera), every other track of the same video is
   compared sample by sample: at each target sample, the other person counts as "with" the target when one of
   their boxes within `max_dt_s` stands within `max_dist_h` person heights (distance between the boxes' foot
   points, over the mean of the two box heights). A track with at least one such sample is an encounter.
2. Grouping. Encounters are clustered by the appearance of their tracks (vsearch.identities.cluster, with the rule
   that two tracks on one camera at one time are two people), so one companion seen on two cameras or two days is
   one row.
3. Ranking: by the number of the target's stays they were seen in, then cameras, then samples together, then
   closeness.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import CaseItem, Catalog
from vsearch.embed import l2_normalize
from vsearch.identities import cannot_link, cluster

MAX_DT_S = 2.0
MAX_DIST_H = 1.5


@dataclass(frozen=True)
class Presence:
    """One person's sampled boxes during one stay on one camera: absolute times and xyxy boxes, aligned."""

    video_id: int
    track_id: int
    camera_id: str
    times_s: NDArray[np.float64]
    xyxy: NDArray[np.float32]

    def __post_init__(self) -> None:
        if len(self.times_s) != len(self.xyxy):
            raise ValueError(f"{len(self.times_s)} times but {len(self.xyxy)} boxes")


@dataclass(frozen=True)
class Encounter:
    """Another person close to the target during one of the target's stays."""

    visit: int  # which stay of the target (index into the stays given)
    video_id: int
    track_id: int
    camera_id: str
    start_ts_s: float  # first and last target sample with them close
    end_ts_s: float
    samples: int  # target samples with them close
    min_distance_h: float


@dataclass(frozen=True)
class Companion:
    """One putative companion: encounters grouped by appearance, ranked."""

    rank: int
    encounters: tuple[Encounter, ...]
    visits: int  # how many of the target's stays they were in
    cameras: tuple[str, ...]
    samples: int
    min_distance_h: float
    similarity_to_target: float | None  # cosine of mean appearances (high: maybe the target's own second track)
    sighting_id: int | None  # a stored sighting that shows them


def _feet_and_height(xyxy: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]], 1), b[:, 3] - b[:, 1]


def encounters_at(
    target: Presence, others: Sequence[Presence], visit: int, max_dt_s: float = MAX_DT_S, max_dist_h: float = MAX_DIST_H
) -> list[Encounter]:
    """The others close to the target during one stay (see the module docstring for "close")."""
    feet_t, h_t = _feet_and_height(target.xyxy)
    out = []
    for o in others:
        if (o.video_id, o.track_id) == (target.video_id, target.track_id) or not len(o.times_s):
            continue
        feet_o, h_o = _feet_and_height(o.xyxy)
        dt = np.abs(target.times_s[:, None] - o.times_s[None, :])
        dist = np.linalg.norm(feet_t[:, None, :] - feet_o[None, :, :], axis=2) / ((h_t[:, None] + h_o[None, :]) / 2)
        dist = np.where(dt <= max_dt_s, dist, np.inf).min(axis=1)
        near = dist <= max_dist_h
        if near.any():
            t = target.times_s[near]
            out.append(Encounter(visit, o.video_id, o.track_id, o.camera_id, float(t.min()), float(t.max()),
                                 int(near.sum()), float(dist[near].min())))  # fmt: skip
    return out


def group_and_rank(
    encounters: Sequence[Encounter],
    appearance: dict[tuple[int, int], NDArray[np.float32]],
    target_appearance: NDArray[np.float32] | None,
    threshold: float,
    representative: dict[tuple[int, int], int] | None = None,
) -> list[Companion]:
    """Group encounters by appearance (`appearance[(video_id, track_id)]`, L2-normalised; encounters without one
    stay alone) and rank the groups."""
    if not encounters:
        return []
    keys = [(e.video_id, e.track_id) for e in encounters]
    order = {k: n for n, k in enumerate(dict.fromkeys(keys))}
    with_vec = [i for i, k in enumerate(keys) if k in appearance]
    labels = np.full(len(encounters), -1, np.int64)
    if with_vec:
        sub = [encounters[i] for i in with_vec]
        # the same track met during two stays is one person; two tracks of one camera at one time are two
        sub_labels = cluster(
            np.stack([appearance[keys[i]] for i in with_vec]), threshold,
            cannot_link([e.camera_id for e in sub], [e.start_ts_s for e in sub], [e.end_ts_s for e in sub], -1e-9)
            & ~np.equal.outer(*[[order[keys[i]] for i in with_vec]] * 2),
        )  # fmt: skip
        labels[with_vec] = sub_labels
    alone = np.flatnonzero(labels < 0)
    labels[alone] = int(labels.max()) + 1 + np.arange(len(alone))
    groups: dict[int, list[Encounter]] = defaultdict(list)
    for e, label in zip(encounters, labels):
        groups[int(label)].append(e)
    rows = []
    for es in groups.values():
        vecs = [appearance[(e.video_id, e.track_id)] for e in es if (e.video_id, e.track_id) in appearance]
        sim = None
        if vecs and target_appearance is not None:
            sim = float(l2_normalize(np.asarray(np.mean(vecs, 0), np.float32)[None, :])[0] @ target_appearance)
        best = max(es, key=lambda e: (e.samples, -e.min_distance_h))
        rows.append(Companion(
            0, tuple(sorted(es, key=lambda e: (e.start_ts_s, e.track_id))), len({e.visit for e in es}),
            tuple(sorted({e.camera_id for e in es})), sum(e.samples for e in es), min(e.min_distance_h for e in es),
            sim, (representative or {}).get((best.video_id, best.track_id)),
        ))  # fmt: skip
    rows.sort(key=lambda c: (-c.visits, -len(c.cameras), -c.samples, c.min_distance_h))
    return [replace(c, rank=i + 1) for i, c in enumerate(rows)]


# -- over the catalog ------------------------------------------------------------------------------------------


def _presence(video_id: int, track_id: int, camera_id: str, offset_s: float, rows: Sequence[tuple]) -> Presence:
    return Presence(
        video_id, track_id, camera_id, np.array([offset_s + r[0] for r in rows], np.float64),
        np.array([r[1] for r in rows], np.float32).reshape(-1, 4),
    )  # fmt: skip


def track_appearance(catalog: Catalog, keys: Sequence[tuple[int, int]]) -> tuple[dict[tuple[int, int], NDArray[np.float32]], dict[tuple[int, int], int]]:
    """Mean stored embedding (L2-normalised) and a representative sighting of each (video_id, track_id) that has
    sightings."""
    vecs: dict[tuple[int, int], NDArray[np.float32]] = {}
    rep: dict[tuple[int, int], int] = {}
    for key in dict.fromkeys(keys):
        ss = catalog.track_sightings(key[0], key[1], -1e18, 1e18)
        if not ss:
            continue
        _, v = catalog.embeddings(np.array([s.id for s in ss], np.int64))
        if len(v):
            vecs[key] = l2_normalize(v.mean(0, keepdims=True).astype(np.float32))[0]
            rep[key] = ss[len(ss) // 2].id
    return vecs, rep


def companions_of_items(
    catalog: Catalog, items: Sequence[CaseItem], max_dt_s: float, max_dist_h: float, threshold: float,
) -> list[Companion]:  # fmt: skip
    """Companions of the person in a case's confirmed items (each item is one stay of the target)."""
    encounters: list[Encounter] = []
    target_keys = {(i.video_id, i.track_id) for i in items}
    for visit, it in enumerate(sorted(items, key=lambda i: (i.start_ts_s, i.id))):
        offset = it.start_ts_s - it.start_pts_s
        lo, hi = it.start_pts_s - 0.25, it.end_pts_s + 0.25
        mine = [(p, b) for p, b, _ in catalog.track_boxes(it.video_id, it.track_id) if lo <= p <= hi]
        if not mine:
            continue
        by_track: dict[int, list[tuple]] = defaultdict(list)
        for tid, p, b, _ in catalog.boxes_between(it.video_id, lo - max_dt_s, hi + max_dt_s):
            if (it.video_id, tid) not in target_keys:
                by_track[tid].append((p, b))
        others = [_presence(it.video_id, tid, it.camera_id, offset, rows) for tid, rows in sorted(by_track.items())]
        target = _presence(it.video_id, it.track_id, it.camera_id, offset, mine)
        encounters += encounters_at(target, others, visit, max_dt_s, max_dist_h)
    vecs, rep = track_appearance(catalog, [(e.video_id, e.track_id) for e in encounters] + sorted(target_keys))
    mine_vecs = [vecs[k] for k in target_keys if k in vecs]
    target_vec = l2_normalize(np.asarray(np.mean(mine_vecs, 0), np.float32)[None, :])[0] if mine_vecs else None
    return group_and_rank(encounters, {k: v for k, v in vecs.items() if k not in target_keys}, target_vec, threshold, rep)


def companions_to_dict(rows: Sequence[Companion]) -> list[dict]:
    """Companions as JSON-able rows with ISO times."""
    from dataclasses import asdict

    from vsearch.types import ts_to_iso

    return [
        {**asdict(c), "cameras": list(c.cameras), "first_seen": ts_to_iso(min(e.start_ts_s for e in c.encounters)),
         "last_seen": ts_to_iso(max(e.end_ts_s for e in c.encounters)),
         "encounters": [{**asdict(e), "start": ts_to_iso(e.start_ts_s), "end": ts_to_iso(e.end_ts_s)} for e in c.encounters]}
        for c in rows
    ]  # fmt: skip
