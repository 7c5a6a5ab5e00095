"""GET /health: no key needed; answers while searches and ingests run (nothing here waits on inference)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Jobs, Service
from api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
async def health(service: Service, jobs: Jobs) -> HealthOut:
    """Index size, models loaded, version, and the ingest queue."""
    return HealthOut.model_validate({"status": "ok", **(await run_in_threadpool(service.health)), "jobs": jobs.counts()})
