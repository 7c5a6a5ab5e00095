"""The REST API with the real app over the real library.

The contract (keys, roles, 4xx mapping, limits, audit, media) runs in the quick tier on a small service: the sample
clip's catalog written through the real store with the weight-free `hsv-parts` embedder (conftest.small_service),
searched with a box so no detector loads. What needs the real models (ranking, ingest jobs) is marked slow and runs
on the ingested sample clip."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.config import ApiKey
from vsearch.service import VSearch
from vsearch.video import probe, sample_frames, write_mp4

from .conftest import SAMPLE_VIDEO, small_service, visits

ADMIN = "admin-key-0123456789abcdef"
INVESTIGATOR = "investigator-key-0123456789"
QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
QUERY_BOX = "0,0,154,385"  # the whole query crop, given: the small service never needs the detector


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A footage root with a 4 s excerpt of the sample (the empty room), and a symlink pointing out of it."""
    root = tmp_path_factory.mktemp("footage")
    (root / "cam-09").mkdir()
    info = probe(SAMPLE_VIDEO)
    write_mp4(root / "cam-09" / "empty-room.mp4", ((f.index, f.image_bgr) for f in sample_frames(info, "x", 0, info.fps) if f.pts_s < 4), info.fps)
    (root / "cam-11").mkdir()
    (root / "cam-11" / "0001.mp4").write_bytes((root / "cam-09" / "empty-room.mp4").read_bytes())
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mp4").write_bytes(b"not yours")
    os.symlink(outside / "secret.mp4", root / "cam-09" / "escape.mp4")
    return root


@pytest.fixture(scope="module")
def api_service(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The small service (no model loaded); module-scoped, these tests write an audit log."""
    svc = small_service(tmp_path_factory.mktemp("api") / "data")
    yield svc
    assert not svc.detector.loaded, "a contract test loaded the detector: give its search a box"
    svc.close()


@pytest.fixture(scope="module")
def model_service(demo_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A private copy of the session's ingested data (these tests ingest), sharing the already loaded models."""
    data = tmp_path_factory.mktemp("api-models") / "data"
    shutil.copytree(demo_service.settings.data_dir, data)
    svc = VSearch(demo_service.settings.model_copy(update={"data_dir": data}), demo_service.detector, demo_service.embedder)
    yield svc
    svc.close()


def _client(svc: VSearch, footage: Path):  # type: ignore[no-untyped-def]
    settings = svc.settings.model_copy(update={
        "api_keys": [ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")],
        "footage_root": footage, "max_image_bytes": 2_000_000, "max_video_bytes": 3_000_000,
    })  # fmt: skip
    with TestClient(create_app(settings, svc)) as c:
        yield c


@pytest.fixture(scope="module")
def client(api_service, footage: Path):  # type: ignore[no-untyped-def]
    yield from _client(api_service, footage)


@pytest.fixture(scope="module")
def model_client(model_service, footage: Path):  # type: ignore[no-untyped-def]
    yield from _client(model_service, footage)


def H(key: str = INVESTIGATOR) -> dict[str, str]:
    return {"X-API-Key": key}


def search(client: TestClient, data: dict | None = None, image: tuple | None = None, key: str = INVESTIGATOR):  # type: ignore[no-untyped-def]
    """A search; given the whole query image as its box unless `data` says otherwise."""
    image = image or ("q.jpg", QUERY.read_bytes(), "image/jpeg")
    return client.post("/search", files={"image": image}, data={"box": QUERY_BOX, **(data or {})}, headers=H(key))


@pytest.mark.slow
def test_search_returns_the_right_visit_first(model_client: TestClient) -> None:
    r = model_client.post("/search", files={"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")}, data={"top_k": "5"}, headers=H())
    assert r.status_code == 200, r.text
    body = r.json()
    v3 = [v for v in visits() if v[0] == 3][0]
    best = body["clips"][0]
    assert best["camera_id"] == "lobby" and best["score"] > body["clips"][1]["score"]
    assert v3[1] - 1.5 <= best["best"]["pts_s"] <= v3[2] + 1.5


def test_a_result_links_its_media(client: TestClient) -> None:
    r = search(client, {"top_k": "5"})
    assert r.status_code == 200, r.text
    best = r.json()["clips"][0]
    for url in (best["thumbnail_url"], best["frame_url"]):
        img = client.get(url, headers=H())
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content[:2] == b"\xff\xd8"
    sid = best["best"]["id"]
    s = client.get(f"/sightings/{sid}", headers=H()).json()
    assert s["id"] == sid and s["clip_url"] == best["clip_url"]


def test_time_and_camera_filters(client: TestClient) -> None:
    body = search(client, {"from": "2026-03-01T14:01:30", "to": "2026-03-01T14:02:00", "top_k": "10"}).json()
    assert body["clips"], "visit 5 lies in this window"
    for c in body["clips"]:
        for s in c["sightings"]:
            assert "2026-03-01T14:01:30" <= s["time"][:19] <= "2026-03-01T14:02:00"
    # an unknown camera is named (issue 27), never answered with an empty list
    for cams in ("elsewhere", "lobby,elsewhere"):
        r = search(client, {"cameras": cams})
        assert r.status_code == 404 and "unknown camera 'elsewhere'" in r.json()["detail"]
    assert search(client, {"cameras": "lobby,lobby"}).json()["clips"]
    repeated = client.post("/search", files=[("image", ("q.jpg", QUERY.read_bytes(), "image/jpeg"))],
                           data={"cameras": ["lobby", "lobby"], "box": QUERY_BOX}, headers=H())  # fmt: skip
    assert repeated.status_code == 200 and repeated.json()["clips"]


def test_clip_supports_range_requests(client: TestClient) -> None:
    url = search(client, {"top_k": "1"}).json()["clips"][0]["clip_url"]
    full = client.get(url, headers=H())
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={**H(), "Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-299/{len(full.content)}"
    assert part.content == full.content[100:300]
    size = len(full.content)
    tail = client.get(url, headers={**H(), "Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == full.content[-500:]
    assert tail.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
    rest = client.get(url, headers={**H(), "Range": f"bytes={size - 10}-"})
    assert rest.status_code == 206 and rest.content == full.content[-10:]
    beyond = client.get(url, headers={**H(), "Range": f"bytes={size + 10}-{size + 20}"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    # the <video> tag sends no header: the page's cookie authorises it, so does ?api_key=
    assert client.get(url, params={"api_key": INVESTIGATOR}, headers={"Range": "bytes=0-1"}).status_code == 206


@pytest.mark.parametrize(
    "kwargs, status, reason",
    [
        ({"image": ("notes.txt", b"suspect wore red", "text/plain")}, 415, "expected an image upload"),
        ({"image": ("q.jpg", b"definitely not a jpeg", "image/jpeg")}, 400, "do not decode"),
        ({"image": ("q.jpg", b"", "image/jpeg")}, 400, "empty upload"),
        ({"image": ("big.jpg", b"\xff" * 2_000_001, "image/jpeg")}, 413, "larger than the limit"),
        ({"data": {"from": "yesterday"}}, 400, "ISO 8601"),
        ({"data": {"from": "2026-03-01T18:00", "to": "2026-03-01T14:00"}}, 400, "ends before it starts"),
        ({"data": {"top_k": "0"}}, 422, "top_k"),
        ({"data": {"top_k": "many"}}, 422, "top_k"),
        ({"data": {"box": "1,2"}}, 400, "x1,y1,x2,y2"),
        ({"data": {"upper": "tartan"}}, 400, "unknown upper-body colour"),
    ],
)
def test_bad_search_input_gets_4xx_with_a_reason(client: TestClient, kwargs: dict, status: int, reason: str) -> None:
    r = search(client, kwargs.get("data"), kwargs.get("image"))
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]


@pytest.mark.parametrize(
    "path, status",
    [("/sightings/999999", 404), ("/sightings/999999/thumbnail.jpg", 404), ("/sightings/abc", 422),
     ("/clips/1-1-0-999999999.mp4", 400), ("/clips/999-1-0-1000.mp4", 404), ("/clips/garbage.mp4", 400),
     ("/jobs/job-424242", 404)],
)  # fmt: skip
def test_unknown_ids_are_4xx(client: TestClient, path: str, status: int) -> None:
    r = client.get(path, headers=H())
    assert r.status_code == status and r.json()["detail"]


def test_keys_and_roles(client: TestClient) -> None:
    assert search(client, key="").status_code == 401
    assert search(client, key="wrong-key-0000000000000").status_code == 401
    assert client.get("/cameras").status_code == 401
    assert client.get("/cameras", headers=H()).json()[0]["id"] == "lobby"
    assert client.get("/cameras", params={"api_key": INVESTIGATOR}).status_code == 200
    assert client.get("/cameras", headers={"Cookie": f"vsearch_key={INVESTIGATOR}"}).status_code == 200
    assert client.get("/audit", headers=H()).status_code == 403
    # the cookie and ?api_key= authorise reads (media in <img>/<video>) only; a search needs the header
    with_cookie = client.post("/search", files={"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")}, headers={"Cookie": f"vsearch_key={INVESTIGATOR}"})
    assert with_cookie.status_code == 401 and "X-API-Key header" in with_cookie.json()["detail"]
    assert client.post("/search", params={"api_key": INVESTIGATOR}, files={"image": ("q.jpg", b"x", "image/jpeg")}).status_code == 401
    r = client.post("/ingest", data={"camera": "cam-09", "start": "2026-03-01T09:00", "path": "cam-09/empty-room.mp4"}, headers=H())
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def test_every_search_is_audited_and_only_admins_read_it(client: TestClient) -> None:
    import hashlib

    body = search(client, {"top_k": "2", "cameras": "lobby"}).json()
    log = client.get("/audit", headers=H(ADMIN))
    assert log.status_code == 200
    last = log.json()[0]
    assert last["key_name"] == "ivan" and last["role"] == "investigator"
    assert last["query_sha256"] == hashlib.sha256(QUERY.read_bytes()).hexdigest()
    assert last["filters"]["cameras"] == ["lobby"] and last["filters"]["top_k"] == 2
    assert last["returned_sighting_ids"] == [s["id"] for c in body["clips"] for s in c["sightings"]]
    assert "error" not in last
    # a refused search is recorded with its reason
    assert search(client, {"from": "yesterday"}, key=ADMIN).status_code == 400
    refused = client.get("/audit", params={"limit": 1}, headers=H(ADMIN)).json()
    assert len(refused) == 1 and refused[0]["key_name"] == "ada" and "ISO 8601" in refused[0]["error"]
    assert refused[0]["returned_sighting_ids"] == []


def test_body_limits_apply_while_the_body_streams(client: TestClient) -> None:
    """Over the limit by the declared length: refused before reading. Chunked (no length): cut off mid-stream."""
    huge = client.post("/search", files={"image": ("big.jpg", b"\xff" * 3_200_000, "image/jpeg")}, headers=H())
    assert huge.status_code == 413 and "request body of" in huge.json()["detail"]

    def chunks():  # type: ignore[no-untyped-def]
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        for _ in range(40):
            yield b"\xff" * 100_000

    streamed = client.post("/search", content=chunks(), headers={**H(), "Content-Type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413 and "request body larger" in streamed.json()["detail"]


def test_unexpected_errors_keep_the_error_schema(api_service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = api_service.settings.model_copy(update={"api_keys": [ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")]})

    def broken() -> list:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api_service, "cameras", broken)
    with TestClient(create_app(settings, api_service), raise_server_exceptions=False) as c:
        r = c.get("/cameras", headers=H())
    assert r.status_code == 500 and "RuntimeError" in r.json()["detail"] and "disk on fire" not in r.text


def wait_for(client: TestClient, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=H()).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.slow
def test_ingest_a_server_side_path_as_a_job(model_client: TestClient) -> None:
    client = model_client
    r = client.post("/ingest", data={"camera": "cam-09", "start": "2026-03-01T09:00:00", "path": "cam-09/empty-room.mp4"}, headers=H(ADMIN))
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/jobs/{r.json()['id']}"
    job = wait_for(client, r.json()["id"])
    assert (job["status"], job["result"]) == ("done", "ingested")  # first seen by this module's private catalog
    assert job["frames_sampled"] == 8 and job["video_s_done"] == pytest.approx(job["video_s_total"])
    assert client.get("/health").json()["index_size"] > 0
    # a camera folder: its files as consecutive recordings (the same content: recognised, nothing added twice)
    folder = client.post("/ingest", data={"camera": "cam-11", "start": "2026-03-01T09:00:00", "path": "cam-11"}, headers=H(ADMIN))
    assert folder.status_code == 202, folder.text
    job = wait_for(client, folder.json()["id"])
    assert (job["status"], job["result"], job["sightings_added"]) == ("done", "already ingested", 0)
    assert job["files_total"] == job["files_done"] == 1 and not job["errors"]


@pytest.mark.slow
def test_health_answers_while_an_ingest_is_running(model_client: TestClient, model_service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    client, api_service = model_client, model_service
    started, release = threading.Event(), threading.Event()
    real_ingest = api_service.ingest

    def held_ingest(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(60)
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(api_service, "ingest", held_ingest)
    try:
        r = client.post("/ingest", data={"camera": "cam-09", "start": "2026-03-01T09:00:00", "path": "cam-09/empty-room.mp4"}, headers=H(ADMIN))
        assert r.status_code == 202 and started.wait(30)
        t = time.perf_counter()
        h = client.get("/health")
        assert h.status_code == 200 and h.json()["jobs"].get("running") == 1 and time.perf_counter() - t < 5
        assert client.get(f"/jobs/{r.json()['id']}", headers=H()).json()["status"] == "running"
    finally:
        release.set()
    assert wait_for(client, r.json()["id"])["status"] == "done"


@pytest.mark.parametrize(
    "path, status, reason",
    [("../outside/secret.mp4", 403, "outside the footage root"), ("/etc/passwd", 403, "outside the footage root"),
     ("cam-09/escape.mp4", 403, "outside the footage root"), ("cam-09/missing.mp4", 404, "does not exist"),
     ("cam-09", 403, "outside the footage root"), ("cam-09/../../outside", 403, "outside the footage root"),
     ("cam-09/\x00.mp4", 400, "unusable path")],
)  # fmt: skip
def test_paths_outside_the_footage_root_are_refused(client: TestClient, path: str, status: int, reason: str) -> None:
    r = client.post("/ingest", data={"camera": "cam-09", "start": "2026-03-01T09:00", "path": path}, headers=H(ADMIN))
    assert r.status_code == status and reason in r.json()["detail"]


def test_video_uploads_are_checked(client: TestClient, footage: Path) -> None:
    import hashlib

    data = {"camera": "cam-10", "start": "2026-03-01T10:00"}
    too_big = client.post("/ingest", data=data, files={"file": ("big.mp4", b"\0" * 3_000_001, "video/mp4")}, headers=H(ADMIN))
    assert too_big.status_code == 413
    wrong = client.post("/ingest", data=data, files={"file": ("notes.txt", b"hello", "text/plain")}, headers=H(ADMIN))
    assert wrong.status_code == 400 and "expected a video file" in wrong.json()["detail"]
    both = client.post("/ingest", data={**data, "path": "cam-09/empty-room.mp4"}, files={"file": ("a.mp4", b"x", "video/mp4")}, headers=H(ADMIN))
    assert both.status_code == 400 and "exactly one" in both.json()["detail"]
    bad_camera = client.post("/ingest", data={**data, "camera": "../x", "path": "cam-09/empty-room.mp4"}, headers=H(ADMIN))
    assert bad_camera.status_code == 422
    # a corrupt upload is accepted as a job and fails with the reason, not a 500
    corrupt = client.post("/ingest", data=data, files={"file": ("broken.mp4", SAMPLE_VIDEO.read_bytes()[:100_000], "video/mp4")}, headers=H(ADMIN))
    assert corrupt.status_code == 202
    job = wait_for(client, corrupt.json()["id"])
    assert job["status"] == "failed" and "truncated" in job["errors"][0]
    room = (footage / "cam-09" / "empty-room.mp4").read_bytes()
    uploads = client.app.state.settings.uploads_dir  # type: ignore[attr-defined]
    assert not (uploads / f"{hashlib.sha256(b'x').hexdigest()}.mp4").exists()
    # refused before the body is read: no key, investigator key; and bodies that are not an ingest form
    assert client.post("/ingest", data=data, files={"file": ("room.mp4", room, "video/mp4")}).status_code == 401
    assert client.post("/ingest", data=data, files={"file": ("room.mp4", room, "video/mp4")}, headers=H()).status_code == 403
    as_json = client.post("/ingest", json=data, headers=H(ADMIN))
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    cut = b'--b\r\nContent-Disposition: form-data; name="camera"\r\n\r\ncam-10\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="r.mp4"\r\n\r\n' + room[:5000]
    truncated = client.post("/ingest", content=cut, headers={**H(ADMIN), "Content-Type": "multipart/form-data; boundary=b"})
    assert truncated.status_code == 400 and "closing boundary" in truncated.json()["detail"]
    assert not list(uploads.glob(".upload.*"))


@pytest.mark.slow
def test_an_uploaded_video_is_kept_under_its_hash_and_ingested(model_client: TestClient, footage: Path) -> None:
    import hashlib

    room = (footage / "cam-09" / "empty-room.mp4").read_bytes()
    data = {"camera": "cam-10", "start": "2026-03-01T10:00"}
    upload = model_client.post("/ingest", data=data, files={"file": ("room.mp4", room, "video/mp4")}, headers=H(ADMIN))
    assert upload.status_code == 202 and wait_for(model_client, upload.json()["id"])["status"] == "done"
    uploads = model_client.app.state.settings.uploads_dir  # type: ignore[attr-defined]
    assert (uploads / f"{hashlib.sha256(room).hexdigest()}.mp4").read_bytes() == room
    assert not list(uploads.glob(".upload.*"))


def test_health_and_docs(client: TestClient) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["embedder"] and h["index_size"] > 0 and "version" in h
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "http://" not in docs.text and "https://" not in docs.text  # nothing from outside (tests/test_web.py)
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/search", "/sightings/{sighting_id}", "/clips/{clip_id}.mp4", "/ingest", "/jobs/{job_id}", "/cameras", "/health", "/audit"} <= set(schema["paths"])
    # every JSON route declares its response model, documented at /docs
    for path, method, model in [("/search", "post", "SearchOut"), ("/sightings/{sighting_id}", "get", "SightingOut"),
                                ("/ingest", "post", "JobOut"), ("/jobs/{job_id}", "get", "JobOut"),
                                ("/cameras", "get", "CameraOut"), ("/health", "get", "HealthOut"), ("/audit", "get", "AuditEntry")]:  # fmt: skip
        ok = schema["paths"][path][method]["responses"]["2" + ("02" if path == "/ingest" else "00")]
        assert f"#/components/schemas/{model}" in str(ok["content"]["application/json"]["schema"]), path
        assert schema["components"]["schemas"][model]["description"]
    assert set(client.get("/health").json()) == set(schema["components"]["schemas"]["HealthOut"]["properties"])
    assert set(client.get("/cameras", headers=H()).json()[0]) == set(schema["components"]["schemas"]["CameraOut"]["properties"])
    page = client.get("/")
    assert page.status_code == 200 and "vsearch" in page.text


def test_health_answers_while_a_search_is_running(client: TestClient, api_service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Inference runs off the event loop: with a (real) search held mid-flight, /health still answers. If the
    search ran on the event loop, the health request would wait behind it and this test would time out."""
    import threading

    started, release = threading.Event(), threading.Event()
    real_search = api_service.search

    def held_search(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(60)
        return real_search(*args, **kwargs)

    monkeypatch.setattr(api_service, "search", held_search)
    results: dict[str, int] = {}
    searcher = threading.Thread(target=lambda: results.update(search=search(client).status_code))
    searcher.start()
    try:
        assert started.wait(60)
        health = threading.Thread(target=lambda: results.update(health=client.get("/health").status_code))
        health.start()
        health.join(10)
        assert results.get("health") == 200 and "search" not in results
    finally:
        release.set()
        searcher.join(60)
    assert results["search"] == 200


def test_the_cli_json_is_the_api_body_without_its_urls(client: TestClient, api_service) -> None:  # type: ignore[no-untyped-def]
    """One result shape (vsearch.search.result_to_dict): `vsearch search --json` prints what POST /search answers,
    less the media URLs the API adds; neither holds a server path."""
    import json
    import subprocess
    import sys

    api = search(client, {"top_k": "3", "cameras": "lobby"}).json()
    cli = subprocess.run(
        [sys.executable, "-m", "vsearch.cli", "search", str(QUERY), "--box", QUERY_BOX, "--top", "3", "--camera", "lobby",
         "--json", "--data-dir", str(api_service.settings.data_dir)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "VSEARCH_EMBEDDER": "hsv-parts"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)

    def without_urls(x):  # type: ignore[no-untyped-def]
        if isinstance(x, dict):
            return {k: without_urls(v) for k, v in x.items() if not k.endswith("_url") and k != "latency_ms"}
        return [without_urls(v) for v in x] if isinstance(x, list) else x

    assert printed["clips"] and without_urls(printed) == without_urls(api)
    assert set(printed["latency_ms"]) == set(api["latency_ms"])
    assert str(SAMPLE_VIDEO.parent) not in cli.stdout and str(SAMPLE_VIDEO.parent) not in json.dumps(api)


@pytest.mark.parametrize("cameras", [["cam-99"], ["lobby,cam-99"], ["lobby", "cam-99"]])
def test_identities_of_an_unknown_camera_are_404_naming_it(client: TestClient, cameras: list[str]) -> None:
    """As for a search (issue 27): a typo in the cameras is never answered with "nobody was seen"."""
    window = {"from": "2026-03-01T14:00", "to": "2026-03-01T15:00"}
    r = client.get("/identities", params={**window, "cameras": cameras}, headers=H(ADMIN))
    assert r.status_code == 404 and "unknown camera 'cam-99'" in r.json()["detail"] and "lobby" in r.json()["detail"]
    assert client.get("/identities", params={**window, "cameras": "lobby"}, headers=H(ADMIN)).json()
