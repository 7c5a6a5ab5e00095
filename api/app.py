"""create_app(settings, service): the FastAPI app, with injected collaborators (tests build it on real data)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.audit import AuditTrail
from api.auth import KeyGate
from api.errors import install_error_handlers
from api.jobs import AdaptRunner, JobRunner
from api.limits import DEFAULT_BODY_BYTES, FORM_OVERHEAD_BYTES, BodyLimit
from api.routes import (
    adapt,
    audit,
    cameras,
    cases,
    clips,
    find,
    health,
    ingest,
    retention,
    search,
    sightings,
    watchlists,
)
from vsearch import __version__
from vsearch.config import Settings
from vsearch.search import MAX_QUERY_IMAGES
from vsearch.service import VSearch

STATIC = Path(__file__).resolve().parent / "static"
# every request to these paths is written to the audit log, whatever its outcome (a trailing /* : every path under
# it): searches; every case access (reads, verifies, companions, refusals); camera metadata, identities, the log;
# adaptations; watchlists, alerts (the alert stream's entry is written when it closes) and webhook dead letters;
# clip views (with their case or reason)
AUDITED = ("/search", "/cases", "/cases/*", "/cameras/*", "/identities", "/audit", "/audit/*", "/adapt", "/watchlists",
           "/watchlists/*", "/alerts", "/alerts/*", "/clips/*", "/webhooks/*", "/retention/*")
DESCRIPTION = """Video-surveillance evidence search: find a person by image, time window and camera.

**Keys.** Every endpoint but `/health` needs an API key in the `X-API-Key` header. GET requests (media in
`<img>`/`<video>` tags, which cannot send headers) also accept the `vsearch_key` cookie the web page sets, or
`?api_key=`; searches and ingests need the header, so another site cannot ride the cookie.
`investigator` keys may search and view; `admin` keys may also ingest and read the audit log.
Missing or unknown key: 401; wrong role: 403.

**Errors** are always `{"detail": "<reason>"}`: 400 bad input (undecodable image, bad time or range), 404 unknown
id, 413 upload over the limit, 415 not an image, 422 malformed field, 403 path outside the footage root.

Every search attempt is written to the audit log with its outcome, refused ones too (`GET /audit`, admins).

**Adaptation** (`POST /adapt`, admins): fine-tune the re-ID model on this deployment's own tracks, no labels,
write it as a new embedder, re-embed every sighting and switch to it (or `{"rollback": true}`); audited.

**Cases.** Investigators open cases, add confirmed clips, see the person's route and companions, and export
verifiable evidence ZIPs; every change and export is in the audit log. Camera metadata and `GET /identities`
(people seen in a window) are for admins.
"""


def create_app(settings: Settings, service: VSearch | None = None) -> FastAPI:
    """The API over `service` (built from `settings` if not given). The web page is served at /."""
    owned = service is None
    svc = service or VSearch(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sender = svc.watchlists.deliverer().start()  # webhook deliveries queued by any ingest worker (vsearch.webhooks)
        yield
        sender.close()
        app.state.jobs.close()
        app.state.adapt_jobs.close()
        if owned:
            svc.close()

    app = FastAPI(
        title="vsearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs below, from the package's own files: FastAPI's loads Swagger UI from a public CDN
        redoc_url=None,  # one docs page is enough (ReDoc too would come from a CDN)
    )
    app.state.settings = settings
    app.state.service = svc
    app.state.jobs = JobRunner(svc)
    app.state.adapt_jobs = AdaptRunner(svc)
    app.state.audit = svc.audit  # the catalog's audit table, mirrored to audit.jsonl (vsearch.audit)
    install_error_handlers(app)
    for r in (adapt.router, search.router, find.router, sightings.router, clips.router, ingest.router, cameras.router, health.router, audit.router,
              retention.router):
        app.include_router(r)
    app.include_router(cases.router)  # cases, routes, companions, evidence export/verify, identities
    app.include_router(watchlists.router)  # watchlist entries and their alerts
    app.add_middleware(
        BodyLimit,
        limits={"/search": settings.max_image_bytes + FORM_OVERHEAD_BYTES,
                "/ingest": settings.max_video_bytes + FORM_OVERHEAD_BYTES,
                "/cases/verify": cases.MAX_ZIP_BYTES + FORM_OVERHEAD_BYTES,
                "/cases/{case_id}/items": settings.max_image_bytes + FORM_OVERHEAD_BYTES,  # a query image
                "/watchlists": MAX_QUERY_IMAGES * settings.max_image_bytes + FORM_OVERHEAD_BYTES},
        default=DEFAULT_BODY_BYTES,  # every other path: JSON bodies (cases, cameras, PATCH) and small forms
    )  # fmt: skip
    app.add_middleware(KeyGate)  # outside the body limit: a keyless request gets 401 whatever its size
    app.add_middleware(AuditTrail, audit=app.state.audit, paths=AUDITED)  # outermost: sees every answer

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The investigators' web page."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        """The API docs: Swagger UI (swagger-ui-dist 5.36.0, api/static/swagger-ui/SOURCE.md), served from here."""
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title="vsearch API",
            swagger_js_url=f"{root}/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/swagger-ui/favicon-32x32.png",
        )  # fmt: skip

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
