"""Pseudo-identities for adaptation: tracks joined across cameras by mutual nearest neighbours, under cannot-links.

Pure numpy (no PyTorch): the rule that turns a deployment's tracks and investigators' marks into training labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Tracklet:
    """One track of one camera: its crops (RGB uint8) and when it was seen (a camera's tracks that overlap in time
    are different people)."""

    camera: str
    t0_s: float
    t1_s: float
    crops: Sequence[NDArray[np.uint8]]


def track_features(feats: NDArray[np.float32], owner: NDArray[np.int64], n: int) -> NDArray[np.float32]:
    """The L2-normalised mean of each track's crop embeddings (rows of `feats`, owned by track `owner[i]`)."""
    out = np.zeros((n, feats.shape[1]), np.float32)
    np.add.at(out, owner, feats)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def remove_camera_means(x: NDArray[np.float32], cams: NDArray[Any]) -> NDArray[np.float32]:
    """Each row minus the mean of its camera's rows, L2-normalised again: what a camera adds to everyone it sees
    (its colour cast, its angle) taken out before comparing across cameras."""
    out = x.copy()
    for c in np.unique(cams):
        m = cams == c
        out[m] -= out[m].mean(0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class _Clusters:
    """Union-find over tracks that refuses a merge joining two tracks that may not be one person."""

    def __init__(self, tracklets: Sequence[Tracklet], different: set[tuple[int, int]]) -> None:
        self.parent = list(range(len(tracklets)))
        self.members: dict[int, list[int]] = {i: [i] for i in range(len(tracklets))}
        self.tracklets = tracklets
        self.different = different

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def allowed(self, a: int, b: int) -> bool:
        for u in self.members[a]:
            tu = self.tracklets[u]
            for v in self.members[b]:
                tv = self.tracklets[v]
                if (min(u, v), max(u, v)) in self.different:
                    return False
                if tu.camera == tv.camera and tu.t0_s <= tv.t1_s and tv.t0_s <= tu.t1_s:
                    return False
        return True

    def union(self, i: int, j: int, force: bool = False) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b or not (force or self.allowed(a, b)):
            return False
        self.parent[b] = a
        self.members[a] += self.members.pop(b)
        return True


def cluster_tracklets(
    tf: NDArray[np.float32],
    tracklets: Sequence[Tracklet],
    link_similarity: float,
    same: Sequence[tuple[int, int]] = (),
    different: Sequence[tuple[int, int]] = (),
    truth: Sequence[int] | None = None,
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """(cluster label of each track, 0..n-1; statistics). Investigators' `same` pairs are joined first; then, best
    first, every pair of tracks on two cameras that are each other's nearest neighbour there with a similarity
    (camera means removed) of at least `link_similarity`, unless the join would put two tracks of one camera that
    overlap in time, or a `different` pair, in one cluster. `truth`: true identities, to measure the links."""
    cams = np.array([t.camera for t in tracklets])
    x = remove_camera_means(tf, cams)
    cands: list[tuple[float, int, int]] = []
    names = sorted(set(cams.tolist()))
    for ai, a in enumerate(names):
        ia = np.flatnonzero(cams == a)
        for b in names[ai + 1 :]:
            ib = np.flatnonzero(cams == b)
            s = x[ia] @ x[ib].T
            best_b, best_a = s.argmax(1), s.argmax(0)
            for i, j in enumerate(best_b):
                if best_a[j] == i and s[i, j] >= link_similarity:
                    cands.append((float(s[i, j]), int(ia[i]), int(ib[j])))
    uf = _Clusters(tracklets, {(min(u, v), max(u, v)) for u, v in different})
    for u, v in same:
        uf.union(u, v, force=True)
    accepted = []
    for _, i, j in sorted(cands, reverse=True):
        if uf.union(i, j):
            accepted.append((i, j))
    roots = sorted({uf.find(i) for i in range(len(tracklets))})
    label_of = {r: k for k, r in enumerate(roots)}
    labels = np.array([label_of[uf.find(i)] for i in range(len(tracklets))], np.int64)
    stats: dict[str, Any] = {"clusters": len(roots), "candidate_links": len(cands), "cross_camera_links": len(accepted)}
    if truth is not None:
        y = np.asarray(truth)
        stats["link_precision"] = round(float(np.mean([y[i] == y[j] for i, j in accepted])), 4) if accepted else None
        pos = (y[:, None] == y[None, :]) & (cams[:, None] != cams[None, :])
        joined = labels[:, None] == labels[None, :]
        stats["pair_recall"] = round(float((pos & joined).sum() / max(1, pos.sum())), 4)
        stats["pair_precision"] = round(float((pos & joined).sum() / max(1, (joined & (cams[:, None] != cams[None, :])).sum())), 4)
    return labels, stats
