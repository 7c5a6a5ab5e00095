"""GET /health: no key needed; answers while searches and ingests run (nothing here waits on inference)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Jobs, Service

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(service: Service, jobs: Jobs) -> dict[str, Any]:
    """Index size, models loaded, version, and the ingest queue."""
    return {"status": "ok", **(await run_in_threadpool(service.health)), "jobs": jobs.counts()}
