"""Fusion of several query vectors, re-ranking of the top candidates, and near-duplicate detection (pure numpy);
and re-ranking never reaching past the search filters (the real search over the sample clip)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vsearch.ranking import (
    RERANKS,
    alpha_qe,
    fuse_mean,
    fused_scores,
    k_reciprocal,
    l2n,
    near_duplicates,
    rerank_scores,
)
from vsearch.search import QueryCrop, SearchFilters, search
from vsearch.service import VSearch

E = np.eye(4, dtype=np.float32)


@pytest.mark.parametrize(
    "fusion, expected",
    [
        # the query is images e0 and e1; candidates e0, e1, (e0+e1)/sqrt2, e2
        ("mean", [1 / np.sqrt(2), 1 / np.sqrt(2), 1.0, 0.0]),
        ("max", [1.0, 1.0, 1 / np.sqrt(2), 0.0]),
    ],
)
def test_fusion_of_two_query_vectors(fusion: str, expected: list[float]) -> None:
    gallery = l2n(np.stack([E[0], E[1], E[0] + E[1], E[2]]))
    got = fused_scores(E[:2], gallery, fusion)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fuse_mean(E[:2])), 1.0, atol=1e-6)


def test_one_query_vector_scores_by_cosine_whatever_the_fusion() -> None:
    rng = np.random.default_rng(0)
    q, g = l2n(rng.normal(size=(1, 8))), l2n(rng.normal(size=(30, 8)))
    np.testing.assert_allclose(fused_scores(q, g, "mean"), fused_scores(q, g, "max"), atol=1e-6)
    np.testing.assert_allclose(rerank_scores(q, g, "mean", "none"), (g @ q.T)[:, 0], atol=1e-6)


@pytest.mark.parametrize("method", [m for m in RERANKS if m != "none"])
def test_reranking_keeps_an_exact_match_first(method: str) -> None:
    rng = np.random.default_rng(1)
    q = l2n(rng.normal(size=(1, 16)))
    g = l2n(np.vstack([rng.normal(size=(40, 16)), q + 0.05 * rng.normal(size=(1, 16))]))
    s = rerank_scores(q, g, "mean", method)  # type: ignore[arg-type]
    assert s.shape == (41,) and int(np.argmax(s)) == 40


def test_k_reciprocal_scores_are_similarities_in_0_1() -> None:
    rng = np.random.default_rng(2)
    q, g = l2n(rng.normal(size=(1, 32)))[0], l2n(rng.normal(size=(30, 32)))
    for k1, k2 in ((20, 6), (5, 1), (100, 50)):  # k larger than the candidates: clamped
        kr = k_reciprocal(q, g, k1, k2)
        assert kr.shape == (30,) and np.all((kr >= 0) & (kr <= 1 + 1e-6))
    assert alpha_qe(q, g, g @ q, m=1).shape == (30,)


def test_near_duplicates_of_rejected_vectors() -> None:
    g = l2n(np.stack([E[0], E[0] + 0.1 * E[1], E[1], E[2]]))
    np.testing.assert_array_equal(near_duplicates(g, E[:1], 0.9), [True, True, False, False])
    np.testing.assert_array_equal(near_duplicates(g, np.zeros((0, 4), np.float32), 0.9), [False] * 4)


@pytest.mark.slow
@pytest.mark.parametrize("method", RERANKS)
def test_reranking_stays_inside_the_filters(demo_service: VSearch, method: str) -> None:
    settings = demo_service.settings.model_copy(update={"search_rerank": method})
    crop = demo_service.store.catalog.sighting(int(min(demo_service.store.index.ids())))  # the first one stored
    image = np.asarray(cv2.imread(str(demo_service.settings.data_dir / crop.thumb_path)), np.uint8)
    q = QueryCrop(np.ascontiguousarray(image[:, :, ::-1]), (0, 0, image.shape[1], image.shape[0]), "whole image")
    every = search(q, SearchFilters(top_k=50), demo_service.embedder, demo_service.store, settings)
    assert every.hits and every.hits[0].sighting.id in {h.sighting.id for h in every.clips[0].sightings}
    t0 = min(h.sighting.ts_s for h in every.hits)
    window = SearchFilters(from_ts_s=t0 + 60, to_ts_s=t0 + 90, top_k=50)
    inside = search(q, window, demo_service.embedder, demo_service.store, settings)
    assert inside.hits and all(t0 + 60 <= h.sighting.ts_s <= t0 + 90 for h in inside.hits)
    nowhere = search(q, SearchFilters(cameras=("elsewhere",)), demo_service.embedder, demo_service.store, settings)
    assert nowhere.clips == [] and nowhere.hits == []
