"""Watchlists and alerts: investigators add, change and acknowledge their own; admins see and change all.

Thin over `VSearch.watchlists`: every change is audited there (with the caller's key, role and address), every
request by the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, Investigator, Service
from api.forms import camera_list, read_limited
from api.schemas import Detail
from vsearch.config import ApiKey
from vsearch.search import MAX_QUERY_IMAGES
from vsearch.watchlist import alert_to_dict, entry_to_dict

router = APIRouter(tags=["watchlists"])
EntryId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Watchlist entry id.")]
AlertId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Alert id.")]
E: dict[int | str, dict[str, Any]] = {c: {"model": Detail} for c in (400, 401, 403, 404, 413, 415, 422)}


def _ctx(request: Request, key: ApiKey) -> dict[str, Any]:
    return {"role": key.role, "client": request.client.host if request.client else None}


@router.post("/watchlists", status_code=201, responses=E)
async def add_entry(
    request: Request,
    service: Service,
    settings: AppSettings,
    key: Investigator,
    name: Annotated[str, Form(min_length=1, max_length=200, description="Who is wanted.")],
    image: Annotated[list[UploadFile] | None, File(description="Photos or crops of the person (repeat).")] = None,
    sighting: Annotated[list[int] | None, Form(description="Sighting ids of the person (repeat).")] = None,
    case_id: Annotated[int | None, Form(ge=1, le=2**63 - 1, description="A case to link.")] = None,
    cameras: Annotated[list[str] | None, Form(description="Only these cameras: comma-separated and/or repeated.")] = None,
    min_score: Annotated[float | None, Form(allow_inf_nan=False, description="Cosine similarity an alert needs.")] = None,
    expires: Annotated[str | None, Form(description="Stop watching at this time, ISO 8601.")] = None,
) -> dict[str, Any]:
    """Add a wanted person from images and/or sightings already found."""
    images = image or []
    if len(images) > MAX_QUERY_IMAGES:
        raise HTTPException(400, f"at most {MAX_QUERY_IMAGES} images per entry, got {len(images)}")
    data = []
    for upload in images:
        ctype = (upload.content_type or "").lower()
        if not ctype.startswith("image/"):
            raise HTTPException(415, f"expected an image upload (image/jpeg, image/png, ...), got {ctype or 'no content type'!r}")
        data.append(await read_limited(upload, settings.max_image_bytes, "image"))
    e = await run_in_threadpool(
        service.watchlists.add, name, data, key.name, _ctx(request, key), case_id, camera_list(cameras), min_score,
        expires or None, sighting or [],
    )  # fmt: skip
    return entry_to_dict(e)


@router.get("/watchlists", responses=E)
async def list_entries(request: Request, service: Service, key: Investigator) -> list[dict[str, Any]]:
    """The caller's entries (admins: all), oldest first."""
    return [entry_to_dict(e) for e in await run_in_threadpool(service.watchlists.entries, key.name, _ctx(request, key))]


@router.get("/watchlists/{entry_id}", responses=E)
async def get_entry(entry_id: EntryId, request: Request, service: Service, key: Investigator) -> dict[str, Any]:
    """An entry with where its embeddings come from."""
    e = await run_in_threadpool(service.watchlists.entry, entry_id, key.name, _ctx(request, key))
    vectors = await run_in_threadpool(service.watchlists.images, entry_id, key.name, _ctx(request, key))
    return {**entry_to_dict(e), "sources": [v.source for v in vectors]}


class StatusIn(BaseModel):
    """What to do with an entry."""

    status: Literal["active", "paused"]


@router.patch("/watchlists/{entry_id}", responses=E)
async def set_status(entry_id: EntryId, body: StatusIn, request: Request, service: Service, key: Investigator) -> dict[str, Any]:
    """Pause (`paused`) or resume (`active`) an entry."""
    e = await run_in_threadpool(service.watchlists.set_status, entry_id, body.status, key.name, _ctx(request, key))
    return entry_to_dict(e)


@router.delete("/watchlists/{entry_id}", status_code=204, responses=E)
async def remove_entry(entry_id: EntryId, request: Request, service: Service, key: Investigator) -> None:
    """Remove an entry (its alerts are kept)."""
    await run_in_threadpool(service.watchlists.set_status, entry_id, "removed", key.name, _ctx(request, key))


@router.get("/alerts", responses=E)
async def list_alerts(
    request: Request, service: Service, key: Investigator, entry: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Alerts of the caller's entries (admins: all), newest first; `entry` narrows to one entry."""
    found = await run_in_threadpool(service.watchlists.alerts, key.name, _ctx(request, key), entry)
    return [alert_to_dict(a) for a in found]


class AckIn(BaseModel):
    """An investigator's verdict on an alert."""

    verdict: Literal["confirmed", "false"] = "confirmed"


@router.post("/alerts/{alert_id}/ack", responses=E)
async def ack_alert(alert_id: AlertId, request: Request, service: Service, key: Investigator,
                    body: AckIn | None = None) -> dict[str, Any]:  # fmt: skip
    """Acknowledge an alert: `confirmed` (its crop joins the entry, and the entry's case if linked) or `false`."""
    verdict = body.verdict if body is not None else "confirmed"
    a = await run_in_threadpool(service.watchlists.ack, alert_id, verdict, key.name, _ctx(request, key))
    return {"id": a.id, "status": a.status, "acked_by": a.acked_by}
