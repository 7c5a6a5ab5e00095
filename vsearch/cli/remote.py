"""`vsearch search --server URL`: send the search to a running `vsearch serve` (its models are already loaded).

Standard library only (urllib), so a remote search imports no model, index or web library; the server validates,
searches and audits as for any API caller. Its refusals come back as one line, as local ones do.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any

from vsearch.errors import ConfigError, InputError, VSearchError

KEY_VARIABLE = "VSEARCH_API_KEY"  # the caller's key (an investigator's); VSEARCH_API_KEYS is the server's list
TIMEOUT_S = 120.0


def multipart(fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type: `fields` (name, value), `files` (name, filename, type, data)."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, ctype, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def search_through(server: str, images: Sequence[tuple[str, str, bytes]], fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """POST /search on `server` with `images` (filename, content type, data) and form `fields`; the API's body.
    ConfigError without a key or for a refused one; InputError for the server's other refusals (its reason)."""
    key = os.environ.get(KEY_VARIABLE)
    if not key:
        raise ConfigError(f"{KEY_VARIABLE} is not set: a search through --server needs an investigator's API key")
    body, ctype = multipart(fields, [("image", name, t, data) for name, t, data in images])
    try:
        request = urllib.request.Request(
            server.rstrip("/") + "/search", body, {"Content-Type": ctype, "X-API-Key": key}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read()).get("detail", e.reason)
        except ValueError:
            detail = e.reason
        if e.code in (401, 403):
            raise ConfigError(f"the server refused the key in {KEY_VARIABLE} ({e.code}): {detail}") from None
        raise InputError(detail if isinstance(detail, str) else f"{e.code}: {json.dumps(detail)}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, unknown host, timeout, a non-JSON answer
        reason = getattr(e, "reason", e)
        raise VSearchError(f"cannot search through {server}: {reason} (is `vsearch serve` running there?)") from None
