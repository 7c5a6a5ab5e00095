"""One error body everywhere: {"detail": "<reason>"}, mapped from vsearch's exception family in one place."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vsearch.config import Settings
from vsearch.errors import (
    BusyError,
    IndexStateError,
    InputError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    StorageError,
    TooLargeError,
    VSearchError,
)

log = logging.getLogger("vsearch.api")

# most specific first: VideoError and TooLargeError are InputErrors; anything else of the family is the caller's input;
# StorageError (the data dir or the audit log cannot take a write; nothing was done) is the server's: 503
STATUS: list[tuple[type[VSearchError], int]] = [
    (NotFoundError, 404), (PermissionDeniedError, 403), (BusyError, 409), (TooLargeError, 413), (InputError, 400), (IndexStateError, 409), (ModelError, 503),
    (StorageError, 503), (VSearchError, 400),
]  # fmt: skip


def status_for(exc: VSearchError) -> int:
    """The HTTP status of a vsearch error."""
    return next(code for cls, code in STATUS if isinstance(exc, cls))


# an absolute path with at least one folder (folder names may hold spaces), not inside a word or a URL
# (multipart/form-data, http://host/x)
_PATH = re.compile(r"(?<![\w/:.~-])/(?:[^'\"/:;,()\n]+/)+([^\s'\"/:;,()]*)")


def public(detail: str, settings: Settings) -> str:
    """`detail` without server filesystem paths: a path becomes its file's name (a relative data dir too)."""
    if not settings.data_dir.is_absolute():
        detail = detail.replace(f"{settings.data_dir}/", "/data/")
    return _PATH.sub(lambda m: m.group(1) or "(a folder)", detail)


def internal_error_detail(exc: BaseException) -> str:
    """The body of a 500: the exception's type only (its message may hold anything)."""
    return f"internal error ({type(exc).__name__}); see the server log"


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map vsearch errors, validation errors, HTTP errors and anything unexpected to {"detail": ...}."""

    def body(detail: str) -> dict[str, str]:  # the one place an error becomes a body: no server paths in it
        return {"detail": public(detail, app.state.settings)}

    @app.exception_handler(VSearchError)
    async def vsearch_error(_: Request, exc: VSearchError) -> JSONResponse:
        return JSONResponse(body(str(exc)), status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(body(_validation_detail(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(body(str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: logged, same body shape
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": internal_error_detail(exc)}, status_code=500)
