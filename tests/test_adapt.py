"""`vsearch adapt`: real footage on two cameras through ingest -> adapt -> search, the switch of embedder (never
mixed, followed by another node), rollback to the very same vectors, the pseudo-label rules, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.adapt import AdaptOptions, adapt, rollback
from vsearch.adapt.links import Tracklet, cluster_tracklets
from vsearch.config import ApiKey, Settings
from vsearch.errors import IndexStateError, InputError
from vsearch.ingest import IngestItem
from vsearch.search import SearchFilters
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.video import probe, sample_frames, write_mp4

from .conftest import DEMO_START, SAMPLE_VIDEO

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
ADMIN = "admin-key-0123456789abcdef"
INVESTIGATOR = "investigator-key-0123456789"


# -- the pseudo-label rules (no model) ----------------------------------------------------------------------------
def _t(camera: str, t0: float, t1: float) -> Tracklet:
    return Tracklet(camera, t0, t1, [])


def _unit(rows: list[list[float]]) -> np.ndarray:
    x = np.array(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_mutual_neighbours_across_cameras_are_joined() -> None:
    tracks = [_t("a", 0, 1), _t("a", 0, 1), _t("b", 5, 6), _t("b", 5, 6)]
    tf = _unit([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0.1, 0.9, 0]])
    labels, stats = cluster_tracklets(tf, tracks, 0.0, truth=[1, 2, 1, 2])
    assert labels[0] == labels[2] and labels[1] == labels[3] and labels[0] != labels[1]
    assert stats["link_precision"] == 1.0 and stats["clusters"] == 2


def test_tracks_of_one_camera_at_the_same_time_are_never_one_person() -> None:
    # a0 and a1 overlap in time on camera a; both are b0's best match in turn: only one may join it
    tracks = [_t("a", 0, 10), _t("a", 5, 15), _t("b", 20, 30)]
    tf = _unit([[1, 0.05, 0], [1, -0.05, 0], [1, 0, 0.01]])
    labels, _ = cluster_tracklets(tf, tracks, -1.0, same=[(1, 2)])
    assert labels[1] == labels[2] and labels[0] != labels[2]


def test_investigators_decide_over_the_clustering() -> None:
    tracks = [_t("a", 0, 1), _t("b", 5, 6), _t("c", 9, 10)]
    tf = _unit([[1, 0, 0], [1, 0.01, 0], [0, 0, 1]])
    labels, _ = cluster_tracklets(tf, tracks, 0.0, same=[(0, 2)], different=[(0, 1)])
    assert labels[0] == labels[2] and labels[0] != labels[1]


def test_investigators_marks_and_case_items_become_pairs_of_tracks(tmp_path: Path) -> None:
    from vsearch.adapt import investigator_pairs
    from vsearch.catalog import Mark, NewCaseItem, SqliteCatalog

    cat = SqliteCatalog(tmp_path / "c.sqlite")
    of_sighting = {101: 0, 102: 1, 103: 2, 104: 3}  # sighting -> track index
    of_track = {(1, 7): 0, (2, 9): 4, (3, 5): 5}  # (video, track) -> track index
    cat.add_marks([Mark(102, "same", "q1", "ivan"), Mark(101, "same", "q1", "ivan"), Mark(103, "different", "q1", "ivan"),
                   Mark(104, "same", "q2", "ivan"), Mark(999, "same", "q2", "ivan")])  # fmt: skip
    case = cat.create_case("c", "", "ivan")
    items = [NewCaseItem("clip", f"c{i}", "cam", v, t, 0, 1, 0, 1, 1, "q3") for i, (v, t) in enumerate(of_track)]
    cat.add_case_items(case.id, items, "ivan")
    same, different = investigator_pairs(cat, of_sighting, of_track)
    assert set(same) == {(0, 1), (0, 4), (0, 5)} and set(different) == {(0, 2), (1, 2)}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"budget_s": 0}, "budget"), ({"budget_s": float("nan")}, "budget"), ({"rounds": 0}, "rounds"),
     ({"max_crops_per_track": 0}, "crops per track"), ({"threads": 0}, "thread")],
)  # fmt: skip
def test_unusable_options_are_refused_with_a_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        AdaptOptions(**kwargs)


# -- the switch in the catalog, on each engine ----------------------------------------------------------------------
def test_a_switch_replaces_every_vector_at_once_and_followers_and_rollback_keep_up(cat, reopen, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vsearch.catalog import Checkpoint, NewSighting
    from vsearch.store import Store

    rng = np.random.default_rng(0)
    old_x = rng.standard_normal((6, 8)).astype(np.float32)
    vid = cat.begin_video("cam", "/a.mp4", "a", 0.0, 10.0, 100, (64, 64), "e").id
    rows = [NewSighting("cam", 1 + i // 3, float(i), float(i), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", v) for i, v in enumerate(old_x)]
    old_store = Store(cat, tmp_path / "index", "e", 8)
    ids = old_store.commit_chunk(vid, Checkpoint(rows, [], 1.0, 1, True))
    new_x = rng.standard_normal((6, 8)).astype(np.float32)
    other = reopen()  # the adapting process
    other.stage_vectors("e2", ids[:3], new_x[:3])
    with pytest.raises(IndexStateError, match="3 sightings have no e2 vector"):
        other.switch_embedder("e", "e2", "adapt", "test")
    other.stage_vectors("e2", ids[3:], new_x[3:])
    assert other.switch_embedder("e", "e2", "adapt", "test") == 6
    assert cat.embedders() == ["e2"] and cat.count_sightings("e") == 0
    assert np.array_equal(cat.embeddings(np.array(ids))[1], new_x)
    old_store.catch_up()
    assert old_store.ntotal == 0  # a follower of the old embedder drops its vectors, never keeps stale ones
    new_store = Store(cat, tmp_path / "index", "e2", 8)
    assert sorted(new_store.index.ids()) == sorted(ids)
    assert list(new_store.search(new_x[4], 1).ids) == [ids[4]]
    assert other.switch_embedder("e2", "e", "rollback", "test") == 6  # the old vectors were kept staged
    assert np.array_equal(cat.embeddings(np.array(ids))[1], old_x)
    new_store.catch_up()
    old_store.catch_up()
    assert new_store.ntotal == 0 and sorted(old_store.index.ids()) == sorted(ids)
    assert [(s.from_embedder, s.to_embedder, s.reason) for s in cat.switches()] == [("e", "e2", "adapt"), ("e2", "e", "rollback")]


# -- real footage -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the network vsearch trains (ImageNet-started, first 7 blocks frozen), as training writes."""
    import torch

    from vsearch.reidnet import ReidNet, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base") / "base.pt"
    save_checkpoint(ReidNet(1, frozen=7), path)
    return path


@pytest.fixture(scope="module")
def two_cameras(demo_service, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The session's ingested sample clip (camera "lobby") plus its first 60 s re-encoded with a warm colour cast
    and ingested as camera "hall" an hour later: the same visitors on a second camera."""
    root = tmp_path_factory.mktemp("adapt")
    shutil.copytree(demo_service.settings.data_dir, root / "data")
    info = probe(SAMPLE_VIDEO)
    cast = np.array([0.8, 1.0, 1.2], np.float32)  # BGR: warmer
    frames = ((f.index, np.clip(f.image_bgr * cast, 0, 255).astype(np.uint8))
              for f in sample_frames(info, "x", 0, info.fps) if f.pts_s < 60)  # fmt: skip
    write_mp4(root / "hall.mp4", frames, info.fps)
    svc = VSearch(demo_service.settings.model_copy(update={"data_dir": root / "data"}), demo_service.detector)
    r = svc.ingest([IngestItem(root / "hall.mp4", "hall", parse_time(DEMO_START) + 3600)])[0]
    assert r.status == "ingested" and r.sightings_added > 0, r.error
    svc.close()
    return root / "data"


def _copy(data: Path, folder: Path, detector, **settings) -> VSearch:  # type: ignore[no-untyped-def]
    shutil.copytree(data, folder / "data")
    return VSearch(Settings(data_dir=folder / "data", **settings), detector)


def _vectors(svc: VSearch) -> tuple[np.ndarray, np.ndarray]:
    ids = np.sort(np.concatenate([i for i, _ in svc.catalog.iter_embeddings(svc.embedder.name)]))
    return svc.catalog.embeddings(ids)


@pytest.mark.slow
def test_ingest_adapt_search_and_rollback_on_two_cameras(two_cameras: Path, base_checkpoint: Path, demo_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc = _copy(two_cameras, tmp_path, demo_service.detector)
    other_node = VSearch(svc.settings, demo_service.detector)  # another API node on the same data
    before_ids, before_vecs = _vectors(svc)
    before = svc.search(QUERY.read_bytes(), SearchFilters())
    assert before.hits and other_node.search(QUERY.read_bytes(), SearchFilters()).hits
    old = svc.embedder.name

    report = adapt(svc, AdaptOptions(budget_s=60, rounds=2, base=base_checkpoint, max_steps=3, threads=1), "test")

    new = report.embedder
    assert new == "base-adapt-1" and report.base == "base" and report.cameras == 2 and report.tracks >= 8  # 6 visitors in the lobby, 3 in the hall
    assert report.switch.switched == report.switch.reembedded == len(before_ids)
    assert svc.catalog.embedders() == [new] and svc.catalog.count_sightings(new) == len(before_ids)  # never mixed
    v = svc.catalog.embedder_version(new)
    assert v is not None and v.base == "base" and v.record["adapted_from_vectors_of"] == old
    assert v.record["footage"]["cameras"] == ["hall", "lobby"]
    from vsearch.weights import sha256_file

    assert sha256_file(svc.settings.data_dir / v.path) == v.sha256 == report.sha256
    ids, vecs = _vectors(svc)
    assert np.array_equal(ids, before_ids) and not np.allclose(vecs, before_vecs)
    after = svc.search(QUERY.read_bytes(), SearchFilters())
    assert after.hits and svc.health()["embedder"] == new and svc.store.ntotal == len(before_ids)
    # the other node notices the switch at its next search and answers from the new vectors
    hits = other_node.search(QUERY.read_bytes(), SearchFilters()).hits
    assert other_node.embedder.name == new
    assert [(h.sighting.id, round(h.score, 4)) for h in hits] == [(h.sighting.id, round(h.score, 4)) for h in after.hits]
    # a fresh process opens the catalog with the adapted model, checked against its sha256
    assert VSearch(svc.settings, demo_service.detector).embedder.name == new

    back = rollback(svc, "test")

    assert (back.embedder, back.previous, back.reembedded) == (old, new, 0)
    assert svc.catalog.embedders() == [old]
    ids, vecs = _vectors(svc)
    assert np.array_equal(ids, before_ids) and np.array_equal(vecs, before_vecs)  # the very same vectors
    again = svc.search(QUERY.read_bytes(), SearchFilters())
    assert [(h.sighting.id, h.score) for h in again.hits] == [(h.sighting.id, h.score) for h in before.hits]
    actions = [json.loads(line)["action"] for line in svc.settings.audit_log_path.read_text().splitlines()]
    assert "adapt" in actions and "adapt-rollback" in actions
    with pytest.raises(InputError, match="nothing to roll back"):
        rollback(svc, "test")
    other_node.close()
    svc.close()


@pytest.mark.slow
def test_the_switch_waits_for_sightings_ingested_meanwhile_and_never_mixes(two_cameras: Path, demo_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc = _copy(two_cameras, tmp_path, demo_service.detector)
    cat, old = svc.catalog, svc.embedder.name
    ids = cat.sighting_ids(old)
    cat.stage_vectors("other", ids[:-1].tolist(), np.ones((len(ids) - 1, 256), np.float32) / 16)
    with pytest.raises(IndexStateError, match="1 sightings have no other vector"):
        cat.switch_embedder(old, "other", "adapt", "test")
    assert cat.embedders() == [old] and cat.count_sightings(old) == len(ids)  # nothing changed
    svc.close()


def test_adapting_an_empty_catalog_is_refused(tmp_path: Path) -> None:
    svc = VSearch(Settings(data_dir=tmp_path / "d"))
    with pytest.raises(InputError, match="no sightings to learn from"):
        adapt(svc, AdaptOptions(budget_s=5))
    with pytest.raises(InputError, match="nothing to roll back"):
        rollback(svc)
    svc.close()


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsearch.cli", "adapt", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [([], "no sightings to learn from"), (["--rollback"], "nothing to roll back"), (["--rounds", "0"], "rounds"),
     (["--budget-s", "nan"], "finite number"), (["--budget-s", "-5"], "budget")],
)  # fmt: skip
def test_cli_bad_input_gives_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = _cli(*args, data_dir=tmp_path / "d")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_api_adapts_for_admins_only_and_audits(two_cameras: Path, base_checkpoint: Path, demo_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    svc = _copy(two_cameras, tmp_path, demo_service.detector, adapt_base=base_checkpoint)
    settings = svc.settings.model_copy(update={"api_keys": [
        ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")]})  # fmt: skip
    with TestClient(create_app(settings, svc)) as c:
        assert c.post("/adapt", json={}, headers={"X-API-Key": INVESTIGATOR}).status_code == 403
        assert c.post("/adapt", json={"rounds": 0}, headers={"X-API-Key": ADMIN}).status_code == 422
        assert c.post("/adapt", json={"base": "/etc/passwd"}, headers={"X-API-Key": ADMIN}).status_code == 422
        r = c.post("/adapt", json={"rollback": True}, headers={"X-API-Key": ADMIN})
        assert r.status_code == 400 and "nothing to roll back" in r.json()["detail"]
        r = c.post("/adapt", json={"budget_s": 30, "rounds": 1, "max_steps": 2}, headers={"X-API-Key": ADMIN})
        assert r.status_code == 202, r.text
        job = r.json()
        busy = c.post("/adapt", json={"budget_s": 30}, headers={"X-API-Key": ADMIN})
        assert busy.status_code in (202, 409)  # 409 while the first one runs
        for _ in range(600):
            job = c.get(r.headers["Location"], headers={"X-API-Key": ADMIN}).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        assert job["status"] == "done", job["errors"]
        assert job["result"]["embedder"].endswith("-adapt-1") and job["by"] == "ada"
        assert c.get("/health").json()["embedder"] == job["result"]["embedder"]
        audit = c.get("/audit", headers={"X-API-Key": ADMIN}).json()
        text = json.dumps(audit)
        assert '"adapt"' in text and "/adapt" in text
    svc.close()


def test_the_default_model_ships_the_checkpoint_adapt_starts_from(tmp_path: Path) -> None:
    """`vsearch adapt` on a catalog of the default embedder needs no --base: the shipped checkpoint is found,
    checked by sha256 (a changed byte is refused), and is the very network behind the shipped ONNX file."""
    import cv2

    from vsearch.adapt import base_checkpoint
    from vsearch.adapt.learn import embed_crops
    from vsearch.embed import CHECKPOINTS, make_embedder
    from vsearch.errors import ModelError
    from vsearch.reidnet import load_checkpoint
    from vsearch.weights import WeightFile

    settings = Settings(data_dir=tmp_path / "data")
    svc = VSearch(settings)
    try:
        path, base = base_checkpoint(svc.catalog, settings.embedder, None)
    finally:
        svc.close()
    assert base == settings.embedder and path == CHECKPOINTS[settings.embedder].path
    crop = cv2.imread(str(QUERY))[:, :, ::-1]
    crops = [np.ascontiguousarray(crop), np.ascontiguousarray(crop[:, ::-1])]
    torch_vectors = embed_crops(load_checkpoint(path, 1), crops, 1)
    onnx_vectors = make_embedder(settings).embed(crops)
    assert np.allclose(torch_vectors, onnx_vectors, atol=2e-3), np.abs(torch_vectors - onnx_vectors).max()
    bad = tmp_path / "changed.pt"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        WeightFile(name="changed.pt", sha256=CHECKPOINTS[settings.embedder].sha256, path=bad).verified_path()
