"""Request body limits enforced while the body streams in, before FastAPI parses (and spools) a multipart form.

A declared Content-Length over the limit is refused at once, without reading the body; a body without one
(chunked) is counted as it arrives and cut off as soon as it passes the limit. Either way: 413 with the one
error schema. The handlers still check each uploaded file against its own limit exactly.

Every path has a limit: those named (by route template, `/cases/{case_id}/items`) have theirs, any other path
`DEFAULT_BODY_BYTES` (JSON bodies of cases, cameras, PATCH: a 300 MB JSON body is refused, never read whole). A
route that takes larger bodies must be named here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_OVERHEAD_BYTES = 1 << 20  # multipart boundaries, part headers and the small text fields
DEFAULT_BODY_BYTES = 1 << 20  # any path not named: JSON bodies and small forms


def _template(path: str) -> re.Pattern[str]:
    """'/cases/{case_id}/items' -> a pattern matching '/cases/12/items' (one segment per parameter)."""
    parts = re.split(r"\{[^}/]+\}", path)
    return re.compile("^" + "[^/]+".join(map(re.escape, parts)) + "$")


class BodyLimit:
    """ASGI middleware: request body limits (bytes) per path template on top of an app, `default` elsewhere."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int = DEFAULT_BODY_BYTES) -> None:
        self.app = app
        self.rules = [(_template(p), n) for p, n in limits.items()]
        self.default = default

    def limit_for(self, path: str) -> int:
        """The body limit of a request path."""
        return next((n for pattern, n in self.rules if pattern.match(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            detail = f"request body of {declared} bytes is larger than the limit of {limit} bytes"
            await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # raised inside the form parser; the app's handler renders it as 413
                    raise HTTPException(413, f"request body larger than the limit of {limit} bytes")
            return message

        await self.app(scope, limited, send)
