"""The /cases API (and camera metadata, identities) with the real app over a private copy of the ingested sample."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.config import ApiKey
from vsearch.service import VSearch

from .conftest import SAMPLE_VIDEO

ADMIN = "admin-key-0123456789abcdef"
INVESTIGATOR = "investigator-key-0123456789"
QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(demo_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("api-cases") / "data"
    shutil.copytree(demo_service.settings.data_dir, data)
    settings = demo_service.settings.model_copy(update={
        "data_dir": data,
        "api_keys": [ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")],
    })  # fmt: skip
    svc = VSearch(settings, demo_service.detector, demo_service.embedder)
    with TestClient(create_app(settings, svc)) as c:
        yield c
    svc.close()


def H(key: str = INVESTIGATOR) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture(scope="module")
def found(client: TestClient) -> dict:
    r = client.post("/search", files={"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")}, data={"top_k": "3"}, headers=H())
    assert r.status_code == 200, r.text
    return r.json()


def test_an_investigator_works_a_case_end_to_end(client: TestClient, found: dict) -> None:
    r = client.post("/cases", json={"name": "Visitor 3", "notes": "lobby"}, headers=H())
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["created_by"] == "ivan" and case["items_count"] == 0
    clip_ids = [c["id"] for c in found["clips"][:2]]
    r = client.post(
        f"/cases/{case['id']}/items", headers=H(),
        data={"ids": ",".join(clip_ids), "filters": json.dumps({"top_k": 3}), "note": "confirmed by eye"},
        files={"query_image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    detail = r.json()
    assert {i["ref"] for i in detail["items"]} == set(clip_ids) and detail["items_count"] == 2
    assert all(i["added_by"] == "ivan" and i["query_sha256"] == found["query"]["image_sha256"] for i in detail["items"])
    assert [c["id"] for c in client.get("/cases", headers=H()).json()] == [case["id"]]
    assert client.get(detail["items"][0]["thumbnail_url"], headers=H()).status_code == 200

    route = client.get(f"/cases/{case['id']}/route", headers=H()).json()
    assert [s["camera_id"] for s in route["stops"]] and route["per_camera_s"]["lobby"] > 0
    csv_text = client.get(f"/cases/{case['id']}/route", params={"format": "csv"}, headers=H())
    assert csv_text.headers["content-type"].startswith("text/csv") and csv_text.text.startswith("order,camera_id")
    assert client.get(f"/cases/{case['id']}/companions", headers=H()).json() == []  # visitors came one at a time

    cid = case["id"]
    refused = client.post(f"/cases/{cid}/export", params={"redact": "none", "reason": "curious"}, headers=H())
    assert refused.status_code == 403 and "needs an admin" in refused.json()["detail"]
    no_reason = client.post(f"/cases/{cid}/export", params={"redact": "none"}, headers=H(ADMIN))
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["detail"]
    assert client.post(f"/cases/{cid}/export", params={"redact": "blur"}, headers=H()).status_code == 422
    exp = client.post(f"/cases/{cid}/export", headers=H())  # redacted (bystanders) by default
    assert exp.status_code == 200 and exp.headers["content-type"] == "application/zip"
    sha = exp.headers["x-manifest-sha256"]
    with zipfile.ZipFile(io.BytesIO(exp.content)) as z:
        assert hashlib.sha256(z.read("manifest.json")).hexdigest() == sha
        names = z.namelist()
        search = json.loads(z.read("manifest.json"))["searches"][0]
        assert json.loads(z.read("manifest.json"))["redaction"]["mode"] == "bystanders"
    audited = [e for e in search["audit_entries"] if e.get("action") == "search"]  # the search itself, as audited
    assert audited and audited[0]["key_name"] == "ivan" and set(clip_ids) <= set(audited[0]["returned_clip_ids"])
    assert search["filters"] == [{"top_k": 3}] and search["query_file"] in names
    ok = client.post("/cases/verify", files={"file": ("e.zip", exp.content, "application/zip")},
                     data={"expect_manifest_sha256": sha}, headers=H()).json()  # fmt: skip
    assert ok["ok"] and ok["files_checked"] == len(names) - 2
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(exp.content)) as zi, zipfile.ZipFile(buf, "w") as zo:
        for info in zi.infolist():
            zo.writestr(info, zi.read(info)[:-1] if info.filename.startswith("crops/") else zi.read(info))
    bad = client.post("/cases/verify", files={"file": ("e.zip", buf.getvalue(), "application/zip")}, headers=H()).json()
    assert not bad["ok"] and len(bad["changed"]) == 2 and all(n.startswith("crops/") for n in bad["changed"])

    item_id = detail["items"][0]["id"]
    assert client.delete(f"/cases/{case['id']}/items/{item_id}", headers=H()).status_code == 204
    assert client.get(f"/cases/{case['id']}", headers=H()).json()["items_count"] == 1
    audit = client.get("/audit", params={"limit": 50}, headers=H(ADMIN)).json()
    actions = {(r.get("action"), r.get("role")) for r in audit}
    assert {("case.create", "investigator"), ("case.add", "investigator"), ("case.export", "investigator"),
            ("case.remove", "investigator")} <= actions  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "detail"),
    [
        ("get", "/cases", {}, 401, "missing API key"),
        ("post", "/cases", {"json": {"name": "x"}}, 401, "missing API key"),
        ("post", "/cases", {"json": {"name": ""}, "headers": H()}, 422, "name"),
        ("get", "/cases/424242", {"headers": H()}, 404, "no case with id 424242"),
        ("get", "/cases/0", {"headers": H()}, 422, "case_id"),
        ("post", "/cases/1/items", {"data": {"ids": "not-a-clip"}, "headers": H()}, 400, "expected a clip id"),
        ("post", "/cases/1/items", {"data": {"ids": "1-999-0-1000"}, "headers": H()}, 404, "not a clip of any stored sighting"),
        ("post", "/cases/1/items", {"data": {"ids": "1-3-0-121000"}, "headers": H()}, 404, "not a clip of any stored sighting"),
        ("post", "/cases/1/items", {"data": {"ids": "²"}, "headers": H()}, 400, "expected a clip id"),
        ("post", "/cases/1/items", {"data": {"ids": "77777"}, "headers": H()}, 404, "no sighting with id 77777"),
        ("post", "/cases/1/items", {"data": {"ids": "1", "filters": "[1]"}, "headers": H()}, 400, "JSON object"),
        ("post", "/cases/1/items", {"data": {"ids": "1"}, "files": {"query_image": ("q.txt", b"hello", "text/plain")},
                                    "headers": H()}, 400, "expected a query image"),  # fmt: skip
        ("get", "/cases/1/route", {"params": {"format": "kml"}, "headers": H()}, 422, "format"),
        ("get", "/cases/1/companions", {"params": {"max_dist_h": "-1"}, "headers": H()}, 422, "max_dist_h"),
        ("post", "/cases/verify", {"files": {"file": ("e.zip", b"not a zip", "application/zip")}, "headers": H()}, 400,
         "expected an evidence ZIP"),
        ("put", "/cameras/lobby", {"json": {"lat": 1.0, "lon": 2.0}, "headers": H()}, 403, "admin role"),
        ("put", "/cameras/lobby", {"json": {"lat": 95.0, "lon": 2.0}, "headers": H(ADMIN)}, 422, "lat"),
        ("put", "/cameras/lobby", {"json": {"lat": 5.0}, "headers": H(ADMIN)}, 400, "both --lat and --lon"),
        ("get", "/identities", {"params": {"from": "2026-03-01T14:00", "to": "2026-03-01T15:00"}, "headers": H()}, 403, "admin role"),
        ("get", "/identities", {"params": {"from": "2026-03-01T15:00", "to": "2026-03-01T14:00"}, "headers": H(ADMIN)}, 400, "end after"),
        ("get", "/identities", {"params": {"from": "yesterday", "to": "2026-03-01T14:00"}, "headers": H(ADMIN)}, 400, "ISO 8601"),
    ],
)
def test_refusals_are_4xx_with_a_reason(client: TestClient, method: str, path: str, kwargs: dict, status: int, detail: str) -> None:
    if not client.get("/cases", headers=H()).json():
        client.post("/cases", json={"name": "first"}, headers=H())
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


def test_camera_metadata_and_people_seen_in_a_window(client: TestClient) -> None:
    r = client.put("/cameras/lobby", json={"name": "Lobby", "lat": 48.137, "lon": 11.575}, headers=H(ADMIN))
    assert r.status_code == 200 and r.json()["name"] == "Lobby"
    people = client.get("/identities", params={"from": "2026-03-01T14:00", "to": "2026-03-01T15:00"}, headers=H(ADMIN)).json()
    assert 2 <= len(people) <= 8 and people[0]["sightings"] >= people[-1]["sightings"]
    assert all(p["cameras"] == ["lobby"] and p["tracks"] for p in people)
    case = client.post("/cases", json={"name": "map"}, headers=H()).json()
    people_ids = [str(people[0]["representative_sighting_id"])]
    assert client.post(f"/cases/{case['id']}/items", data={"ids": people_ids}, headers=H()).status_code == 200
    gj = client.get(f"/cases/{case['id']}/route", params={"format": "geojson"}, headers=H())
    assert gj.headers["content-type"] == "application/geo+json"
    assert gj.json()["features"][0]["geometry"] == {"type": "Point", "coordinates": [11.575, 48.137]}
