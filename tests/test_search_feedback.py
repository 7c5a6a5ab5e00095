"""Several query images of one person, and investigator feedback (same person / not this person), through the API
and the CLI over the ingested sample clip."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.schemas import AuditEntry
from vsearch.audit import AuditLog
from vsearch.catalog import SqliteCatalog
from vsearch.config import ApiKey
from vsearch.search import SearchFilters
from vsearch.service import VSearch

from .conftest import private_copy, visits
from .test_api import ADMIN, INVESTIGATOR, QUERY, H
from .test_cli import vsearch
from .test_pipeline import visitor_crop

pytestmark = pytest.mark.slow
V3 = [v for v in visits() if v[0] == 3][0]  # the visit of QUERY (visitor3.jpg)


@pytest.fixture(scope="module")
def api_service(demo_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A private copy of the session's ingested data (marks and the audit log are written), sharing its models."""
    svc = private_copy(demo_service, tmp_path_factory.mktemp("feedback"))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(api_service: VSearch):  # type: ignore[no-untyped-def]
    keys = [ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")]
    with TestClient(create_app(api_service.settings.model_copy(update={"api_keys": keys}), api_service)) as c:
        yield c


def in_visit_3(clip: dict) -> bool:
    return V3[1] - 1.5 <= clip["best"]["pts_s"] <= V3[2] + 1.5


def post(client: TestClient, images: list[bytes], data: dict | None = None):  # type: ignore[no-untyped-def]
    files = [("image", (f"q{i}.jpg", b, "image/jpeg")) for i, b in enumerate(images)]
    return client.post("/search", files=files, data=data or {}, headers=H())


def last_audit(client: TestClient) -> dict:
    return client.get("/audit", params={"limit": 1}, headers=H(ADMIN)).json()[0]


def test_two_images_of_one_person_are_searched_together(client: TestClient, api_service: VSearch) -> None:
    second = visitor_crop(api_service, 63.3)  # the same visitor, later in the visit
    r = post(client, [QUERY.read_bytes(), second], {"top_k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [q["source"] for q in body["queries"]] == ["whole image", "whole image"]
    assert body["queries"][0] == body["query"] and body["queries"][0]["image_sha256"] != body["queries"][1]["image_sha256"]
    assert in_visit_3(body["clips"][0])
    audit = last_audit(client)
    assert audit["query_sha256s"] == [q["image_sha256"] for q in body["queries"]]
    refused = post(client, [QUERY.read_bytes(), second], {"box": "0,0,50,100"})
    assert refused.status_code == 400 and "one image" in refused.json()["detail"]


def test_marks_refine_the_search_are_stored_and_audited(client: TestClient, api_service: VSearch) -> None:
    before = post(client, [QUERY.read_bytes()], {"top_k": "10"}).json()["clips"]
    right = before[0]
    assert in_visit_3(right)
    wrong = next(c for c in before if not in_visit_3(c))
    data = {"top_k": "10", "confirmed": [str(right["best"]["id"])], "rejected": [str(wrong["best"]["id"])]}
    r = post(client, [QUERY.read_bytes()], data)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["demoted"] >= 1 and in_visit_3(after["clips"][0])
    ids = [c["id"] for c in after["clips"]]
    # the rejected clip goes below every clip that was not demoted (it was above some of them before)
    assert wrong["id"] in ids and ids.index(wrong["id"]) >= len(ids) - after["demoted"]
    assert ids.index(wrong["id"]) > [c["id"] for c in before].index(wrong["id"])
    marks = {(m.sighting_id, m.mark, m.marked_by) for m in api_service.catalog.marks(limit=10)}
    assert {(right["best"]["id"], "same", "api:ivan"), (wrong["best"]["id"], "different", "api:ivan")} <= marks
    audit = last_audit(client)
    assert (audit["confirmed"], audit["rejected"]) == ([right["best"]["id"]], [wrong["best"]["id"]])


@pytest.mark.parametrize(
    "data, status, message",
    [
        ({"confirmed": ["999999"]}, 404, "confirmed sightings [999999] do not exist"),
        ({"rejected": ["999998"]}, 404, "rejected sightings [999998] do not exist"),
        ({"confirmed": ["1"], "rejected": ["1"]}, 400, "both confirmed and rejected"),
        ({"rejected": ["0"]}, 400, "positive 64-bit integers"),
        ({"confirmed": ["seven"]}, 422, ""),
    ],
)
def test_bad_marks_are_refused(client: TestClient, data: dict, status: int, message: str) -> None:
    r = post(client, [QUERY.read_bytes()], data)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"] or status == 422
    if status != 422:  # refused in the library: audited with the reason
        audit = last_audit(client)
        assert audit["returned_sighting_ids"] == [] and message in audit["error"]


def test_cli_confirm_and_reject(api_service: VSearch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(api_service.settings.data_dir, data)
    first = api_service.search(QUERY.read_bytes(), SearchFilters(top_k=1)).clips[0]
    unknown = vsearch("search", str(QUERY), "--reject", "999999", data_dir=data)
    assert unknown.returncode == 2 and "rejected sightings [999999] do not exist" in unknown.stderr
    ok = vsearch("search", str(QUERY), str(QUERY), "--confirm", str(first.best.id), "--json", data_dir=data)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert len(out["queries"]) == 2 and out["clips"][0]["best"]["id"] == first.best.id
    marks = SqliteCatalog(data / "catalog.sqlite").marks()
    assert [(m.sighting_id, m.mark) for m in marks][:1] == [(first.best.id, "same")]
    assert marks[0].marked_by.startswith("cli:")
    # the CLI's searches are audited as the API's are, refused ones too (the log is one, in the data dir)
    refused, done = AuditLog(SqliteCatalog(data / "catalog.sqlite"), data / "audit.jsonl").read(2)[::-1]
    assert refused["via"] == "cli" and refused["exit_code"] == 2 and "999999" in refused["error"]
    assert refused["rejected"] == [999999] and refused["returned_sighting_ids"] == []
    assert done["via"] == "cli" and done["exit_code"] == 0 and done["key_name"].startswith("cli:")
    assert done["confirmed"] == [first.best.id] and done["query_sha256"] == hashlib.sha256(QUERY.read_bytes()).hexdigest()
    assert len(done["query_sha256s"]) == 2 and done["returned_sighting_ids"][0] == first.best.id
    assert done["returned_clip_ids"] == [c["id"] for c in out["clips"]]
    assert AuditEntry.model_validate(done).key_name == done["key_name"]  # GET /audit shows it
