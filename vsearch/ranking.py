"""Scoring candidates against a query of several vectors, and re-ranking the top candidates. Pure numpy.

Used by search.py on the candidates a filtered index search returned (never outside the filter), and by
benchmarks/eval_search.py on re-ID sets, so that what is measured is what runs.

- Fusion of several query vectors (images of one person, sightings an investigator confirmed): "mean" scores a
  candidate against the re-normalised mean of the L2-normalised vectors; "max" takes its best similarity to any
  of them.
- Re-ranking: "k-reciprocal" (Zhong et al., CVPR 2017: Jaccard distance of k-reciprocal neighbour sets, with
  local query expansion, blended with the original distance) over the query and its top candidates;
  "aqe" (alpha query expansion, Radenovic et al. 2018: the query is replaced by itself plus its top-m candidates
  weighted by similarity^alpha, then candidates are scored again).
- Test-time help (`rescore`): a candidate compared by its track's mean vector instead of its own crop's, and/or
  with its camera's mean vector taken out (unlabelled per-camera normalisation) before the comparison.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Fusion = Literal["mean", "max"]
Rerank = Literal["none", "k-reciprocal", "aqe"]
FUSIONS: tuple[Fusion, ...] = ("mean", "max")
RERANKS: tuple[Rerank, ...] = ("none", "k-reciprocal", "aqe")


def l2n(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length."""
    x = np.atleast_2d(np.asarray(x, np.float32))
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fuse_mean(queries: NDArray[np.float32]) -> NDArray[np.float32]:
    """One unit vector for several unit query vectors (n, d) -> (d,): their mean, re-normalised."""
    return l2n(l2n(queries).mean(axis=0, keepdims=True))[0]


def fused_scores(queries: NDArray[np.float32], gallery: NDArray[np.float32], fusion: Fusion) -> NDArray[np.float32]:
    """Similarity (n_gallery,) of each gallery vector to a query made of the rows of `queries`."""
    if len(gallery) == 0:
        return np.zeros(0, np.float32)
    if fusion == "mean":
        return (gallery @ fuse_mean(queries)).astype(np.float32)
    return (gallery @ l2n(queries).T).max(axis=1).astype(np.float32)


def alpha_qe(
    query: NDArray[np.float32], gallery: NDArray[np.float32], scores: NDArray[np.float32], m: int = 1,
    alpha: float = 3.0,
) -> NDArray[np.float32]:  # fmt: skip
    """Scores after alpha query expansion: q' = q + sum over the top-m candidates of max(s, 0)^alpha * g."""
    top = np.argsort(-scores, kind="stable")[:m]
    w = np.maximum(scores[top], 0.0) ** alpha
    q2 = l2n(query[None, :] + (w[:, None] * gallery[top]).sum(axis=0, keepdims=True))[0]
    return (gallery @ q2).astype(np.float32)


def k_reciprocal(
    query: NDArray[np.float32], gallery: NDArray[np.float32], k1: int = 20, k2: int = 6, lam: float = 0.3
) -> NDArray[np.float32]:
    """Similarity (1 - final distance, in [0, 1]) of each gallery vector to the query after k-reciprocal
    re-ranking among the query and these candidates only (Zhong et al. 2017, their published algorithm)."""
    n_g = len(gallery)
    if n_g < 2:
        return (gallery @ query).astype(np.float32)
    feats = l2n(np.vstack([query[None, :], gallery]))
    n = len(feats)
    k1 = max(1, min(k1, n - 1))
    k2 = max(1, min(k2, n))
    dist = np.clip(2.0 - 2.0 * feats @ feats.T, 0.0, None).astype(np.float32)
    dist = dist / np.maximum(dist.max(axis=0, keepdims=True), 1e-12)
    rank = np.argsort(dist, axis=1, kind="stable")
    v = np.zeros((n, n), np.float32)
    half = int(round(k1 / 2))
    for i in range(n):
        forward = rank[i, : k1 + 1]
        recip = forward[np.any(rank[forward, : k1 + 1] == i, axis=1)]
        expanded = recip
        for c in recip:
            cf = rank[c, : half + 1]
            c_recip = cf[np.any(rank[cf, : half + 1] == c, axis=1)]
            if len(np.intersect1d(c_recip, recip)) > 2.0 / 3.0 * len(c_recip):
                expanded = np.append(expanded, c_recip)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        v[i, expanded] = w / w.sum()
    if k2 > 1:  # local query expansion: each row averaged with its k2 nearest rows
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    # Jaccard distance of the query (row 0) to every candidate: 1 - sum(min) / sum(max) of their soft neighbour sets
    mins = np.minimum(v[0][None, :], v[1:]).sum(axis=1)
    jaccard = 1.0 - mins / (2.0 - mins)
    final = (1.0 - lam) * jaccard + lam * dist[0, 1:]
    return (1.0 - final).astype(np.float32)


def centred(x: NDArray[np.float32], means: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows minus the matching rows (or one row) of `means`, L2-normalised again: what a camera adds to everyone it
    sees (its colour cast, its angle) taken out before comparing across cameras."""
    return l2n(np.atleast_2d(x) - means)


def rescore(
    queries: NDArray[np.float32],
    gallery: NDArray[np.float32],
    track_means: NDArray[np.float32] | None = None,
    camera_means: NDArray[np.float32] | None = None,
    query_means: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(queries, gallery) as the test-time help compares them: each gallery row replaced by its track's mean
    (`track_means`, aligned rows) and/or minus its camera's mean (`camera_means`, aligned rows), each query row
    minus `query_means` (one row for all, or aligned rows; None: the queries unchanged)."""
    g = gallery if track_means is None else l2n(track_means)
    if camera_means is not None:
        g = centred(g, camera_means)
    q = queries if query_means is None else centred(queries, query_means)
    return l2n(q), g


def rerank_scores(
    queries: NDArray[np.float32], gallery: NDArray[np.float32], fusion: Fusion, method: Rerank
) -> NDArray[np.float32]:
    """Scores of the candidates `gallery` for a query of the rows of `queries`: fused, then re-ranked."""
    scores = fused_scores(queries, gallery, fusion)
    if method == "none" or len(gallery) == 0:
        return scores
    if method == "aqe":
        return alpha_qe(fuse_mean(queries), gallery, scores)
    return k_reciprocal(fuse_mean(queries), gallery)


def near_duplicates(
    gallery: NDArray[np.float32], rejected: NDArray[np.float32], min_similarity: float
) -> NDArray[np.bool_]:
    """True for the gallery rows at least `min_similarity` (cosine) to any rejected vector."""
    if len(rejected) == 0 or len(gallery) == 0:
        return np.zeros(len(gallery), bool)
    return np.asarray((gallery @ l2n(rejected).T).max(axis=1) >= min_similarity)
