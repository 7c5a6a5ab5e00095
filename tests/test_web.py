"""The investigators' page in headless Chromium against a real `vsearch serve` on localhost."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import SAMPLE_VIDEO, missing

KEY = "web-test-admin-key-0123456789"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(data_dir: Path, env: dict[str, str], host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """`vsearch serve` as a subprocess on a free port; returns once /health answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsearch.cli", "serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stdout.read() if proc.stdout else ''}")


def stop(proc: subprocess.Popen) -> str:
    """Stop the server; its output."""
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out or ""


@pytest.fixture(scope="module")
def server(demo_service):  # type: ignore[no-untyped-def]
    """`vsearch serve` over the session's ingested sample data, with one admin key from VSEARCH_API_KEYS."""
    env = {**os.environ, "VSEARCH_API_KEYS": json.dumps([{"name": "web", "key": KEY, "role": "admin"}])}
    proc, base = start_serve(demo_service.settings.data_dir, env)
    yield base
    stop(proc)


def test_serve_without_keys_makes_a_local_admin_key_and_stays_on_loopback(demo_service) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "VSEARCH_API_KEYS"}
    refused = subprocess.run(
        [sys.executable, "-m", "vsearch.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "without API keys" in refused.stderr
    proc, base = start_serve(demo_service.settings.data_dir, env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed (line-buffered stderr) before uvicorn starts
        key = first.split("local admin key is ", 1)[1].split()[0]
        assert httpx.get(f"{base}/cameras").status_code == 401
        assert httpx.get(f"{base}/cameras", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(f"{base}/audit", headers={"X-API-Key": key}).status_code == 200  # an admin key
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    try:
        import playwright.sync_api as playwright
    except ImportError:
        missing("playwright (pip) is needed for the browser test")
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


def open_page(browser, server: str, height: int = 900, key: str = KEY):  # type: ignore[no-untyped-def]
    """The investigators' page with the key entered; returns it and the list its script errors collect into."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.fill("#apikey", key)
    page.dispatch_event("#apikey", "change")
    return page, errors


def test_search_from_the_page_and_play_a_clip(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, errors = open_page(browser, server)
    page.wait_for_selector("input[name=cam][value=lobby]")
    page.set_input_files("#file", str(SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"))
    page.click("#go")
    page.wait_for_selector(".card", timeout=60_000)
    cards = page.query_selector_all(".card")
    assert len(cards) >= 3
    assert "clips from" in page.inner_text("#status")
    # thumbnails load (they are authorised by the cookie the page set)
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.query_selector_all("#timeline .mark")
    page.screenshot(path=str(tmp_path / "results.png"))
    cards[0].click()
    page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=30_000)
    duration = page.evaluate("document.getElementById('video').duration")
    assert duration > 5 and page.evaluate("document.getElementById('video').error") is None
    page.screenshot(path=str(tmp_path / "player.png"))
    page.click("#close")
    # a whole photo (a frame of the third visit): the detected persons are drawn; clicking one searches with its box
    page.set_input_files("#file", str(whole_photo(tmp_path)))
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.includes('query: detected person')", timeout=60_000)
    page.click("#persons rect")
    page.wait_for_function("document.getElementById('status').textContent.includes('query: given box')", timeout=60_000)
    assert page.query_selector("#persons rect.chosen") and page.query_selector_all(".card")
    page.screenshot(path=str(tmp_path / "photo.png"))
    # feedback: mark the first result "same person" and the second "not this person", then search again
    page.set_input_files("#file", [str(SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg")] * 2)  # two images
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.includes('query: whole image, whole image')", timeout=60_000)
    cards = page.query_selector_all(".card")
    rejected = cards[1].get_attribute("data-sighting")
    cards[0].query_selector(".same-btn").click()
    cards[1].query_selector(".different-btn").click()
    assert page.is_visible("#refine") and page.query_selector(".card.same") and page.query_selector(".card.different")
    page.click("#refine")
    page.wait_for_function("document.getElementById('status').textContent.includes('refined by 1 confirmed, 1 rejected')", timeout=60_000)
    order = [c.get_attribute("data-sighting") for c in page.query_selector_all(".card")]
    assert order.index(rejected) > 1, "the rejected result went down"
    page.screenshot(path=str(tmp_path / "feedback.png"))
    for name in ("results", "player", "photo", "feedback"):
        shutil.copy(tmp_path / f"{name}.png", f"/tmp/vsearch-web-{name}.png")
    assert not errors, errors


def whole_photo(folder: Path) -> Path:
    """Frame 573 of the sample clip (visitor 3 in the room) as a JPEG: a photo, not a person crop."""
    import cv2

    from vsearch.video import probe, sample_frames

    info = probe(SAMPLE_VIDEO)
    frame = next(f for f in sample_frames(info, "x", 0, info.fps) if f.index >= 573)
    out = folder / "photo.jpg"
    cv2.imwrite(str(out), frame.image_bgr)
    return out


def test_the_api_docs_render_with_the_network_off(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    """/docs on an air-gapped network: Swagger UI and its styles come from the server itself, nothing from outside
    (every request to another host is refused, and none is even tried)."""
    from urllib.parse import urlparse

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_localhost(route) -> None:  # type: ignore[no-untyped-def]
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_localhost)
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # the operations list rendered
    paths = {e.inner_text().strip().replace("\u200b", "") for e in page.query_selector_all(".opblock-summary-path")}
    assert {"/search", "/cases", "/health"} <= paths, paths
    assert page.query_selector(".swagger-ui .info .title") is not None
    assert outside == [], outside
    assert httpx.get(server + "/redoc").status_code == 404  # no second docs page loading its script from a CDN


def test_describe_from_the_page(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The Describe form: a phrase finds clips through POST /find (no marking buttons: there is no query person);
    an unknown word is shown, named, instead of results."""
    page, errors = open_page(browser, server)
    page.wait_for_selector("input[name=cam][value=lobby]")
    page.fill("#phrase", "person with a bag")
    page.click("#find")
    page.wait_for_function("document.getElementById('status').textContent.includes('clips from')", timeout=60_000)
    cards = page.query_selector_all(".card")
    assert cards and not page.query_selector(".card .same-btn")
    assert '"carrying":["bag"]' in page.inner_text("#status")
    page.screenshot(path=str(tmp_path / "describe.png"))
    shutil.copy(tmp_path / "describe.png", "/tmp/vsearch-web-describe.png")
    page.fill("#phrase", "")
    page.select_option("#d-gender", "male")
    page.select_option("#d-upper", "black")
    page.click("#find")
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg='"upper":["black"]', timeout=60_000)
    page.fill("#phrase", "bald man")
    page.click("#find")
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg="unknown words in the description: 'bald'", timeout=60_000)
    assert "error" in (page.get_attribute("#status", "class") or "")
    assert not errors, errors
