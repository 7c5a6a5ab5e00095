"""The alerts panel of the investigators' page in headless Chromium against a real `vsearch serve`: an alert
written by another process (an ingest worker, for all the server knows) appears by itself, with both images, its
score, camera, time and clip; "Confirmed" adds the crop to the entry and its case, "False alert" records it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vsearch.catalog import Checkpoint, NewSighting
from vsearch.config import Settings
from vsearch.service import VSearch

from .conftest import SAMPLE_VIDEO, small_service
from .test_watchlist import track_sighting
from .test_web import browser, open_page, start_serve, stop  # noqa: F401  (browser is a fixture)

KEY = "web-alerts-admin-key-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-alerts") / "data"
    small_service(folder).close()
    return folder


@pytest.fixture(scope="module")
def server(data: Path) -> Iterator[str]:
    env = {**os.environ, "VSEARCH_EMBEDDER": "hsv-parts",
           "VSEARCH_API_KEYS": json.dumps([{"name": "web", "key": KEY, "role": "admin"}])}  # fmt: skip
    proc, base = start_serve(data, env)
    yield base
    stop(proc)


def camera_sees_again(svc: VSearch, camera: str, sha: str, tracks: set[int]) -> None:
    """The sample clip's sightings of `tracks` stored again as another camera's video (same file, so its clips
    render), through the store: the matcher runs in the checkpoint, as in an ingest worker."""
    ids = [i for i in svc.catalog.sighting_ids(svc.embedder.name).tolist() if svc.catalog.sighting(i).track_id in tracks]
    old = svc.catalog.sightings(ids)
    _, vecs = svc.catalog.embeddings(np.array(ids))
    first = svc.catalog.video(old[ids[0]].video_id)
    rec = svc.catalog.begin_video(camera, str(SAMPLE_VIDEO), sha, first.start_ts_s + 3600, first.fps, first.frame_count,
                                  (768, 432), svc.embedder.name)  # fmt: skip
    rows = [NewSighting(camera, old[i].track_id, first.start_ts_s + 3600 + old[i].pts_s, old[i].pts_s, old[i].xyxy, 0.9, 0.5,
                        old[i].thumb_path, v) for i, v in zip(ids, vecs)]  # fmt: skip
    boxes = [(old[i].track_id, old[i].pts_s, old[i].xyxy, 0.9) for i in ids]
    svc.store.commit_chunk(rec.id, Checkpoint(rows, boxes, first.frame_count / first.fps, len(rows), True))


def test_alerts_appear_by_themselves_and_are_acknowledged_from_the_page(server: str, data: Path, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    worker = VSearch(Settings(data_dir=data, embedder="hsv-parts"))
    try:
        worker.watchlists.matcher.fold_s = 0.0
        ctx = {"role": "admin"}
        case = worker.casework.create("alerts from the page", "", "web", ctx)
        e3 = worker.watchlists.add("visitor 3", [], "web", ctx, case_id=case.id, min_score=0.995, sighting_ids=[track_sighting(worker, 3)])
        page, errors = open_page(browser, server, height=1400, key=KEY)
        page.wait_for_function("document.getElementById('alerts-status').textContent.startsWith('live')", timeout=30_000)
        assert page.query_selector_all("#alerts li") == []
        camera_sees_again(worker, "door", "sha-web-alerts", {3})  # written after the page connected
        page.wait_for_selector("#alerts li[data-status=new]", timeout=30_000)
        found = {v.alert.id: v.alert for v in worker.watchlists.alerts(entry_id=e3.id)}
        assert found and all(a.camera_id == "door" for a in found.values())
        shown = [int(li.get_attribute("data-alert")) for li in page.query_selector_all("#alerts li")]
        assert sorted(shown) == sorted(found)
        first = page.query_selector("#alerts li")
        text = first.inner_text()
        alert = found[int(first.get_attribute("data-alert"))]
        assert "visitor 3" in text and "door" in text and f"{alert.score * 100:.1f}%" in text
        page.wait_for_function("[...document.querySelectorAll('#alerts li img')].every(i => i.complete && i.naturalWidth > 0)")
        assert first.query_selector("img.wanted").get_attribute("src") == f"/watchlists/{e3.id}/image.jpg"
        first.query_selector("a.clip").click()  # the clip of the alert's best crop plays in the page's player
        page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=60_000)
        assert page.evaluate("document.getElementById('video').error") is None
        page.click("#close")
        vectors = worker.catalog.watch_entry(e3.id).vectors
        first.query_selector(".confirm-btn").click()
        page.wait_for_selector(f"#alerts li[data-alert='{alert.id}'][data-status=confirmed]")
        assert worker.catalog.alert(alert.id).status == "confirmed"
        assert worker.catalog.watch_entry(e3.id).vectors == vectors + 1  # the crop joined the entry
        items = worker.casework.case(case.id, "web", ctx)[1]
        assert [i.sighting_id for i in items] == [alert.sighting_id]  # and the entry's case
        assert "confirmed by web" in page.inner_text(f"#alerts li[data-alert='{alert.id}']")
        # a second entry's alert: a false alert, recorded; the crop does not join the entry
        e5 = worker.watchlists.add("visitor 5", [], "web", ctx, min_score=0.995, sighting_ids=[track_sighting(worker, 5)])
        camera_sees_again(worker, "gate", "sha-web-alerts-2", {5})
        wrong = next(v.alert for v in worker.watchlists.alerts(entry_id=e5.id))
        page.wait_for_selector(f"#alerts li[data-alert='{wrong.id}'] .false-btn", timeout=30_000)
        page.click(f"#alerts li[data-alert='{wrong.id}'] .false-btn")
        page.wait_for_selector(f"#alerts li[data-alert='{wrong.id}'][data-status=false]")
        assert worker.catalog.alert(wrong.id).status == "false" and worker.catalog.watch_entry(e5.id).vectors == 1
        acks = [r for r in worker.audit.read(100) if r.get("action") == "alert.ack"]
        assert {(r["alert_id"], r["verdict"]) for r in acks} >= {(alert.id, "confirmed"), (wrong.id, "false")}
        page.screenshot(path=str(tmp_path / "alerts.png"), full_page=True)
        shutil.copy(tmp_path / "alerts.png", "/tmp/vsearch-web-alerts.png")
        assert not errors, errors
    finally:
        worker.close()
