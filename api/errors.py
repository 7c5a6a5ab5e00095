"""One error body everywhere: {"detail": "<reason>"}, mapped from vsearch's exception family in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vsearch.errors import IndexStateError, InputError, ModelError, NotFoundError, VSearchError

log = logging.getLogger("vsearch.api")

# most specific first: VideoError is an InputError; anything else of the family is the caller's input
STATUS: list[tuple[type[VSearchError], int]] = [
    (NotFoundError, 404), (InputError, 400), (IndexStateError, 409), (ModelError, 503), (VSearchError, 400),
]  # fmt: skip


def status_for(exc: VSearchError) -> int:
    """The HTTP status of a vsearch error."""
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map vsearch errors, validation errors, HTTP errors and anything unexpected to {"detail": ...}."""

    @app.exception_handler(VSearchError)
    async def vsearch_error(_: Request, exc: VSearchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: logged, same body shape
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)
