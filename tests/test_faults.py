"""The fault suite: real `vsearch ingest` processes SIGKILLed at seeded random times and at named points inside the
checkpoint transaction and the index write (vsearch/faults.py), each resumed and compared with one uninterrupted
run; searches during an ingest; a data dir that runs out of space. Over the sample clip's first 75 s, with a
checkpoint every 10 s of video."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import IndexStateError
from vsearch.search import SearchFilters
from vsearch.service import VSearch

from .conftest import DEMO_START, SAMPLE_VIDEO, missing, sample_excerpt

pytestmark = pytest.mark.slow
QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
CLIP_S = 75.0  # visits 1-3 and the empty room after them: three checkpoints and the end


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_excerpt(tmp_path_factory.mktemp("clip") / "cam-f.mp4", CLIP_S)


def run_ingest(clip: Path, data_dir: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VSEARCH_CHECKPOINT_EVERY_S": "10"}
    env.pop("VSEARCH_FAULT_KILL_AT", None)
    if kill_at:
        env["VSEARCH_FAULT_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-m", "vsearch.cli", "ingest", str(clip), "--camera", "cam-f", "--start", DEMO_START,
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def catalog_rows(data_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def stored(data_dir: Path) -> dict[str, list[tuple]]:
    """What an ingest stored, comparable between runs."""
    box = "track_id, round(pts, 3), round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)"
    return {
        "sightings": sorted(catalog_rows(data_dir, f"SELECT {box}, camera_id, round(ts, 3) FROM sightings")),
        "track_boxes": sorted(catalog_rows(data_dir, f"SELECT {box} FROM track_boxes")),
        "videos": catalog_rows(data_dir, "SELECT status, frames_sampled, processed_until_s FROM videos"),
        "integrity": catalog_rows(data_dir, "PRAGMA integrity_check"),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> VSearch:
    """The detector and embedder, loaded once in this process for the searches."""
    return VSearch(Settings(data_dir=tmp_path_factory.mktemp("models")))


def searched(models: VSearch, data_dir: Path) -> tuple[list[tuple[str, float]], int, int]:
    """(clip ids and scores for the query, index size, catalog count) seen by a fresh service on data_dir."""
    svc = VSearch(models.settings.model_copy(update={"data_dir": data_dir}), models.detector, models.embedder)
    try:
        result = svc.search(QUERY.read_bytes(), SearchFilters(top_k=10))
        return [(c.id, round(c.score, 4)) for c in result.clips], svc.store.ntotal, svc.catalog.count_sightings()
    finally:
        svc.close()


@dataclass
class Reference:
    data_dir: Path
    stored: dict[str, list[tuple]]
    clips: list[tuple[str, float]]
    process_s: float


@pytest.fixture(scope="module")
def reference(clip: Path, models: VSearch, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """One uninterrupted ingest."""
    data_dir = tmp_path_factory.mktemp("ref") / "d"
    t0 = time.monotonic()
    proc = run_ingest(clip, data_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    clips, ntotal, count = searched(models, data_dir)
    assert ntotal == count > 10 and clips
    return Reference(data_dir, stored(data_dir), clips, time.monotonic() - t0)


def check_same_as_reference(data_dir: Path, ref: Reference, models: VSearch) -> None:
    got = stored(data_dir)
    assert got["integrity"] == [("ok",)]
    assert got["videos"] == ref.stored["videos"], "every sampled frame processed exactly once"
    assert got["sightings"] == ref.stored["sightings"]
    assert got["track_boxes"] == ref.stored["track_boxes"]
    clips, ntotal, count = searched(models, data_dir)
    assert ntotal == count == len(ref.stored["sightings"]), "the index holds exactly the catalog's sightings"
    assert clips == ref.clips


def test_searches_during_an_ingest_never_fail_and_see_only_committed_sightings(
    clip: Path, models: VSearch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    proc = run_ingest(clip, data_dir)
    searches: list[list[tuple[int, tuple]]] = []
    errors: list[str] = []
    svc = None
    while proc.poll() is None:
        if svc is None:
            if not (data_dir / "catalog.sqlite").exists():
                time.sleep(0.2)
                continue
            svc = VSearch(models.settings.model_copy(update={"data_dir": data_dir}), models.detector, models.embedder)
        registered = bool(svc.catalog.videos())  # before this search began
        try:
            hits = [h.sighting for c in svc.search(QUERY.read_bytes(), SearchFilters(top_k=10)).clips for h in c.sightings]
            searches.append([(s.id, (s.track_id, round(s.pts_s, 3), tuple(round(v, 1) for v in s.xyxy))) for s in hits])
        except IndexStateError as e:  # before the ingest registered its video the catalog truly holds nothing
            if registered or "no footage yet" not in str(e):
                errors.append(f"{type(e).__name__}: {e}")
        except Exception as e:  # any other failure of a search during an ingest is the finding
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(1.0)
    assert proc.returncode == 0
    if svc is not None:
        svc.close()
    assert errors == []
    final = {
        r[0]: (r[1], round(r[2], 3), (round(r[3], 1), round(r[4], 1), round(r[5], 1), round(r[6], 1)))
        for r in catalog_rows(data_dir, "SELECT id, track_id, pts, x1, y1, x2, y2 FROM sightings")
    }
    assert len(searches) >= 3, "searched while the ingest ran"
    seen = {tuple(sorted(sid for sid, _ in hits)) for hits in searches}
    assert len(seen - {()}) >= 1 and len(seen) >= 2, "results grew with the checkpoints while the ingest ran"
    for hits in searches:
        for sid, row in hits:
            assert final.get(sid) == row, f"sighting {sid} returned mid-ingest is not (so) in the final catalog"


# kill points, one per resumed run (counts are per process; the index is opened, and rebuilt and saved when it
# has no file yet, at a run's first checkpoint). The clip has three checkpoints (two mid-file, one at its end):
# inside checkpoint 1's transaction; after checkpoint 1's commit, before the index follows; inside checkpoint 2's
# transaction; inside the index write (checkpoint 2 committed); after the index file is replaced, before its
# metadata (the last checkpoint committed)
NAMED_POINTS = ["catalog.commit_chunk:1", "store.commit_chunk:1", "catalog.commit_chunk:1", "index.save:1", "store.save:1"]


def test_kills_inside_the_checkpoint_transaction_and_the_index_write_resume_exactly(
    clip: Path, reference: Reference, models: VSearch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    for point in NAMED_POINTS:
        proc = run_ingest(clip, data_dir, kill_at=point)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == -9, f"{point} was not reached: {out}{err}"
        assert catalog_rows(data_dir, "PRAGMA integrity_check") == [("ok",)]
    proc = run_ingest(clip, data_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    check_same_as_reference(data_dir, reference, models)


def test_kills_at_seeded_random_times_resume_exactly(
    clip: Path, reference: Reference, models: VSearch, tmp_path: Path
) -> None:
    rng = random.Random(20260301)
    data_dir = tmp_path / "d"
    killed_mid_ingest = attempts = 0
    # each kill lands at a seeded moment after the run has taken the video's lease, so that a
    # loaded machine's slow start-up cannot swallow the kills
    while killed_mid_ingest < 6 and attempts < 12:
        attempts += 1
        proc = run_ingest(clip, data_dir)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not _holds_lease(data_dir, proc.pid):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.02, 0.3) * reference.process_s)  # a resumed run has less left to do
        proc.kill()
        proc.communicate(timeout=60)
        if not (data_dir / "catalog.sqlite").exists():
            continue
        if proc.returncode == -9 and stored(data_dir)["videos"][:1] != ref_done(reference):
            killed_mid_ingest += 1
        assert catalog_rows(data_dir, "PRAGMA integrity_check") == [("ok",)]
        if stored(data_dir)["videos"][:1] == ref_done(reference):
            break  # finished: later runs have nothing left to kill
    assert killed_mid_ingest >= 3, "most kills landed before the ingest finished"
    proc = run_ingest(clip, data_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    check_same_as_reference(data_dir, reference, models)


def _holds_lease(data_dir: Path, pid: int) -> bool:
    """The process `pid` has taken the video's ingest lease (its owner is 'host:pid:nonce')."""
    try:
        return any(f":{pid}:" in (owner or "") for (owner,) in catalog_rows(data_dir, "SELECT lease_owner FROM videos"))
    except sqlite3.Error:
        return False  # not created yet, or mid-migration


def ref_done(reference: Reference) -> list[tuple]:
    return reference.stored["videos"][:1]


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 2 MB tmpfs (needs root and mount; skipped with the reason otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        missing(f"cannot mount a small tmpfs for the disk-full test: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_a_clear_error_and_a_rerun_with_space_completes(
    clip: Path, reference: Reference, models: VSearch, small_disk: Path
) -> None:
    data_dir = small_disk / "d"
    need = sum(p.stat().st_size for p in reference.data_dir.rglob("*") if p.is_file())
    free = shutil.disk_usage(small_disk).free
    # leave room for about half of what the ingest writes, so it runs out part-way
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - need // 2))
    proc = run_ingest(clip, data_dir)
    out, err = proc.communicate(timeout=300)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert len(errors) == 1 and "space" in errors[0].lower(), err
    assert catalog_rows(data_dir, "PRAGMA integrity_check") == [("ok",)]

    (small_disk / "filler").unlink()
    proc = run_ingest(clip, data_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    check_same_as_reference(data_dir, reference, models)
