"""Watchlists: entries, alerts written with the sightings they are about, bad input, API roles.

The quick tier runs on the small service (conftest.small_service: the sample clip's catalog with the weight-free
`hsv-parts` embedder, no model loaded); what needs the real models (a real entry over a real ingest, a killed and
resumed ingest) is marked slow."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.catalog import Checkpoint, NewSighting
from vsearch.config import PROJECT_ROOT, ApiKey
from vsearch.errors import InputError, NotFoundError, VSearchError
from vsearch.service import VSearch

from .conftest import DEMO_START, SAMPLE_VIDEO, cli_here, sample_excerpt, small_service, visits

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
ADMIN, IVAN, OLGA = "admin-key-0123456789abcdef", "ivan-key-0123456789abcdef", "olga-key-0123456789abcdef"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    svc = small_service(tmp_path_factory.mktemp("watch") / "data")
    svc.watchlists.matcher.fold_s = 0.0  # one alert per track: the fixed box's hsv-parts vectors are all alike
    yield svc
    svc.close()


def track_sighting(svc: VSearch, track: int) -> int:
    ids = svc.catalog.sighting_ids(svc.embedder.name).tolist()
    return next(i for i in ids if svc.catalog.sighting(i).track_id == track)


def replay_as_camera(svc: VSearch, camera: str, sha: str, into: VSearch | None = None) -> None:
    """Store the small catalog's sightings again as another camera's video, through the store (matching runs):
    `svc`'s own, or `into`'s (another service, e.g. over another catalog)."""
    dst = into or svc
    ids = svc.catalog.sighting_ids(svc.embedder.name)
    old = svc.catalog.sightings(ids.tolist())
    _, vecs = svc.catalog.embeddings(ids)
    rec = dst.catalog.begin_video(camera, "replay", sha, 2e9, 10, 1400, (768, 432), dst.embedder.name)
    rows = [NewSighting(camera, old[int(i)].track_id, 2e9 + old[int(i)].pts_s, old[int(i)].pts_s, old[int(i)].xyxy,
                        0.9, 0.5, old[int(i)].thumb_path, v) for i, v in zip(ids, vecs)]  # fmt: skip
    dst.store.commit_chunk(rec.id, Checkpoint(rows, [], 140, 70, True))


def test_new_sightings_raise_an_alert_in_their_own_transaction_once_per_track(small: VSearch) -> None:
    sid = track_sighting(small, 3)
    e = small.watchlists.add("visitor 3", [], "cli:t", {"role": "cli"}, cameras=[], min_score=0.99, sighting_ids=[sid])
    replay_as_camera(small, "door", "sha-door")
    mine = {v.alert.track_id: v.alert for v in small.watchlists.alerts(entry_id=e.id)}
    assert len(mine) == len(small.watchlists.alerts(entry_id=e.id))  # one alert per track
    best = mine[3]  # the track holding the entry's own crop: its copy is the best crop, score 1
    assert best.camera_id == "door" and best.score > 0.9999 and best.ts_s == 2e9 + small.catalog.sighting(sid).pts_s
    n = len(mine)
    # paused: the next video raises nothing; the change reached the matcher through the version counter
    small.watchlists.set_status(e.id, "paused", "cli:t", {"role": "cli"})
    replay_as_camera(small, "door", "sha-door-2")
    assert len(small.watchlists.alerts(entry_id=e.id)) == n
    # a matcher that fails inside the commit rolls the sightings back with it: no sighting without its alerts
    before = small.catalog.count_sightings()
    watcher = small.store.watcher

    class Broken:
        def match(self, *a: object) -> list[int]:
            raise VSearchError("matcher down")

    small.store.watcher = Broken()
    try:
        with pytest.raises(VSearchError, match="matcher down"):
            replay_as_camera(small, "door", "sha-door-3")
    finally:
        small.store.watcher = watcher
    assert small.catalog.count_sightings() == before
    audit = [r["action"] for r in small.audit.read(50)]
    assert "watchlist.add" in audit and "watchlist.pause" in audit


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sighting_ids": [424242]}, NotFoundError, "no sighting with id 424242"),
        ({"images": [b"suspect: tall, red jacket"]}, InputError, "expected an image"),
        ({"min_score": 0.0}, InputError, "threshold in (0, 1]"),
        ({"min_score": 1.5}, InputError, "threshold in (0, 1]"),
        ({"min_score": float("nan")}, InputError, "threshold in (0, 1]"),
        ({"expires": "2020-01-01T00:00:00"}, InputError, "is in the past"),
        ({"expires": "next week"}, InputError, "expected an ISO 8601 time"),
        ({"cameras": ["lobyy"]}, NotFoundError, "unknown camera 'lobyy'"),
        ({"case_id": 999}, NotFoundError, "no case with id 999"),
        ({"name": "  "}, InputError, "expected a name"),
        ({"name": "x\x1b]0;owned\x07"}, InputError, "control character"),
        ({"sighting_ids": []}, InputError, "at least one image"),
    ],
)
def test_bad_entries_are_refused_with_a_reason(small: VSearch, kwargs: dict, error: type, message: str) -> None:
    args = {"name": "x", "images": [], "by": "cli:t", "context": {"role": "cli"}, "sighting_ids": [track_sighting(small, 1)]}
    before = len(small.watchlists.entries())
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]").replace("[", r"\[")):
        small.watchlists.add(**{**args, **kwargs})
    assert len(small.watchlists.entries()) == before


def cli(*args: str, data_dir: Path, process: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI on `data_dir` with the small catalog's embedder (and `env`): in this process, or as `python -m vsearch.cli`."""
    if not process:
        return cli_here(*args, "--data-dir", str(data_dir), env={"VSEARCH_EMBEDDER": "hsv-parts", **(env or {})})
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VSEARCH_EMBEDDER": "hsv-parts", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vsearch.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip


def test_the_cli_adds_lists_pauses_and_acknowledges(small: VSearch) -> None:
    d = small.settings.data_dir
    sid = track_sighting(small, 2)
    r = cli("watchlist", "add", "visitor 2", "--sighting", str(sid), "--min-score", "0.99", data_dir=d, process=True)
    assert r.returncode == 0, r.stderr
    entry = r.stdout.strip().splitlines()[-1]
    for args, message in [
        (["watchlist", "add", "x", "--sighting", "424242"], "error: no sighting with id 424242"),
        (["watchlist", "add", "x", str(QUERY.parent / "nope.jpg")], "error: no image file at"),
        (["watchlist", "add", "x", "--sighting", str(sid), "--min-score", "nan"], "finite number"),
        (["watchlist", "add", "x", "--sighting", str(sid), "--expires", "2001-01-01T00:00:00"], "is in the past"),
        (["watchlist", "pause", "9999"], "error: no watchlist entry with id 9999"),
        (["alerts", "ack", "9999"], "error: no alert with id 9999"),
    ]:
        r = cli(*args, data_dir=d)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert cli("watchlist", "pause", entry, data_dir=d).returncode == 0
    r = cli("watchlist", "list", "--json", data_dir=d)
    assert any(e["id"] == int(entry) and e["status"] == "paused" for e in __import__("json").loads(r.stdout))
    assert cli("watchlist", "resume", entry, data_dir=d).returncode == 0
    replay_as_camera(small, "door", "sha-cli")
    r = cli("alerts", "--entry", entry, "--json", data_dir=d)
    alerts = [a for a in __import__("json").loads(r.stdout) if a["track_id"] == 2]
    assert len(alerts) == 1, r.stdout
    r = cli("alerts", "ack", str(alerts[0]["id"]), data_dir=d)
    assert r.returncode == 0 and "confirmed" in r.stdout, r.stderr
    assert small.catalog.watch_entry(int(entry)).vectors == 2  # the confirmed sighting joined the entry
    assert cli("watchlist", "remove", entry, data_dir=d).returncode == 0
    assert cli("watchlist", "show", entry, data_dir=d).returncode == 2


def test_api_investigators_see_their_own_entries_and_admins_all(small: VSearch) -> None:
    settings = small.settings.model_copy(update={"api_keys": [
        ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=IVAN, role="investigator"),
        ApiKey(name="olga", key=OLGA, role="investigator")]})  # fmt: skip
    with TestClient(create_app(settings, small)) as c:
        h = {"ivan": {"X-API-Key": IVAN}, "olga": {"X-API-Key": OLGA}, "ada": {"X-API-Key": ADMIN}}
        sid = track_sighting(small, 4)
        r = c.post("/watchlists", data={"name": "visitor 4", "sighting": str(sid), "min_score": "0.99"}, headers=h["ivan"])
        assert r.status_code == 201, r.text
        entry = r.json()["id"]
        assert r.json()["created_by"] == "ivan" and r.json()["vectors"] == 1
        assert c.post("/watchlists", data={"name": "x"}, headers=h["ivan"]).status_code == 400
        r = c.post("/watchlists", data={"name": "x"}, files={"image": ("a.jpg", b"not an image", "image/jpeg")}, headers=h["ivan"])
        assert r.status_code == 400 and "expected an image" in r.json()["detail"]
        r = c.post("/watchlists", data={"name": "x", "sighting": "424242"}, headers=h["ivan"])
        assert r.status_code == 404 and "424242" in r.json()["detail"]
        r = c.post("/watchlists", data={"name": "x", "sighting": str(sid), "min_score": "7"}, headers=h["ivan"])
        assert r.status_code == 400 and "(0, 1]" in r.json()["detail"]
        assert c.post("/watchlists", data={"name": "x", "sighting": str(sid)}).status_code == 401
        replay_as_camera(small, "door", "sha-api")
        assert [e["id"] for e in c.get("/watchlists", headers=h["olga"]).json()] == []
        assert entry in [e["id"] for e in c.get("/watchlists", headers=h["ada"]).json()]
        assert c.get(f"/watchlists/{entry}", headers=h["olga"]).status_code == 404
        mine = c.get("/alerts", headers=h["ivan"]).json()
        assert 4 in [a["track_id"] for a in mine if a["entry_id"] == entry]
        assert c.get("/alerts", headers=h["olga"]).json() == []
        alert = next(a["id"] for a in mine if a["entry_id"] == entry and a["track_id"] == 4)
        assert c.post(f"/alerts/{alert}/ack", json={"verdict": "false"}, headers=h["olga"]).status_code == 404
        assert c.post(f"/alerts/{alert}/ack", json={"verdict": "maybe"}, headers=h["ivan"]).status_code == 422
        r = c.post(f"/alerts/{alert}/ack", json={"verdict": "false"}, headers=h["ivan"])
        assert r.status_code == 200 and r.json()["status"] == "false"
        assert c.patch(f"/watchlists/{entry}", json={"status": "paused"}, headers=h["olga"]).status_code == 404
        assert c.patch(f"/watchlists/{entry}", json={"status": "paused"}, headers=h["ada"]).json()["status"] == "paused"
        assert c.delete(f"/watchlists/{entry}", headers=h["ivan"]).status_code == 204
        assert c.get(f"/watchlists/{entry}", headers=h["ivan"]).status_code == 404
    actions = [r.get("action") for r in small.audit.read(200)]
    assert {"watchlist.add", "alert.ack", "watchlist.pause", "watchlist.remove"} <= set(actions)


# -- the real models over real footage ----------------------------------------------------------------------------
CLIP_S = 75.0  # visits 1-3 and the empty room after them


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_excerpt(tmp_path_factory.mktemp("clip") / "cam-f.mp4", CLIP_S)


def alerts_of(data_dir: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT entry_id, camera_id, track_id, round(score, 4), round(ts, 2), tracks, "
                          "(SELECT COUNT(*) FROM alert_tracks t WHERE t.alert_id = a.id) FROM alerts a ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_a_real_entry_alerts_on_its_visitor_and_on_no_other(clip: Path, tmp_path: Path) -> None:
    from vsearch.config import Settings
    from vsearch.embed import thresholds
    from vsearch.ingest import IngestItem
    from vsearch.types import parse_time

    svc = VSearch(Settings(data_dir=tmp_path / "d"))
    try:
        e = svc.watchlists.add("visitor 3", [QUERY.read_bytes()], "cli:t", {"role": "cli"})
        assert e.min_score == thresholds(svc.embedder.name).alert and e.vectors == 1
        start = parse_time(DEMO_START)
        rep = svc.ingest([IngestItem(clip, "cam-f", start)])[0]
        assert rep.status == "ingested", rep.error
        found = [v.alert for v in svc.watchlists.alerts()]
        _, v3_start, v3_end = visits()[2]
        assert found, "visitor 3 walked past the camera and raised no alert"
        for a in found:  # every alert is visitor 3's visit (visits_approx.csv is +-1 s)
            assert v3_start - 2 <= a.first_ts_s - start and a.last_ts_s - start <= v3_end + 2, a
    finally:
        svc.close()


def ingest(clip: Path, data_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """`vsearch ingest` of the clip as the fault suite runs it (a checkpoint every 10 s of video)."""
    from .test_faults import run_ingest

    proc = run_ingest(clip, data_dir, kill_at)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_alerts_survive_kill_9_and_a_resumed_ingest_doubles_none(clip: Path, tmp_path: Path) -> None:
    """SIGKILL inside the checkpoint transaction after its alerts are written (they go with it), then after every
    commit (each resumed run stores one checkpoint and dies): the alerts are those of one uninterrupted run."""
    import shutil

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    r = subprocess.run([sys.executable, "-m", "vsearch.cli", "watchlist", "add", "visitor 3", str(QUERY), "--data-dir", str(ref)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    shutil.copytree(ref, killed)
    assert ingest(clip, ref).returncode == 0
    expected = alerts_of(ref)
    assert expected, "the uninterrupted run raised no alert to compare with"
    r = ingest(clip, killed, kill_at="store.watch:2")
    assert r.returncode == -9, f"store.watch:2 was not reached: {r.stderr}"
    for _ in range(12):
        r = ingest(clip, killed, kill_at="store.commit_chunk:1")
        if r.returncode == 0:
            break
        assert r.returncode == -9, r.stderr
    assert r.returncode == 0
    assert alerts_of(killed) == expected
