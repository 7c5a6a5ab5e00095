"""Evidence clips as H.264 MP4, with HTTP range requests so a browser can seek."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service
from api.schemas import Detail

router = APIRouter(prefix="/clips", tags=["clips"])


@router.get(
    "/{clip_id}.mp4", response_class=FileResponse,
    responses={206: {"description": "Partial content (Range)"}, 400: {"model": Detail}, 401: {"model": Detail}, 404: {"model": Detail}},
)  # fmt: skip
async def get_clip(clip_id: str, service: Service, _: Investigator) -> FileResponse:
    """The clip's MP4 (rendered on first request, then cached); honours `Range: bytes=a-b`."""
    path = await run_in_threadpool(service.clip_file, clip_id)
    return FileResponse(path, media_type="video/mp4", filename=f"vsearch-clip-{clip_id}.mp4", content_disposition_type="inline")
