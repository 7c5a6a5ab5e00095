"""Ingest on a real local Ray cluster into a real PostgreSQL catalog; a second data dir finds what it stored; a
worker killed mid-file is restarted and the file resumes with nothing lost or stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.config import Settings
from vsearch.ingest import plan_ingest
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.video import probe, read_frame_at, read_range

from .conftest import SAMPLE_VIDEO

pytestmark = pytest.mark.slow
T0 = parse_time("2026-03-01T14:00:00")


@pytest.fixture(scope="module")
def cameras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cameras as 2 fps frame folders cut from the sample: cam-a sees visitors 1 and 2, cam-b visitors 3 and 4."""
    root = tmp_path_factory.mktemp("cams")
    fps = probe(SAMPLE_VIDEO).fps  # 10
    step = round(fps / 2)
    for cam, (a, b) in {"cam-a": (0.0, 47.0), "cam-b": (48.0, 90.0)}.items():
        folder = root / cam / "frames"
        folder.mkdir(parents=True)
        (folder / "seqinfo.ini").write_text("[Sequence]\nframeRate=2\n")
        for i, (_, img) in enumerate(read_range(SAMPLE_VIDEO, round(a * fps), round(b * fps) - 1)):
            if i % step == 0:
                cv2.imwrite(str(folder / f"{i // step:06d}.jpg"), img)
    return root


def _env(data_dir: Path, url: str) -> dict[str, str]:
    return {**os.environ, "VSEARCH_DATA_DIR": str(data_dir), "VSEARCH_CATALOG_URL": url, "VSEARCH_CHECKPOINT_EVERY_S": "10"}


def _query(svc: VSearch, pts_s: float) -> bytes:
    img = read_frame_at(SAMPLE_VIDEO, pts_s)
    d = svc.detector.detect([img], conf=0.35)[0]
    x1, y1, x2, y2 = d.xyxy[int(np.argmax(d.area))].astype(int)
    return cv2.imencode(".jpg", img[y1:y2, x1:x2])[1].tobytes()


def test_a_second_node_finds_what_ray_workers_ingested_into_postgres(cameras: Path, postgres_url: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "vsearch.cli", "ingest", str(cameras), "--start", "2026-03-01T14:00:00", "--ray", "--workers", "2"],
        env=_env(tmp_path / "node-1", postgres_url), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("ingested ") == 2 and "[2/2]" in r.stdout and "Traceback" not in r.stderr

    from vsearch.search import SearchFilters

    second = VSearch(Settings(data_dir=tmp_path / "node-2", catalog_url=postgres_url))  # another machine
    assert second.store.ntotal == second.catalog.count_sightings() > 0
    for pts_s, camera in ((60.3, "cam-b"), (13.3, "cam-a")):
        best = second.search(_query(second, pts_s), SearchFilters(top_k=3)).clips[0]
        assert best.camera_id == camera
        offset = 48.0 if camera == "cam-b" else 0.0
        assert abs(best.best.ts_s - (T0 + pts_s - offset)) < 10
    second.close()


def _stored(svc: VSearch) -> list[tuple]:
    rows = svc.catalog._q("SELECT track_id, pts, x1, y1, x2, y2 FROM sightings")  # type: ignore[attr-defined]
    return sorted((int(t), round(p, 3), *(round(v, 1) for v in box)) for t, p, *box in rows)


def test_a_worker_killed_mid_file_is_retried_and_stores_nothing_twice(cameras: Path, postgres_url: str, tmp_path: Path) -> None:
    import psutil

    from vsearch.cluster import connect, ingest_on_ray

    settings = Settings(data_dir=tmp_path / "node", catalog_url=postgres_url, checkpoint_every_s=10.0)
    items = plan_ingest([cameras / "cam-b" / "frames"], "cam-b", T0)  # empty between visitors: a checkpoint
    connect(num_cpus=2)
    result: list = []
    t = threading.Thread(target=lambda: result.extend(ingest_on_ray(settings, items, workers=1)))
    t.start()
    watcher = VSearch(settings)
    killed = None
    deadline = time.monotonic() + 600
    while t.is_alive() and killed is None and time.monotonic() < deadline:
        videos = watcher.catalog.videos()
        if videos and 0 < videos[0].processed_until_s and videos[0].status == "ingesting":
            for p in psutil.process_iter(["cmdline"]):
                if any("IngestWorker" in part for part in (p.info["cmdline"] or [])):
                    os.kill(p.pid, signal.SIGKILL)
                    killed = p.pid
        time.sleep(0.2)
    t.join(timeout=900)
    assert killed is not None, "the worker finished before its first checkpoint could be seen"
    (report,) = result
    assert report.status == "resumed", report
    (v,) = watcher.catalog.videos()
    assert v.status == "done" and v.frames_sampled == 84

    reference = VSearch(Settings(data_dir=tmp_path / "ref", checkpoint_every_s=10.0), detector=watcher.detector)
    reference.ingest(items)
    assert _stored(watcher) == _stored(reference)
    assert watcher.store.ntotal == watcher.catalog.count_sightings()
