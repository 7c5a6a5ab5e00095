"""Watchlists and alerts: investigators add, change and acknowledge their own; admins see and change all.

Thin over `VSearch.watchlists`: every change is audited there (with the caller's key, role and address), every
request by the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, AppSettings, Investigator, Service
from api.forms import camera_list, read_limited
from api.schemas import Detail
from vsearch.config import ApiKey
from vsearch.search import MAX_QUERY_IMAGES
from vsearch.watchlist import alert_to_dict, delivery_to_dict, entry_to_dict

router = APIRouter(tags=["watchlists"])
EntryId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Watchlist entry id.")]
AlertId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Alert id.")]
DeliveryId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Webhook delivery id.")]
E: dict[int | str, dict[str, Any]] = {c: {"model": Detail} for c in (400, 401, 403, 404, 413, 415, 422)}
POLL_S = 0.5  # how often an open alert stream reads the catalog's alert log (app.state.alert_poll_s overrides)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
SNAPSHOT = 50  # alerts a new stream starts with


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
    webhook_url: Annotated[str | None, Form(max_length=2000, description="POST new alerts here, signed.")] = None,
) -> dict[str, Any]:
    """Add a wanted person from images and/or sightings already found. With `webhook_url`, the answer holds the
    `webhook_secret` its bodies are signed with."""
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
        expires or None, sighting or [], webhook_url,
    )  # fmt: skip
    if e.webhook_url is None:
        return entry_to_dict(e)
    return {**entry_to_dict(e), "webhook_secret": await run_in_threadpool(service.watchlists.webhook_secret, e.id, key.name, _ctx(request, key))}


def _sse(event: str | None, data: Any = None, seq: int | None = None) -> str:
    """One Server-Sent Event: an `id:` line alone moves the client's Last-Event-ID without an event."""
    lines = ([f"id: {seq}"] if seq is not None else []) + ([f"event: {event}", f"data: {json.dumps(data)}"] if event else [])
    return "\n".join(lines) + "\n\n"


@router.get("/watchlists/events", responses=E, response_class=StreamingResponse)
async def alert_stream(
    request: Request, service: Service, key: Investigator,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="Resume after this event number.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="Set by EventSource on reconnect.")] = None,
) -> StreamingResponse:  # fmt: skip
    """Server-Sent Events of the caller's alerts (admins: all), as the catalog's alert log records them: new
    alerts, raised scores and acknowledgements (`event: alert`, `data`: the alert with its `event` and `clip_id`).
    A new stream starts with the latest alerts (no id), then `event: ready` with the log's position; a reconnect
    (`Last-Event-ID`, or `after`) resumes after that event, missing none."""
    if last_event_id is not None and after is None:
        if not (last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) < 19):
            raise HTTPException(400, f"expected Last-Event-ID to be an event number, got {last_event_id[:40]!r}")
        after = int(last_event_id)
    ctx, lists = _ctx(request, key), service.watchlists
    poll_s = getattr(request.app.state, "alert_poll_s", POLL_S)
    start = after
    if after is not None and after > (last := await run_in_threadpool(lists.feed_start)):
        raise HTTPException(400, f"event {after} is past the alert log's last ({last}): reconnect without Last-Event-ID")
    snapshot: list[dict[str, Any]] = []
    if start is None:  # the position first, then the snapshot: an alert between the two may come twice, never not at all
        start = await run_in_threadpool(lists.feed_start)
        views = await run_in_threadpool(lists.alerts, key.name, ctx, None, SNAPSHOT)
        snapshot = await run_in_threadpool(lambda: [lists.card(v) for v in reversed(views)])

    async def events() -> AsyncIterator[str]:
        cursor = start
        yield "retry: 2000\n\n"
        if after is None:
            for card in snapshot:
                yield _sse("alert", {**card, "event": "snapshot"})
            yield _sse("ready", {"seq": cursor}, cursor)
        quiet_since = time.monotonic()
        while True:
            seq, found = await run_in_threadpool(lists.feed, cursor, key.name, ctx)
            for s, event, card in found:
                yield _sse("alert", {**card, "event": event}, s)
            if seq != cursor:
                if not found or found[-1][0] != seq:
                    yield _sse(None, seq=seq)  # events the caller may not see: move on past them
                cursor, quiet_since = seq, time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(poll_s)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


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


@router.get("/watchlists/{entry_id}/image.jpg", response_class=FileResponse, responses=E)
async def entry_image(entry_id: EntryId, request: Request, service: Service, key: Investigator) -> FileResponse:
    """The crop of the entry's first image (what the alerts panel shows beside an alert's crop)."""
    return FileResponse(await run_in_threadpool(service.watchlists.image_file, entry_id, key.name, _ctx(request, key)), media_type="image/jpeg")


class WebhookIn(BaseModel):
    """Where an entry's new alerts are POSTed."""

    url: str = Field(min_length=1, max_length=2000, description="An http:// or https:// URL.")


@router.put("/watchlists/{entry_id}/webhook", responses=E)
async def set_webhook(entry_id: EntryId, body: WebhookIn, request: Request, service: Service, key: Investigator) -> dict[str, Any]:
    """POST the entry's new alerts to `url`, signed with a new secret (returned here, once per call)."""
    e = await run_in_threadpool(service.watchlists.set_webhook, entry_id, body.url, key.name, _ctx(request, key))
    secret = await run_in_threadpool(service.watchlists.webhook_secret, entry_id, key.name, _ctx(request, key))
    return {"entry_id": e.id, "webhook_url": e.webhook_url, "webhook_secret": secret}


@router.delete("/watchlists/{entry_id}/webhook", status_code=204, responses=E)
async def remove_webhook(entry_id: EntryId, request: Request, service: Service, key: Investigator) -> None:
    """Stop sending the entry's alerts (deliveries already queued are still sent)."""
    await run_in_threadpool(service.watchlists.set_webhook, entry_id, None, key.name, _ctx(request, key))


@router.get("/webhooks/dead", responses=E)
async def dead_letters(request: Request, service: Service, key: Admin) -> list[dict[str, Any]]:
    """Webhook deliveries that failed every attempt, newest first (admins)."""
    return [delivery_to_dict(d) for d in await run_in_threadpool(service.watchlists.dead_letters, _ctx(request, key))]


@router.post("/webhooks/{delivery_id}/retry", responses=E)
async def retry_delivery(delivery_id: DeliveryId, request: Request, service: Service, key: Admin) -> dict[str, Any]:
    """Queue a dead delivery again, due now (admins)."""
    d = await run_in_threadpool(service.watchlists.retry_delivery, delivery_id, key.name, _ctx(request, key))
    return delivery_to_dict(d)


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
