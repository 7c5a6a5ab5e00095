"""The API's side of the audit log (the log itself, one writer for the API and the CLI, is vsearch.audit).

Every attempt is recorded, refused ones too: the AuditTrail middleware sees every response of an audited path
(401 from the key gate, 413 from the body limit, 415/422/400 from the route, malformed bodies, 500s) and writes
one line with its status and reason; the route adds what it knows (query image, filters, results). A request
to an audited path is answered 503 with the reason, before anything is read or done, when the log cannot be
written."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vsearch.audit import AuditLog
from vsearch.errors import StorageError

__all__ = ["AuditLog", "AuditTrail"]
log = logging.getLogger("vsearch.api")

MAX_ERROR_BODY = 16 * 1024


class AuditTrail:
    """ASGI middleware: one audit record per request to an audited path, whatever its outcome.

    The record holds the method, path, status, client address, the key's name and role (or `"key": "missing"` /
    `"unknown"`, never the key itself), the fields a route put in `request.state.audit`, and for a refusal the
    `error` its body gave."""

    def __init__(self, app: ASGIApp, audit: AuditLog, paths: Collection[str]) -> None:
        self.app, self.audit = app, audit
        self.paths = frozenset(p for p in paths if not p.endswith("/*"))
        self.prefixes = tuple(p[:-1] for p in paths if p.endswith("/*"))  # '/cases/*': every path under /cases/

    def audited(self, path: str) -> bool:
        """Whether requests to `path` are written to the audit log."""
        return path in self.paths or path.startswith(self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            await run_in_threadpool(self.audit.ready)
        except StorageError as e:  # no access without its entry
            await JSONResponse({"detail": str(e)}, status_code=503)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status, body = 0, bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400 and len(body) < MAX_ERROR_BODY:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:  # answered by the server-error handler outside this middleware
            from api.errors import internal_error_detail

            await run_in_threadpool(self._append, self._record(scope, state, status or 500, internal_error_detail(e)))
            raise
        except BaseException:  # cancelled (the client went away): written without awaiting anything
            self._append(self._record(scope, state, status or 499, "the request was abandoned"))
            raise
        if getattr(state.get("audit"), "written", False):
            return  # the library wrote the request's entry (a search: vsearch.audit.SearchRecord)
        await run_in_threadpool(self._append, self._record(scope, state, status, _detail(bytes(body)) if status >= 400 else None))

    def _append(self, record: dict[str, Any]) -> None:
        """Write the request's entry; the answer is already sent, so a log that failed since `ready` is reported
        in the server log (the route's own changes carry their entries in their transactions)."""
        try:
            self.audit.append(record)
        except StorageError as e:
            log.error("audit entry of %s %s not written: %s", record["method"], record["path"], e)

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int, error: str | None) -> dict[str, Any]:
        key = state.get("api_key")
        client = scope.get("client")
        record: dict[str, Any] = {"method": scope["method"], "path": scope["path"], "status": status,
                                  "client": client[0] if client else None}  # fmt: skip
        if key is not None:
            record.update(key_name=key.name, role=key.role)
        elif "key_problem" in state:
            record["key"] = state["key_problem"]
        record.update(state.get("audit", {}))
        if error is not None:
            record["error"] = error
        return record


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace") or "no reason given"
    return detail if isinstance(detail, str) else json.dumps(detail)
