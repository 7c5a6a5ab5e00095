"""Retention (admins): POST /retention/run (or ?dry_run=true) and PUT /cameras/{id}/retention; thin over
vsearch/retention.py, audited there (each deletion batch with its counts) and by the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, Service, key_context
from api.schemas import Detail

router = APIRouter(tags=["retention"])
E: dict[int | str, dict[str, Any]] = {c: {"model": Detail} for c in (400, 401, 403, 404, 422)}


class RetentionIn(BaseModel):
    """A camera's own retention in days; null: back to VSEARCH_RETENTION_DAYS."""

    days: Annotated[float | None, Field(gt=0, le=365_000, allow_inf_nan=False)]


@router.post("/retention/run", responses=E)
async def run(service: Service, key: Admin, dry_run: Annotated[bool, Query(description="Count only.")] = False) -> dict[str, Any]:
    """Delete what has expired, except what open cases hold; with `dry_run`, what would be deleted."""
    return (await run_in_threadpool(service.retention, f"api:{key.name}", dry_run)).to_dict()


@router.put("/cameras/{camera_id}/retention", responses=E)
async def set_retention(camera_id: str, body: RetentionIn, request: Request, service: Service, key: Admin) -> dict[str, Any]:
    """Set a camera's own retention (admins)."""
    await run_in_threadpool(service.casework.set_retention, camera_id, body.days, key.name, key_context(request, key))
    return {"id": camera_id, "retention_days": body.days}
