"""Case access: a case is seen by its owner, its members and admins; to any other investigator it does not exist
(404 on every case endpoint, as for an unknown id); every access, refusals too, is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.config import ApiKey, Settings
from vsearch.service import VSearch

ADMIN, IVAN, OLGA = "admin-key-0123456789abcdef", "ivan-key-0123456789abcdef", "olga-key-0123456789abcdef"


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    keys = [ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=IVAN, role="investigator"),
            ApiKey(name="olga", key=OLGA, role="investigator")]  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", api_keys=keys, footage_root=tmp_path)
    svc = VSearch(settings)
    with TestClient(create_app(settings, svc)) as c:
        yield c
    svc.close()


def H(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_another_investigators_case_does_not_exist_for_them(client: TestClient) -> None:
    case = client.post("/cases", json={"name": "ivan's", "notes": "secret"}, headers=H(IVAN)).json()
    cid = case["id"]
    calls = [("get", f"/cases/{cid}", {}), ("patch", f"/cases/{cid}", {"json": {"notes": "gone"}}),
             ("post", f"/cases/{cid}/items", {"data": {"ids": "1"}}), ("delete", f"/cases/{cid}/items/1", {}),
             ("get", f"/cases/{cid}/route", {}), ("get", f"/cases/{cid}/companions", {}),
             ("post", f"/cases/{cid}/export", {}), ("get", f"/cases/{cid}/members", {}),
             ("post", f"/cases/{cid}/members", {"json": {"name": "olga"}})]  # fmt: skip
    for method, path, kw in calls:
        r = getattr(client, method)(path, headers=H(OLGA), **kw)
        assert r.status_code == 404 and r.json()["detail"] == f"no case with id {cid}", (path, r.text)
    assert client.get("/cases", headers=H(OLGA)).json() == []
    assert client.get(f"/cases/{cid}", headers=H(IVAN)).json()["notes"] == "secret"
    assert client.get(f"/cases/{cid}", headers=H(ADMIN)).status_code == 200  # admins see every case
    assert [c["id"] for c in client.get("/cases", headers=H(ADMIN)).json()] == [cid]


def test_the_owner_or_an_admin_shares_a_case_and_members_see_it(client: TestClient) -> None:
    cid = client.post("/cases", json={"name": "shared"}, headers=H(IVAN)).json()["id"]
    assert client.post(f"/cases/{cid}/members", json={"name": "nobody"}, headers=H(IVAN)).status_code == 400
    assert client.post(f"/cases/{cid}/members", json={"name": "olga"}, headers=H(IVAN)).json() == ["olga"]
    assert client.patch(f"/cases/{cid}", json={"notes": "olga's note"}, headers=H(OLGA)).status_code == 200
    assert [c["id"] for c in client.get("/cases", headers=H(OLGA)).json()] == [cid]
    r = client.post(f"/cases/{cid}/members", json={"name": "ada"}, headers=H(OLGA))
    assert r.status_code == 403 and "only the owner" in r.json()["detail"]  # a member may not share further
    assert client.delete(f"/cases/{cid}/members/olga", headers=H(ADMIN)).json() == []
    assert client.get(f"/cases/{cid}", headers=H(OLGA)).status_code == 404


def test_every_case_access_and_refusal_is_audited(client: TestClient) -> None:
    cid = client.post("/cases", json={"name": "a", "notes": "before"}, headers=H(IVAN)).json()["id"]
    client.get(f"/cases/{cid}", headers=H(IVAN))
    client.get(f"/cases/{cid}", headers=H(OLGA))
    client.patch(f"/cases/{cid}", json={"notes": "after"}, headers=H(IVAN))
    client.get("/identities", params={"from": "2026-03-01T14:00", "to": "2026-03-01T15:00"}, headers=H(OLGA))
    client.put("/cameras/lobby", json={"name": "x"}, headers=H(OLGA))
    log = client.get("/audit", params={"limit": 100}, headers=H(ADMIN)).json()
    seen = {(e.get("method"), e.get("path"), e.get("status"), e.get("key_name")) for e in log}
    assert {("GET", f"/cases/{cid}", 200, "ivan"), ("GET", f"/cases/{cid}", 404, "olga"),
            ("GET", "/identities", 403, "olga"), ("PUT", "/cameras/lobby", 403, "olga")} <= seen  # fmt: skip
    update = next(e for e in log if e.get("action") == "case.update")
    assert update["old"]["notes"] == "before" and update["new"]["notes"] == "after" and update["key_name"] == "ivan"
