"""Cameras, health and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, Audit, Investigator, Service
from api.schemas import Detail

router = APIRouter(tags=["system"])


@router.get("/cameras", responses={401: {"model": Detail}})
async def cameras(service: Service, _: Investigator) -> list[dict[str, Any]]:
    """Cameras with their footage span and number of sightings."""
    return await run_in_threadpool(service.cameras)


@router.get("/health")
async def health(service: Service) -> dict[str, Any]:
    """Index size, models loaded, version. Answers while searches and ingests run."""
    return {"status": "ok", **(await run_in_threadpool(service.health))}


@router.get("/audit", responses={401: {"model": Detail}, 403: {"model": Detail}})
async def read_audit(
    audit: Audit, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
) -> list[dict[str, Any]]:
    """The search audit log, newest first (admins only)."""
    return await run_in_threadpool(audit.read, limit, offset)
