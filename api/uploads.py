"""The ingest form, read by hand from the request stream: a video part goes straight to a file under the data dir
(hashed as it arrives, refused with 413 the moment it passes the limit); the text fields are small and few.

Reading the body in the handler (not as FastAPI File/Form parameters) means the caller's key and role are checked
before a single byte of the body is read, and nothing is spooled to the system temp folder first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from vsearch.errors import InputError
from vsearch.scratch import scratch_name
from vsearch.video import VIDEO_EXTS

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
FILE_FIELD = "file"


@dataclass
class UploadedForm:
    """Text fields by name, and the uploaded video (already on disk, named by content hash) if one was sent."""

    fields: dict[str, str] = field(default_factory=dict)
    video: Path | None = None
    video_name: str | None = None
    video_is_new: bool = False  # False: the same content was uploaded before (and may be ingested: keep it)

    def discard(self) -> None:
        """Remove a newly uploaded file (the request was refused after it arrived)."""
        if self.video is not None and self.video_is_new:
            self.video.unlink(missing_ok=True)


class Sink(Protocol):
    """Where a file part goes as it arrives."""

    def write(self, data: bytes) -> None: ...
    def finish(self) -> tuple[Path | None, bool]: ...
    def abort(self) -> None: ...


class _VideoSink:
    """One file part: written to a temp file in `folder`, hashed and counted as it arrives."""

    def __init__(self, folder: Path, filename: str, limit: int) -> None:
        self.suffix = Path(filename).suffix.lower()
        if self.suffix not in VIDEO_EXTS:
            raise InputError(f"expected a video file ({', '.join(sorted(VIDEO_EXTS))}), got {filename!r}")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=self.suffix, dir=folder)
        self.file, self.tmp, self.folder, self.limit = os.fdopen(fd, "wb"), Path(tmp), folder, limit
        self.hash, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise HTTPException(413, f"video larger than the limit of {self.limit} bytes")
        self.hash.update(data)
        self.file.write(data)

    def finish(self) -> tuple[Path | None, bool]:
        """The final path (content-addressed) and whether it is new; None for an empty part (an empty file input).
        Clips are cut from the uploaded file later, so a file already there (same content) is left as it is."""
        self.file.close()
        if self.size == 0:
            self.tmp.unlink()
            return None, False
        final = self.folder / f"{self.hash.hexdigest()}{self.suffix}"
        if final.exists():
            self.tmp.unlink()
            return final, False
        os.replace(self.tmp, final)
        return final, True

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class ZipSink:
    """An evidence ZIP being uploaded for verification: a scratch file under the data dir (not the system temp
    folder), refused (400) at its first bytes unless they are a ZIP's, and (413) as soon as it passes `limit`."""

    MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; the end record of an empty ZIP

    def __init__(self, folder: Path, limit: int) -> None:
        fd, tmp = tempfile.mkstemp(prefix=scratch_name("verify"), suffix=".zip", dir=folder)
        self.file, self.tmp, self.limit, self.size, self.head = os.fdopen(fd, "wb"), Path(tmp), limit, 0, b""

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise HTTPException(413, f"evidence ZIP larger than the limit of {self.limit} bytes")
        if len(self.head) < 4:
            self.head += data[: 4 - len(self.head)]
            if len(self.head) == 4 and self.head not in self.MAGIC:
                raise InputError(f"expected an evidence ZIP, got a file starting {self.head!r}")
        self.file.write(data)

    def finish(self) -> tuple[Path | None, bool]:
        self.file.close()
        if len(self.head) < 4:
            self.tmp.unlink()
            raise InputError(f"expected an evidence ZIP, got {self.size} bytes")
        return self.tmp, True

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


async def read_ingest_form(request: Request, folder: Path, limit: int) -> UploadedForm:
    """Parse a multipart or urlencoded ingest form from the request stream (see the module docstring)."""
    return await read_form(request, lambda filename: _VideoSink(folder, filename, limit))


async def read_form(request: Request, make_sink: Callable[[str], Sink]) -> UploadedForm:
    """Parse a multipart or urlencoded form from the request stream; its one file part goes to
    `make_sink(filename)` as it arrives (`UploadedForm.video` is what the sink's `finish` returned)."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"application/x-www-form-urlencoded":
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FIELD_BYTES:
                raise HTTPException(413, f"form larger than {MAX_FIELD_BYTES} bytes (upload videos as multipart)")
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return UploadedForm(fields=dict(pairs[:MAX_FIELDS]))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(415, "expected multipart/form-data (a video upload) or application/x-www-form-urlencoded")
    return await _read_multipart(request, params[b"boundary"], make_sink)


async def _read_multipart(request: Request, boundary: bytes, make_sink: Callable[[str], Sink]) -> UploadedForm:
    form = UploadedForm()
    state: dict[str, Any] = {"headers": {}, "name": b"", "value": b"", "text": None, "sink": None, "ended": False}
    sinks: list[Sink] = []
    pending: list[bytes] = []  # file bytes parsed from the last chunk, written off the event loop

    def on_part_begin() -> None:
        state.update(headers={}, text=None, sink=None)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["name"].lower()] = state["value"]
        state.update(name=b"", value=b"")

    def on_headers_finished() -> None:
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in opts:
            if name != FILE_FIELD or sinks:
                raise InputError(f"expected one file, in the field {FILE_FIELD!r}")
            filename = opts[b"filename"].decode("utf-8", "replace")
            if filename:
                state["sink"] = make_sink(filename)
                sinks.append(state["sink"])
                form.video_name = filename
        else:
            if len(form.fields) >= MAX_FIELDS:
                raise InputError(f"more than {MAX_FIELDS} form fields")
            state["text"] = (name, bytearray())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["sink"] is not None:
            pending.append(data[start:end])
        elif state["text"] is not None:
            state["text"][1].extend(data[start:end])
            if len(state["text"][1]) > MAX_FIELD_BYTES:
                raise InputError(f"form field {state['text'][0]!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if state["text"] is not None:
            name, value = state["text"]
            form.fields[name] = value.decode("utf-8", "replace")

    def on_end() -> None:
        state["ended"] = True

    def flush() -> None:
        sink = sinks[-1] if sinks else None
        if sink is not None and pending:
            sink.write(b"".join(pending))
        pending.clear()

    parser = MultipartParser(boundary, {  # type: ignore[arg-type]
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_end": on_end,
    })  # fmt: skip
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if pending:
                await run_in_threadpool(flush)
        parser.finalize()
        if not state["ended"]:
            raise InputError("the multipart body ended before its closing boundary (upload interrupted?)")
        await run_in_threadpool(flush)
        if sinks:
            form.video, form.video_is_new = await run_in_threadpool(sinks[0].finish)
    except MultipartParseError as e:
        for s in sinks:
            s.abort()
        raise InputError(f"malformed multipart body: {e}") from None
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    return form
