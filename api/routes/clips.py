"""Evidence clips as H.264 MP4, with HTTP range requests so a browser can seek. Every view is audited, with the
case or reason it gives (api.audit.AuditTrail)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service, key_context
from api.schemas import Detail
from vsearch.casework import MAX_REASON

router = APIRouter(prefix="/clips", tags=["clips"])


@router.get(
    "/{clip_id}.mp4", response_class=FileResponse,
    responses={206: {"description": "Partial content (Range)"}, 400: {"model": Detail}, 401: {"model": Detail}, 404: {"model": Detail}},
)  # fmt: skip
async def get_clip(
    clip_id: str,
    request: Request,
    service: Service,
    key: Investigator,
    case_id: Annotated[int | None, Query(ge=1, lt=2**63, description="The case this view is for (audited).")] = None,
    reason: Annotated[str | None, Query(max_length=MAX_REASON, description="Why: free text (audited); a case or a"
                                        " reason is required when the server sets VSEARCH_REQUIRE_REASON=1.")] = None,
) -> FileResponse:
    """The clip's MP4 (rendered on first request, then cached); honours `Range: bytes=a-b`."""
    request.state.audit = audit = {"action": "clip.view", "clip_id": clip_id}
    audit.update(await run_in_threadpool(service.casework.purpose, case_id, reason, key.name, key_context(request, key)))
    path = await run_in_threadpool(service.clip_file, clip_id)
    return FileResponse(path, media_type="video/mp4", filename=f"vsearch-clip-{clip_id}.mp4", content_disposition_type="inline")
