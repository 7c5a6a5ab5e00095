"""The streaming ingest-form parser, fed real multipart bodies (encoded by httpx, as a client sends them) in chunks."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import HTTPException
from starlette.requests import Request

from api.uploads import MAX_FIELD_BYTES, MAX_FIELDS, UploadedForm, read_ingest_form
from vsearch.errors import InputError

VIDEO = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
LIMIT = 100_000


def encode(data: dict | None = None, files: dict | None = None) -> tuple[bytes, str]:
    """A form as httpx encodes it: (body, content-type)."""
    req = httpx.Request("POST", "http://x/ingest", data=data, files=files)
    return req.read(), req.headers["content-type"]


def parse(
    body: bytes, content_type: str, folder: Path, chunk: int = 4096, limit: int = LIMIT
) -> UploadedForm:
    """Run the parser over `body` arriving in `chunk`-byte pieces."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/ingest",
        "headers": [(b"content-type", content_type.encode())],
    }
    return asyncio.run(read_ingest_form(Request(scope, receive), folder, limit))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".upload.*")) if folder.exists() else []


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_an_upload_is_stored_under_its_content_hash_whatever_the_chunking(tmp_path: Path, chunk: int) -> None:
    body, ctype = encode(
        {"camera": "cam-1", "start": "2026-03-01T14:00:00"}, {"file": ("lobby.MP4", VIDEO, "video/mp4")}
    )
    form = parse(body, ctype, tmp_path, chunk)
    assert form.fields == {"camera": "cam-1", "start": "2026-03-01T14:00:00"}
    assert (
        form.video == tmp_path / f"{hashlib.sha256(VIDEO).hexdigest()}.mp4"
        and form.video.read_bytes() == VIDEO
    )
    assert form.video_name == "lobby.MP4" and form.video_is_new
    assert leftovers(tmp_path) == []


def test_the_same_content_again_is_not_new_and_survives_discard(tmp_path: Path) -> None:
    body, ctype = encode({"camera": "c"}, {"file": ("a.mp4", VIDEO, "video/mp4")})
    first = parse(body, ctype, tmp_path)
    again = parse(body, ctype, tmp_path)
    assert again.video == first.video and not again.video_is_new
    again.discard()
    assert first.video is not None and first.video.exists()
    first.discard()
    assert not first.video.exists()


def browser_form_without_file() -> tuple[bytes, str]:
    """What a browser sends for a form whose file input was left empty: a file part with filename=""."""
    b = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="path"\r\n\r\ncam-1/a.mp4\r\n'
        f'--{b}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n\r\n--{b}--\r\n"
    )
    return body.encode(), f"multipart/form-data; boundary={b}"


@pytest.mark.parametrize(
    "request_body",
    [
        browser_form_without_file,
        lambda: encode({"path": "cam-1/a.mp4"}, {"file": ("a.mp4", b"", "video/mp4")}),
    ],
    ids=["empty file input", "zero-byte file"],
)
def test_an_empty_file_part_is_no_video(tmp_path: Path, request_body) -> None:  # type: ignore[no-untyped-def]
    form = parse(*request_body(), tmp_path)
    assert form.video is None and form.fields == {"path": "cam-1/a.mp4"}
    assert list(tmp_path.iterdir()) == []


def test_a_urlencoded_form_has_fields_only(tmp_path: Path) -> None:
    body, ctype = encode({"camera": "cam-1", "path": "cam-1", "start": ""})
    assert ctype == "application/x-www-form-urlencoded"
    assert parse(body, ctype, tmp_path) == UploadedForm(
        fields={"camera": "cam-1", "path": "cam-1", "start": ""}
    )


def truncated() -> tuple[bytes, str]:
    body, ctype = encode({"camera": "c"}, {"file": ("a.mp4", VIDEO, "video/mp4")})
    return body[: len(body) // 2], ctype


@pytest.mark.parametrize(
    "request_body, refusal, message",
    [
        (lambda: encode(files={"file": ("a.mp4", VIDEO * 3, "video/mp4")}), 413, "larger than the limit"),
        (lambda: encode(files={"file": ("notes.txt", b"hello", "text/plain")}), InputError, "expected a video file"),
        (lambda: encode(files={"video": ("a.mp4", VIDEO, "video/mp4")}), InputError, "expected one file, in the field 'file'"),
        (lambda: encode(files=[("file", ("a.mp4", VIDEO, "video/mp4")), ("file", ("b.mp4", VIDEO, "video/mp4"))]),
         InputError, "expected one file"),
        (truncated, InputError, "ended before its closing boundary"),
        (lambda: (b"--xyz\r\nnot a header line\r\n\r\n", "multipart/form-data; boundary=xyz"), InputError, "malformed multipart"),
        (lambda: encode({f"f{i}": "v" for i in range(MAX_FIELDS + 1)}, {"file": ("a.mp4", b"x", "video/mp4")}),
         InputError, f"more than {MAX_FIELDS} form fields"),
        (lambda: encode({"camera": "c" * (MAX_FIELD_BYTES + 1)}, {"file": ("a.mp4", b"x", "video/mp4")}),
         InputError, "longer than"),
        (lambda: encode({"camera": "c" * (MAX_FIELD_BYTES + 1)}), 413, "upload videos as multipart"),
        (lambda: (b'{"camera": "c"}', "application/json"), 415, "expected multipart/form-data"),
        (lambda: (b"", "multipart/form-data"), 415, "expected multipart/form-data"),  # no boundary
    ],
)  # fmt: skip
def test_refused_forms_leave_no_file_behind(
    tmp_path: Path, request_body, refusal: int | type, message: str
) -> None:  # type: ignore[no-untyped-def]
    """An int refusal is the HTTP status of an HTTPException; InputError is mapped to 400 by the app."""
    body, ctype = request_body()
    with pytest.raises(HTTPException if isinstance(refusal, int) else refusal) as e:
        parse(body, ctype, tmp_path)
    if isinstance(e.value, HTTPException):
        assert (e.value.status_code, message in e.value.detail) == (refusal, True), e.value.detail
    else:
        assert message in str(e.value)
    assert leftovers(tmp_path) == [] and not list(tmp_path.glob("*.mp4"))
