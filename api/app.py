"""create_app(settings, service): the FastAPI app, with injected collaborators (tests build it on real data)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.audit import AuditLog
from api.errors import install_error_handlers
from api.jobs import JobRunner
from api.routes import clips, ingest, search, sightings, system
from vsearch import __version__
from vsearch.config import Settings
from vsearch.service import VSearch

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings, service: VSearch | None = None) -> FastAPI:
    """The API over `service` (built from `settings` if not given). The web page is served at /."""
    owned = service is None
    svc = service or VSearch(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.jobs.close()
        if owned:
            svc.close()

    app = FastAPI(
        title="vsearch",
        version=__version__,
        description="Video-surveillance evidence search: find a person by image, time window and camera.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = svc
    app.state.jobs = JobRunner(svc)
    app.state.audit = AuditLog(settings.audit_log_path)
    install_error_handlers(app)
    for r in (search.router, sightings.router, clips.router, ingest.router, system.router):
        app.include_router(r)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
