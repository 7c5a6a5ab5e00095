"""Body limits on the case, camera and verify endpoints, enforced while the body streams in (an empty catalog:
these requests are refused before the catalog matters)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.config import ApiKey, Settings
from vsearch.service import VSearch

ADMIN = "admin-key-0123456789abcdef"
INVESTIGATOR = "investigator-key-0123456789"
MiB = 1024**2


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("limits") / "data"
    keys = [ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")]
    settings = Settings(data_dir=data, api_keys=keys, footage_root=data)
    svc = VSearch(settings)
    with TestClient(create_app(settings, svc)) as c:
        c.post("/cases", json={"name": "first"}, headers={"X-API-Key": INVESTIGATOR})
        yield c
    svc.close()


class Body:
    """A large request body made on demand, counting how many 1 MiB pieces the server pulled."""

    def __init__(self, head: bytes, total: int, tail: bytes = b"") -> None:
        self.head, self.total, self.tail, self.pulled = head, total, tail, 0

    def __iter__(self) -> Iterator[bytes]:
        self.pulled += 1
        yield self.head
        piece = b"0" * MiB
        for _ in range(self.total // MiB):
            self.pulled += 1
            yield piece
        yield self.tail


def send(client: TestClient, method: str, path: str, headers: dict[str, str], body: Body) -> tuple[int, dict]:
    """Drive the real app over ASGI with `body` in 1 MiB messages (the TestClient would read it all first)."""
    pieces = iter(body)
    answer: dict = {"status": 0, "body": b""}

    async def receive() -> dict:
        piece = next(pieces, None)
        return {"type": "http.request", "body": piece or b"", "more_body": piece is not None}

    async def reply(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}  # fmt: skip
    asyncio.run(client.app(scope, receive, reply))  # type: ignore[arg-type]
    return answer["status"], json.loads(answer["body"])


def _multipart(field: str, filename: str, first: bytes, size: int) -> tuple[Body, dict[str, str]]:
    head = (f'--B\r\nContent-Disposition: form-data; name="ids"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data;'
            f' name="{field}"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode() + first
    return Body(head, size, b"\r\n--B--\r\n"), {"Content-Type": "multipart/form-data; boundary=B"}  # fmt: skip


H = {"X-API-Key": INVESTIGATOR}


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_gigabyte_query_image_on_a_case_is_refused_while_it_streams(client: TestClient, declared: bool) -> None:
    body, headers = _multipart("query_image", "q.jpg", b"\xff\xd8\xff", 1024 * MiB)
    if declared:
        headers["Content-Length"] = str(1024 * MiB + 300)
    status, answer = send(client, "POST", "/cases/1/items", {**H, **headers}, body)
    assert status == 413, answer
    limit = client.app.state.settings.max_image_bytes + MiB  # type: ignore[attr-defined]
    assert body.pulled <= (0 if declared else limit // MiB + 2)


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [("patch", "/cases/1", INVESTIGATOR), ("post", "/cases", INVESTIGATOR), ("put", "/cameras/lobby", ADMIN)],
)
def test_a_300_mb_json_body_is_refused_without_being_read_whole(client: TestClient, method: str, path: str, key: str) -> None:
    body = Body(b'{"notes": "', 300 * MiB, b'"}')
    status, answer = send(client, method.upper(), path, {"X-API-Key": key, "Content-Type": "application/json"}, body)
    assert status == 413 and "larger than the limit of 1048576 bytes" in answer["detail"]
    assert body.pulled <= 3


def test_a_gigabyte_non_zip_verify_upload_is_refused_at_its_first_bytes(client: TestClient) -> None:
    body, headers = _multipart("file", "e.zip", b"GIF89a", 1024 * MiB)
    status, answer = send(client, "POST", "/cases/verify", {**H, **headers}, body)
    assert status == 400 and "expected an evidence ZIP, got a file starting b'GIF8'" in answer["detail"]
    assert body.pulled <= 2
    scratch = Path(client.app.state.settings.data_dir) / "tmp"  # type: ignore[attr-defined]
    assert list(scratch.iterdir()) == []  # the partial upload is gone


def test_verify_refuses_a_zip_bomb_with_413_and_a_reason(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("clips/zeros.mp4", "w", force_zip64=True) as f:
        for _ in range(200):
            f.write(bytes(MiB))
    r = client.post("/cases/verify", files={"file": ("e.zip", buf.getvalue(), "application/zip")}, headers=H)
    assert r.status_code == 413 and "the limit is 100x" in r.json()["detail"], r.text


def test_verify_problems_hold_no_server_path(client: TestClient) -> None:
    r = client.post("/cases/verify", files={"file": ("e.zip", b"PK\x03\x04 not really", "application/zip")}, headers=H)
    assert r.status_code == 200 and r.json()["problems"] == ["not a readable ZIP (File is not a zip file)"]
