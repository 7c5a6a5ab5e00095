"""GET /cameras: the cameras with footage, for the page's camera choice."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service
from api.schemas import Detail

router = APIRouter(tags=["cameras"])


@router.get("/cameras", responses={401: {"model": Detail}})
async def cameras(service: Service, _: Investigator) -> list[dict[str, Any]]:
    """Cameras with their footage span and number of sightings."""
    return [asdict(c) for c in await run_in_threadpool(service.cameras)]
