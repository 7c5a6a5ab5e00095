"""GET /cameras: the cameras with footage, for the page's camera choice."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service
from api.schemas import CameraOut, Detail, camera_out

router = APIRouter(tags=["cameras"])


@router.get("/cameras", response_model=list[CameraOut], responses={401: {"model": Detail}})
async def cameras(service: Service, _: Investigator) -> list[CameraOut]:
    """Cameras with their footage span and number of sightings."""
    return [camera_out(c) for c in await run_in_threadpool(service.cameras)]
