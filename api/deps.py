"""Dependencies as Annotated aliases: the service, the job runner, the audit log and the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery

from api.audit import AuditLog
from api.auth import authenticate
from api.jobs import JobRunner
from vsearch.config import ApiKey, Settings
from vsearch.service import VSearch

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (header)")
_query = APIKeyQuery(name="api_key", auto_error=False, description="API key (query; for <img>/<video> URLs)")
_cookie = APIKeyCookie(name="vsearch_key", auto_error=False, description="API key (cookie set by the web page)")


def get_service(request: Request) -> VSearch:
    """The VSearch facade."""
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_jobs(request: Request) -> JobRunner:
    """The ingest job runner."""
    return request.app.state.jobs


def get_audit(request: Request) -> AuditLog:
    """The search audit log."""
    return request.app.state.audit


def _caller(
    request: Request,
    header: str | None = Security(_header),
    query: str | None = Security(_query),
    cookie: str | None = Security(_cookie),
) -> ApiKey:
    """The caller's key (api.auth.authenticate); the three sources are declared here for the OpenAPI docs."""
    return authenticate(request, header, query, cookie)


def key_context(request: Request, key: ApiKey) -> dict[str, object]:
    """The caller as the library's audit entries and access checks take it: role and client address."""
    return {"role": key.role, "client": request.client.host if request.client else None}


def investigator(key: Annotated[ApiKey, Depends(_caller)]) -> ApiKey:
    """Any valid key."""
    return key  # both roles may search and view


def admin(key: Annotated[ApiKey, Depends(_caller)]) -> ApiKey:
    """An admin key, else 403."""
    if key.role != "admin":
        raise HTTPException(403, f"this needs the admin role; key {key.name!r} is {key.role!r}")
    return key


Service = Annotated[VSearch, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Jobs = Annotated[JobRunner, Depends(get_jobs)]
Audit = Annotated[AuditLog, Depends(get_audit)]
Investigator = Annotated[ApiKey, Depends(investigator)]
Admin = Annotated[ApiKey, Depends(admin)]
