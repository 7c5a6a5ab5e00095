"""The caller's API key, checked in one function: by the KeyGate middleware before any request body is read, and
by the route dependencies (api/deps.py) that also check the role.

The outcome is left in the request's state for the audit trail: the key that was used, or that none was given or
an unknown one (never the key itself).
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from vsearch.config import ApiKey

READING = ("GET", "HEAD")


def authenticate(request: Request, header: str | None, query: str | None, cookie: str | None) -> ApiKey:
    """The caller's key: the X-API-Key header; for GET/HEAD (media URLs in <img>/<video>) also the page's cookie
    or ?api_key=. Requests that change or search anything need the header, so another site cannot ride the cookie.
    401 for a missing or unknown key."""
    reading = request.method in READING
    given = header or (query or cookie if reading else None)
    if not given:
        request.state.key_problem = "missing"
        where = "X-API-Key header, api_key query parameter or vsearch_key cookie" if reading else "X-API-Key header"
        raise HTTPException(401, f"missing API key ({where})")
    found = None
    for k in request.app.state.settings.api_keys:  # constant-time compare, every key checked
        if hmac.compare_digest(k.key.encode(), given.encode()):
            found = k
    if found is None:
        request.state.key_problem = "unknown"
        raise HTTPException(401, "invalid API key")
    request.state.api_key = found
    return found


class KeyGate:
    """ASGI middleware: a request that may carry a body (anything but GET/HEAD/OPTIONS) is refused with 401 at once
    when its key is missing or unknown, before a byte of the body is read (a keyless 20 MB upload is not waited
    for). Roles are the routes' business."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in (*READING, "OPTIONS"):
            request = Request(scope)
            try:
                authenticate(request, request.headers.get("x-api-key"), None, None)
            except HTTPException as e:  # the unread body cannot be skipped on a kept-alive connection: close it
                response = JSONResponse({"detail": e.detail}, status_code=e.status_code, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
