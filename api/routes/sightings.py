"""Sightings: metadata, the stored person crop, and the full frame with the box drawn."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service
from api.schemas import Detail, SightingOut, sighting_out

router = APIRouter(prefix="/sightings", tags=["sightings"])
SightingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Sighting id (from a search result).")]
ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Detail}, 404: {"model": Detail}}


@router.get("/{sighting_id}", response_model=SightingOut, responses=ERRORS)
async def get_sighting(sighting_id: SightingId, service: Service, _: Investigator) -> SightingOut:
    """A sighting's metadata, with its media URLs."""
    s = await run_in_threadpool(service.sighting, sighting_id)
    return sighting_out(s, clip_id=await run_in_threadpool(service.clip_id_for, sighting_id))


@router.get("/{sighting_id}/thumbnail.jpg", response_class=FileResponse, responses=ERRORS)
async def get_thumbnail(sighting_id: SightingId, service: Service, _: Investigator) -> FileResponse:
    """The stored person crop (JPEG)."""
    return FileResponse(await run_in_threadpool(service.crop_file, sighting_id), media_type="image/jpeg")


@router.get("/{sighting_id}/frame.jpg", response_class=FileResponse, responses=ERRORS)
async def get_frame(sighting_id: SightingId, service: Service, _: Investigator) -> FileResponse:
    """The full frame with the person's box drawn (JPEG, rendered once then cached)."""
    return FileResponse(await run_in_threadpool(service.frame_file, sighting_id), media_type="image/jpeg")
