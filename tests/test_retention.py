"""Retention with legal hold (issue 28, part 2): what is older than the limit goes (catalog rows, files, index
entries), what an open case holds stays until the case is closed with a reason, every batch is audited with its
counts, --dry-run changes nothing, and a run killed at any point resumes without orphans."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.audit import audit_filter
from vsearch.catalog import Catalog, Checkpoint, NewCaseItem, NewSighting
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.evidence import keep_query_image
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.video import write_mp4

from .conftest import DEMO_START, SAMPLE_VIDEO, cli_here, small_service

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
DAY = 86_400.0


# -- the catalog's side, on both engines ------------------------------------------------------------------------


def _video(cat: Catalog, name: str, start: float, n: int, dim: int = 8) -> tuple[int, list[int]]:
    rec = cat.begin_video("cam", f"/footage/{name}.mp4", hashlib.sha256(name.encode()).hexdigest(), start, 10.0, 10 * n,
                          (640, 480), "emb")  # fmt: skip
    vec = np.ones(dim, np.float32) / np.sqrt(dim)
    rows = [NewSighting("cam", 1, start + t, float(t), (1, 2, 3, 4), 0.9, 0.5, f"thumbs/{name}-{t}.jpg", vec) for t in range(n)]
    boxes = [(1, float(t), (1.0, 2.0, 3.0, 4.0), 0.9) for t in range(n)]
    return rec.id, cat.commit_chunk(rec.id, Checkpoint(rows, boxes, float(n), n, True))


def test_the_catalog_expires_what_no_open_case_holds(cat: Catalog) -> None:
    t0 = 1_700_000_000.0
    old, old_ids = _video(cat, "old", t0, 20)  # 20 s, all before the cutoff
    held, held_ids = _video(cat, "held", t0 + 100, 20)  # before the cutoff, a case holds 5..8 s (pad 1 s: 4..9)
    new, new_ids = _video(cat, "new", t0 + 10_000, 5)
    case = cat.create_case("c", "", "ivan")
    cat.add_case_items(case.id, [NewCaseItem("clip", "x", "cam", held, 1, t0 + 105, t0 + 108, 5.0, 8.0, held_ids[6])], "ivan")
    cutoff, pad = t0 + 5_000, 1.0
    assert cat.count_expired("cam", cutoff, pad) == (1, 20 + 14, 20 + 14)
    assert cat.expired_videos("cam", cutoff) == [(old, "/footage/old.mp4")]
    seq = cat.last_seq()
    with cat.transaction():
        assert cat.delete_expired_video(old)[:2] == (20, 20)
        rows = cat.expired_sightings("cam", cutoff, pad, 1000)
        assert sorted(i for i, _ in rows) == sorted(held_ids[:4] + held_ids[10:])
        assert cat.delete_sightings([i for i, _ in rows]) == 14
        assert cat.delete_expired_boxes("cam", cutoff, pad) == 14
        cat.journal_files(["thumbs/a.jpg", "thumbs/a.jpg", "thumbs/b.jpg"])
    removed = [i for i, v in cat.changes_since(seq, "emb").ops if v is None]
    assert sorted(removed) == sorted(old_ids + held_ids[:4] + held_ids[10:])  # the index follows the log
    assert sorted(cat.sightings(held_ids + new_ids)) == sorted(held_ids[4:10] + new_ids)
    assert [p for p, *_ in cat.boxes_between(held, 0, 100)] == [1] * 6
    assert cat.journaled_files() == ["thumbs/a.jpg", "thumbs/b.jpg"]
    assert cat.count_expired("cam", cutoff, pad) == (0, 0, 0)
    cat.close_case(case.id, "ivan", "court closed it")
    assert cat.case(case.id).closed_at is not None and cat.held_spans() == {}
    assert cat.count_expired("cam", cutoff, pad) == (1, 6, 6)


# -- the whole run, through the service ---------------------------------------------------------------------------


def _add_video(svc: VSearch, path: Path, start: float, visits: int, name: str) -> int:
    """A video at `path` registered on camera 'lobby' from `start`, with one sighting (and crop file) per second
    for `visits` seconds on track 1, stored through the store."""
    info_fps, frames = 10.0, 10 * visits
    rec = svc.catalog.begin_video("lobby", str(path), hashlib.sha256(path.read_bytes()).hexdigest(), start, info_fps,
                                  frames, (640, 360), svc.embedder.name)  # fmt: skip
    crop_bgr = cv2.imread(str(QUERY))
    vec = svc.embedder.embed([np.ascontiguousarray(crop_bgr[:, :, ::-1])])[0]
    rows, boxes = [], []
    folder = svc.settings.thumbs_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(visits):
        thumb = folder / f"{t}.jpg"
        cv2.imwrite(str(thumb), crop_bgr)
        rows.append(NewSighting("lobby", 1, start + t, float(t), (300, 100, 420, 400), 0.9, 0.5, str(thumb.relative_to(svc.settings.data_dir)), vec))
        boxes.append((1, float(t), (300.0, 100.0, 420.0, 400.0), 0.9))
    svc.store.commit_chunk(rec.id, Checkpoint(rows, boxes, float(visits), visits, True))
    return rec.id


def _recording(path: Path, frames: int) -> Path:
    """A small recorded segment (grey frames at 10 fps; its own bytes, so its own video)."""
    write_mp4(path, ((i, np.full((360, 640, 3), 40 + frames, np.uint8)) for i in range(frames)), 10.0)
    return path


def build(data: Path) -> dict:
    """The small catalog (the sample clip on 'lobby' from DEMO_START, outside the data dir) plus a recording in the
    data dir an hour later (old too) and one from yesterday; an open case holding visit 3 of the sample clip with
    its query image; another query image no case cites; rendered clips of visit 3 (held) and visit 1 (not)."""
    svc = small_service(data)
    try:
        start = parse_time(DEMO_START)
        rec = data / "recordings" / "lobby"
        rec.mkdir(parents=True)
        old_rec = _add_video(svc, _recording(rec / "old.mp4", 40), start + 3600, 4, "old")
        new_rec = _add_video(svc, _recording(rec / "new.mp4", 30), time.time() - DAY, 3, "new")
        sample = next(v.id for v in svc.catalog.videos() if v.path == str(SAMPLE_VIDEO))
        s3 = svc.catalog.track_sightings(sample, 3, 0, 1e9)
        s1 = svc.catalog.track_sightings(sample, 1, 0, 1e9)
        held_clip, other_clip = svc.clip_id_for(s3[len(s3) // 2].id), svc.clip_id_for(s1[0].id)
        case = svc.casework.create("bike theft", "", "ivan")
        svc.casework.add(case.id, [held_clip], "ivan", query_image=QUERY.read_bytes())
        stray = keep_query_image(svc.settings, cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
        for f in (data / "queries").iterdir():
            os.utime(f, (start, start))  # both query images are old
        for name in (f"{held_clip}.mp4", f"{other_clip}.mp4", f"sighting-{s1[0].id}.jpg"):  # as the clip cache names them
            (svc.settings.clips_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (svc.settings.clips_dir / name).write_bytes(b"rendered")
        return {"case": case.id, "sample": sample, "old_rec": old_rec, "new_rec": new_rec, "held_clip": held_clip,
                "other_clip": other_clip, "frame": f"sighting-{s1[0].id}.jpg", "stray": stray,
                "query": hashlib.sha256(QUERY.read_bytes()).hexdigest(), "held_span": s3}  # fmt: skip
    finally:
        svc.close()


def consistent(data: Path) -> VSearch:
    """A fresh service on `data` (index loaded and caught up from the catalog's log) after checking that nothing is
    orphaned: every crop file belongs to a sighting and every sighting has its crop, no file waits in the journal,
    and the index holds exactly the catalog's sightings."""
    svc = VSearch(Settings(data_dir=data, embedder="hsv-parts"))
    ids = {int(i) for i in svc.catalog.sighting_ids(svc.embedder.name)}
    thumbs = {s.thumb_path for s in svc.catalog.sightings(ids).values()}
    on_disk = {str(p.relative_to(data)) for p in (data / "thumbs").rglob("*.jpg")}
    assert on_disk == thumbs, (on_disk - thumbs, thumbs - on_disk)
    assert svc.catalog.journaled_files() == []
    assert {int(i) for i in svc.store.index.ids()} == ids
    return svc


def test_retention_keeps_what_an_open_case_holds_and_deletes_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = build(data)
    env = {"VSEARCH_RETENTION_DAYS": "30", "VSEARCH_EMBEDDER": "hsv-parts"}
    before = consistent(data)
    n_before = before.catalog.count_sightings()
    before.close()
    dry = cli_here("retention", "run", "--dry-run", "--data-dir", str(data), env=env)
    assert dry.returncode == 0, dry.stderr
    assert "lobby: would delete before" in dry.stdout and "1 videos" in dry.stdout
    after_dry = consistent(data)
    assert after_dry.catalog.count_sightings() == n_before  # a dry run deletes nothing
    after_dry.close()

    r = cli_here("retention", "run", "--data-dir", str(data), env=env)
    assert r.returncode == 0, r.stderr
    svc = consistent(data)
    try:
        videos = {v.id for v in svc.catalog.videos()}
        assert videos == {w["sample"], w["new_rec"]}  # the old recording went whole; the held video stays
        assert not (data / "recordings" / "lobby" / "old.mp4").exists() and (data / "recordings" / "lobby" / "new.mp4").exists()
        assert SAMPLE_VIDEO.exists()
        held = {s.id for s in w["held_span"]}
        left = set(svc.catalog.sighting_ids(svc.embedder.name).tolist())
        new = {s.id for s in svc.catalog.track_sightings(w["new_rec"], 1, 0, 1e9)}
        assert held <= left and new <= left and left - held - new == set()  # everything else of the sample clip went
        assert (data / "clips" / f"{w['held_clip']}.mp4").exists()
        assert not (data / "clips" / f"{w['other_clip']}.mp4").exists() and not (data / "clips" / w["frame"]).exists()
        assert list((data / "queries").glob(f"{w['query']}.*")) and not list((data / "queries").glob(f"{w['stray']}.*"))
        boxes = svc.catalog.boxes_between(w["sample"], 0, 1e9)
        item = svc.catalog.case_items(w["case"])[0]
        pad = svc.settings.clip_pad_s
        assert boxes and all(item.start_pts_s - pad <= pts <= item.end_pts_s + pad for _, pts, _, _ in boxes)
        batches = svc.audit.find(audit_filter(action="retention.delete"), 100)
        assert sum(b.get("sightings", 0) for b in batches) == n_before - len(left)
        assert sum(b.get("videos", 0) for b in batches) == 1 and all(b["key_name"].startswith("cli:") for b in batches)
        # a clip of the held span is still made from its video and rows (the cached file removed, to render it)
        (data / "clips" / f"{w['held_clip']}.mp4").unlink()
        assert svc.clip_file(w["held_clip"]).stat().st_size > 1000
    finally:
        svc.close()

    bad = cli_here("case", "close", str(w["case"]), "--reason", " ", "--data-dir", str(data), env=env)
    assert bad.returncode == 2 and "needs a reason" in bad.stderr
    ok = cli_here("case", "close", str(w["case"]), "--reason", "court closed it", "--data-dir", str(data), env=env)
    assert ok.returncode == 0, ok.stderr
    r = cli_here("retention", "run", "--data-dir", str(data), env=env)
    assert r.returncode == 0 and "outside the data dir" in r.stdout  # the sample clip's file is not ours: it stays
    assert SAMPLE_VIDEO.exists()
    svc = consistent(data)
    try:
        assert {v.id for v in svc.catalog.videos()} == {w["new_rec"]}  # the hold released: the sample clip's rows went
        assert not (data / "clips" / f"{w['held_clip']}.mp4").exists() and not list((data / "queries").iterdir())
        assert svc.audit.find(audit_filter(action="case.close"), 10)[0]["reason"] == "court closed it"
    finally:
        svc.close()


def test_a_camera_limit_overrides_the_default_and_none_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    build(data)
    env = {"VSEARCH_EMBEDDER": "hsv-parts", "VSEARCH_RETENTION_DAYS": None}
    r = cli_here("retention", "run", "--data-dir", str(data), env=env)
    assert r.returncode == 0 and "nothing expires" in r.stdout
    assert cli_here("cameras", "set", "nowhere", "--retention-days", "3", "--data-dir", str(data), env=env).returncode == 2
    assert cli_here("cameras", "set", "lobby", "--retention-days", "100000", "--data-dir", str(data), env=env).returncode == 0
    r = cli_here("retention", "run", "--json", "--data-dir", str(data), env=env)
    assert r.returncode == 0 and '"sightings": 0' in r.stdout  # 100,000 days: nothing is that old
    assert cli_here("cameras", "set", "lobby", "--retention-days", "2", "--data-dir", str(data), env=env).returncode == 0
    assert cli_here("retention", "run", "--data-dir", str(data), env=env).returncode == 0
    svc = consistent(data)
    try:
        assert svc.catalog.camera_retention() == {"lobby": 2.0}
        assert len(svc.catalog.videos()) == 2  # the held one and yesterday's
    finally:
        svc.close()


# -- a run killed in the middle ------------------------------------------------------------------------------------


@pytest.mark.slow  # as the fault suite (tests/test_faults.py): real processes, SIGKILLed
@pytest.mark.parametrize("kill_at", ["retention.batch:2", "retention.commit:1", "retention.unlink:2"])
def test_a_killed_run_resumes_without_orphans(tmp_path: Path, kill_at: str) -> None:
    data = tmp_path / "data"
    w = build(data)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VSEARCH_RETENTION_DAYS": "30", "VSEARCH_EMBEDDER": "hsv-parts",
           "VSEARCH_FAULT_KILL_AT": kill_at}  # fmt: skip
    cmd = [sys.executable, "-m", "vsearch.cli", "retention", "run", "--data-dir", str(data)]
    killed = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, (killed.returncode, killed.stdout, killed.stderr)
    if kill_at.startswith(("retention.commit", "retention.unlink")):  # committed rows whose files wait in the journal
        db = sqlite3.connect(data / "catalog.sqlite")
        assert db.execute("SELECT COUNT(*) FROM retention_files").fetchone()[0] > 0
        db.close()
    env.pop("VSEARCH_FAULT_KILL_AT")
    resumed = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    svc = consistent(data)
    try:
        assert {v.id for v in svc.catalog.videos()} == {w["sample"], w["new_rec"]}
        assert not (data / "recordings" / "lobby" / "old.mp4").exists()
        held = {s.id for s in w["held_span"]}
        new = {s.id for s in svc.catalog.track_sightings(w["new_rec"], 1, 0, 1e9)}
        assert set(svc.catalog.sighting_ids(svc.embedder.name).tolist()) == held | new
        assert svc.audit.verify().ok
    finally:
        svc.close()



def test_api_close_needs_a_reason_and_retention_is_for_admins(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api import create_app
    from vsearch.config import ApiKey

    svc = small_service(tmp_path / "data")
    admin, ivan = {"X-API-Key": "admin-key-0123456789abcdef"}, {"X-API-Key": "ivan-key-0123456789abcdef"}
    settings = svc.settings.model_copy(update={"api_keys": [ApiKey(name="ada", key=admin["X-API-Key"], role="admin"),
                                                           ApiKey(name="ivan", key=ivan["X-API-Key"], role="investigator")]})  # fmt: skip
    with TestClient(create_app(settings, svc)) as c:
        case_id = c.post("/cases", json={"name": "held"}, headers=ivan).json()["id"]
        assert c.post(f"/cases/{case_id}/close", json={}, headers=ivan).status_code == 422
        assert c.post(f"/cases/{case_id}/close", json={"reason": "\x1b[2J"}, headers=ivan).status_code == 400
        closed = c.post(f"/cases/{case_id}/close", json={"reason": "done"}, headers=ivan)
        assert closed.status_code == 200 and closed.json()["close_reason"] == "done" and closed.json()["closed_at"]
        assert c.post(f"/cases/{case_id}/close", json={"reason": "again"}, headers=ivan).status_code == 400
        added = c.post(f"/cases/{case_id}/items", data={"ids": "1"}, headers=ivan)
        assert added.status_code == 400 and "closed" in added.json()["detail"]
        assert c.post("/retention/run", params={"dry_run": "true"}, headers=ivan).status_code == 403
        assert c.put("/cameras/lobby/retention", json={"days": 0}, headers=admin).status_code == 422
        assert c.put("/cameras/nowhere/retention", json={"days": 5}, headers=admin).status_code == 404
        assert c.put("/cameras/lobby/retention", json={"days": 5}, headers=admin).status_code == 200
        dry = c.post("/retention/run", params={"dry_run": "true"}, headers=admin).json()
        assert dry["dry_run"] and dry["cameras"][0]["camera_id"] == "lobby" and dry["cameras"][0]["sightings"] > 0
        assert svc.catalog.count_sightings() > 0  # a dry run deletes nothing
        log = c.get("/audit", params={"action": "case.close"}, headers=admin).json()
        assert [e["reason"] for e in log] == ["done"]
    svc.close()
