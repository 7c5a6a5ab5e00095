"""The case panel of the investigators' page in headless Chromium against a real `vsearch serve` (private data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from .conftest import SAMPLE_VIDEO
from .test_web import browser, open_page, start_serve, stop  # noqa: F401  (browser is a fixture)

KEY = "web-cases-admin-key-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(demo_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """`vsearch serve` over a private copy of the session's ingested sample (the test writes a case and audits)."""
    data = tmp_path_factory.mktemp("web-cases") / "data"
    shutil.copytree(demo_service.settings.data_dir, data)
    env = {**os.environ, "VSEARCH_API_KEYS": json.dumps([{"name": "web", "key": KEY, "role": "admin"}])}
    proc, base = start_serve(data, env)
    yield base
    stop(proc)


def test_add_a_result_to_a_case_and_see_the_route(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page, errors = open_page(browser, server, height=1400, key=KEY)
    page.wait_for_selector("input[name=cam][value=lobby]")
    page.fill("#case-name", "Visitor 3 from the page")
    page.click("#case-form button[type=submit]")
    page.wait_for_function("document.getElementById('case-select').value !== ''")
    assert "Visitor 3 from the page" in page.inner_text("#case-select")
    page.set_input_files("#file", str(SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"))
    page.fill("#reason", "tip line call 17")  # with the selected case, the search's purpose in the audit log
    page.click("#go")
    page.wait_for_selector(".card .add-case", timeout=60_000)
    page.click(".card >> nth=0 >> .add-case")
    page.wait_for_selector("#case-items li[data-item]", timeout=30_000)
    page.wait_for_selector("#route .stop")
    assert page.inner_text(".card >> nth=0 >> .add-case") == "In case ✓"
    assert len(page.query_selector_all("#route .lane")) == 1  # one camera, one lane
    assert "time per camera: lobby" in page.inner_text("#route-summary")
    page.click(".card >> nth=1 >> .add-case")  # a second visit: two stops on the lobby lane, a gap between
    page.wait_for_function("document.querySelectorAll('#route .stop').length >= 2", timeout=30_000)
    assert page.query_selector_all("#route .move.gap")
    page.click("#case-companions")
    page.wait_for_function("document.getElementById('companions').textContent.includes('Nobody was seen')")
    page.select_option("#case-redact", "none")  # unredacted: an admin, with the page's reason (redaction: test_api_cases)
    page.click("#case-export")
    page.wait_for_selector("#case-export-link:not([hidden])", timeout=120_000)
    assert "manifest sha256" in page.inner_text("#case-status")
    exported = httpx.get(f"{server}/audit", params={"action": "case.export"}, headers={"X-API-Key": KEY}).json()[0]
    assert exported["redact"] == "none" and exported["reason"] == "tip line call 17"
    # coordinates make the map appear
    httpx.put(f"{server}/cameras/lobby", json={"name": "Lobby", "lat": 48.137, "lon": 11.575}, headers={"X-API-Key": KEY}).raise_for_status()
    page.select_option("#case-select", page.eval_on_selector("#case-select", "s => s.value"))
    page.dispatch_event("#case-select", "change")
    page.wait_for_selector("#map:not([hidden])")
    assert page.eval_on_selector("#map", "c => c.dataset.points") == "1"
    assert "Lobby" in page.eval_on_selector("#route", "s => s.textContent")  # the lane takes the camera name
    page.fill("#from", "2026-03-01T14:00:00")
    page.fill("#to", "2026-03-01T15:00:00")
    page.click("#people-go")
    page.wait_for_selector("#people .person", timeout=60_000)
    assert "putative people" in page.inner_text("#people")
    searched = httpx.get(f"{server}/audit", params={"action": "search"}, headers={"X-API-Key": KEY}).json()[0]
    assert searched["reason"] == "tip line call 17" and searched["case_id"] == int(page.eval_on_selector("#case-select", "s => s.value"))
    page.once("dialog", lambda d: d.accept("court closed it"))  # closing asks for the reason
    page.click("#case-close")
    page.wait_for_function("document.getElementById('case-status').textContent.includes('court closed it')")
    assert page.is_disabled("#case-close")
    closed = httpx.get(f"{server}/audit", params={"action": "case.close"}, headers={"X-API-Key": KEY}).json()
    assert [e["reason"] for e in closed] == ["court closed it"]
    page.screenshot(path=str(tmp_path / "case.png"), full_page=True)
    shutil.copy(tmp_path / "case.png", "/tmp/vsearch-web-case.png")
    assert not errors, errors
