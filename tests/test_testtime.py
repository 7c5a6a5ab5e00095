"""Test-time help in search (issue 31): track-level ranking and per-camera normalisation, through the real ingest
and search path on the sample clip; and the camera means the store derives from the catalog, kept in step as
sightings are added and removed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.ingest import IngestItem
from vsearch.ranking import l2n, rescore
from vsearch.search import QueryCrop, SearchFilters, search
from vsearch.service import VSearch
from vsearch.types import parse_time

from .conftest import DEMO_START, private_copy, sample_excerpt

E = np.eye(4, dtype=np.float32)


def test_rescore_takes_track_means_and_camera_means() -> None:
    q = E[:1]
    g = l2n(np.stack([E[0] + E[2], E[1]]))
    # plain: the gallery as it is
    np.testing.assert_allclose(rescore(q, g)[1], g)
    # a track's mean replaces its crop
    tracks = np.stack([E[0] + E[1], E[1] + E[3]])
    np.testing.assert_allclose(rescore(q, g, tracks)[1], l2n(tracks))
    # the camera's mean is taken out (e2: what camera 1 adds to everyone), the query keeps its own vector
    qv, gv = rescore(q, g, None, np.stack([E[2] / np.sqrt(2), np.zeros(4, np.float32)]))
    np.testing.assert_allclose(gv, np.stack([E[0], E[1]]), atol=1e-6)
    np.testing.assert_allclose(qv, q)
    # a query row of a known camera loses its camera's mean too
    qv, _ = rescore(l2n(E[0] + E[2]), g, None, np.zeros((2, 4), np.float32), E[2:3] / np.sqrt(2))
    np.testing.assert_allclose(qv, E[:1], atol=1e-6)


def _query(svc: VSearch) -> QueryCrop:
    """The thumbnail of the first stored sighting, as an uploaded person crop."""
    crop = svc.store.catalog.sighting(int(min(svc.store.index.ids())))
    image = np.asarray(cv2.imread(str(svc.settings.data_dir / crop.thumb_path)), np.uint8)
    return QueryCrop(np.ascontiguousarray(image[:, :, ::-1]), (0, 0, image.shape[1], image.shape[0]), "whole image")


def _vectors_by(svc: VSearch, key) -> dict:  # type: ignore[no-untyped-def]
    """Every stored vector of the catalog, grouped by key(sighting)."""
    cat = svc.store.catalog
    out: dict = {}
    for ids, vecs in cat.iter_embeddings(svc.embedder.name):
        seen = cat.sightings(ids.tolist())
        for i, v in zip(ids.tolist(), vecs):
            out.setdefault(key(seen[i]), []).append(v)
    return {k: np.mean(v, axis=0) for k, v in out.items()}


def _tracks_by_camera(svc: VSearch) -> dict[str, set[tuple[int, int]]]:
    """Each camera's distinct tracks in the catalog."""
    out: dict[str, set[tuple[int, int]]] = {}
    for x in svc.store.catalog.sightings(svc.store.index.ids().tolist()).values():
        out.setdefault(x.camera_id, set()).add((x.video_id, x.track_id))
    return out


@pytest.mark.slow
def test_track_level_returns_each_track_once_with_its_mean_score(demo_service: VSearch) -> None:
    settings = demo_service.settings.model_copy(update={"search_track_level": True, "search_camera_norm": False})
    q = _query(demo_service)
    qv = demo_service.embedder.embed([q.crop_rgb])[0]
    means = _vectors_by(demo_service, lambda x: (x.video_id, x.track_id))
    res = search(q, SearchFilters(top_k=50), demo_service.embedder, demo_service.store, settings)
    tracks = [(h.sighting.video_id, h.sighting.track_id) for h in res.hits]
    assert len(tracks) > 3 and len(tracks) == len(set(tracks))  # each track once
    assert len(res.clips) == len(res.hits)  # one clip per track
    for h, t in zip(res.hits, tracks):
        assert h.score == pytest.approx(float(l2n(means[t])[0] @ qv), abs=1e-4)
    assert [c.score for c in res.clips] == sorted((c.score for c in res.clips), reverse=True)
    # shown by its crop most like the query: the plain search's best hit is the best track's sighting
    crops = demo_service.settings.model_copy(update={"search_track_level": False, "search_camera_norm": False})
    plain = search(q, SearchFilters(top_k=50), demo_service.embedder, demo_service.store, crops)
    best = plain.hits[0].sighting
    assert any(h.sighting.id == best.id for h in res.hits if (h.sighting.video_id, h.sighting.track_id) == (best.video_id, best.track_id))
    # the filters stay inside the search
    t0 = min(h.sighting.ts_s for h in res.hits)
    inside = search(q, SearchFilters(from_ts_s=t0 + 60, to_ts_s=t0 + 90, top_k=50), demo_service.embedder,
                    demo_service.store, settings)  # fmt: skip
    assert inside.hits and all(t0 + 60 <= h.sighting.ts_s <= t0 + 90 for h in inside.hits)
    nowhere = search(q, SearchFilters(cameras=("elsewhere",)), demo_service.embedder, demo_service.store, settings)
    assert nowhere.hits == []


@pytest.mark.slow
def test_camera_means_follow_the_catalog_and_normalise_the_search(demo_service: VSearch, tmp_path: Path) -> None:
    svc = private_copy(demo_service, tmp_path)
    try:
        store, cat = svc.store, svc.store.catalog
        means = store.camera_means(["lobby", "hall"], sample=10**6, max_age_s=0)
        assert set(means) == {"lobby"}  # a camera with no sighting has no mean
        np.testing.assert_allclose(means["lobby"], _vectors_by(svc, lambda x: x.camera_id)["lobby"], atol=1e-5)

        # a second camera's footage added: its mean appears, the first camera's is unchanged
        clip = sample_excerpt(tmp_path / "hall.mp4", 20.0)
        rep = svc.ingest([IngestItem(clip, "hall", parse_time(DEMO_START) + 3600)])[0]
        assert rep.status == "ingested" and rep.sightings_added > 0, rep.error
        truth = _vectors_by(svc, lambda x: x.camera_id)
        means = store.camera_means(["lobby", "hall"], sample=10**6, max_age_s=0)
        np.testing.assert_allclose(means["hall"], truth["hall"], atol=1e-5)
        np.testing.assert_allclose(means["lobby"], truth["lobby"], atol=1e-5)
        # a bounded sample: the camera's latest vectors, by time
        latest = store.camera_means(["hall"], sample=5, max_age_s=0)["hall"]
        np.testing.assert_allclose(latest, cat.camera_sample(svc.embedder.name, "hall", 5)[0].mean(0), atol=1e-5)

        # every camera's vectors (camera None): what an uploaded query, which has no camera, is centred by
        everything = _vectors_by(svc, lambda x: "all")["all"]
        np.testing.assert_allclose(store.camera_means([None], sample=10**6, max_age_s=0)[None], everything, atol=1e-5)

        # the search, normalised: each hit's score is the query minus the mean of every camera against its crop
        # minus its camera's mean
        settings = svc.settings.model_copy(update={"search_camera_norm": True, "search_track_level": False,
                                                   "camera_mean_sample": 10**6, "camera_mean_max_age_s": 0,
                                                   "camera_norm_min_tracks": 1})  # fmt: skip
        q = _query(svc)
        raw_q = svc.embedder.embed([q.crop_rgb])[0]
        qv = l2n(raw_q - everything)[0]
        res = search(q, SearchFilters(top_k=50), svc.embedder, store, settings)
        assert {h.sighting.camera_id for h in res.hits} == {"lobby", "hall"}
        for h in res.hits[:10]:
            v = cat.embeddings(np.array([h.sighting.id]))[1][0]
            assert h.score == pytest.approx(float(l2n(v - truth[h.sighting.camera_id])[0] @ qv), abs=1e-4)

        # a camera's mean counts only from camera_norm_min_tracks distinct tracks; one camera short of them and
        # no camera is centred: the search scores raw cosines
        tracks = {c: len(v) for c, v in _tracks_by_camera(svc).items()}
        assert tracks["lobby"] > tracks["hall"] >= 1
        gate = tracks["hall"] + 1
        assert set(store.camera_means(["lobby", "hall"], 10**6, 0, gate)) == {"lobby"}
        res = search(q, SearchFilters(top_k=50), svc.embedder, store, settings.model_copy(update={"camera_norm_min_tracks": gate}))
        assert {h.sighting.camera_id for h in res.hits} == {"lobby", "hall"}
        for h in res.hits[:10]:
            v = cat.embeddings(np.array([h.sighting.id]))[1][0]
            assert h.score == pytest.approx(float(v @ raw_q), abs=1e-4)

        # the second camera's video removed: its mean goes with it (after max_age_s: a cached mean is kept until then)
        video = rep.video_id
        assert video is not None
        store.delete_video(video)
        assert "hall" in store.camera_means(["hall"], sample=10**6, max_age_s=3600)
        assert store.camera_means(["hall"], sample=10**6, max_age_s=0) == {}
        res = search(q, SearchFilters(top_k=50), svc.embedder, store, settings)
        assert res.hits and {h.sighting.camera_id for h in res.hits} == {"lobby"}
    finally:
        svc.close()


def test_eval_footage_takes_the_embedder_as_a_parameter(tmp_path: Path) -> None:
    from .conftest import cli_here, dataset

    seq = dataset("mot17-mini") / "train" / "MOT17-09-FRCNN"
    r = cli_here("eval-footage", str(seq), "--embedder", "nope", "--data-dir", str(tmp_path / "d"))
    assert r.returncode != 0 and "unknown embedder 'nope'" in r.stderr and "Traceback" not in r.stderr
