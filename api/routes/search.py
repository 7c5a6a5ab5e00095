"""POST /search: a query image plus filters -> ranked clips. Every attempt is audited (api.audit.AuditTrail)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, Investigator, Service
from api.schemas import Detail, SearchOut, search_out
from vsearch.search import SearchFilters, parse_box
from vsearch.types import parse_time

router = APIRouter(tags=["search"])
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": Detail}, 401: {"model": Detail}, 413: {"model": Detail}, 415: {"model": Detail}, 422: {"model": Detail}}


async def read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    """The upload's bytes, refusing (413) as soon as more than `limit` arrive."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{what} larger than the limit of {limit} bytes")
    return data


def camera_list(values: list[str] | None) -> tuple[str, ...]:
    """Camera ids from repeated and/or comma-separated form fields, in order, without blanks or repeats."""
    ids = (c.strip() for v in values or () for c in v.split(","))
    return tuple(dict.fromkeys(c for c in ids if c))


@router.post("/search", response_model=SearchOut, responses=ERRORS)
async def search(
    request: Request,
    service: Service,
    settings: AppSettings,
    _: Investigator,
    image: Annotated[UploadFile, File(description="Query image: a person crop or a photo (JPEG, PNG, BMP, WebP).")],
    from_: Annotated[str | None, Form(alias="from", description="Window start, ISO 8601 (UTC if no zone).")] = None,
    to: Annotated[str | None, Form(description="Window end, ISO 8601.")] = None,
    cameras: Annotated[list[str] | None, Form(description="Camera ids: comma-separated and/or the field repeated.")] = None,
    top_k: Annotated[int, Form(ge=1, le=1000)] = 20,
    min_score: Annotated[float, Form(ge=-1.0, le=1.0, allow_inf_nan=False)] = -1.0,
    box: Annotated[str | None, Form(description="Person box in the image: x1,y1,x2,y2.")] = None,
    upper: Annotated[str | None, Form(description="Upper-body colour name.")] = None,
    lower: Annotated[str | None, Form(description="Lower-body colour name.")] = None,
) -> SearchOut:
    """Find where the person in the image was seen; filters are applied inside the index search, before ranking.

    Every attempt is audited with its outcome (api.audit.AuditTrail); this adds the query and its results."""
    record: dict[str, Any] = {
        "filters": {"from": from_, "to": to, "cameras": list(camera_list(cameras)), "top_k": top_k,
                    "min_score": min_score, "box": box, "upper": upper, "lower": lower},
        "returned_sighting_ids": [],
    }  # fmt: skip
    request.state.audit = record
    ctype = (image.content_type or "").lower()
    if not ctype.startswith("image/"):
        raise HTTPException(415, f"expected an image upload (image/jpeg, image/png, ...), got {ctype or 'no content type'!r}")
    data = await read_limited(image, settings.max_image_bytes, "image")
    record.update(query_sha256=hashlib.sha256(data).hexdigest(), query_bytes=len(data))
    filters = SearchFilters(
        parse_time(from_) if from_ else None, parse_time(to) if to else None, camera_list(cameras),
        top_k, min_score, upper or None, lower or None,
    )  # fmt: skip
    result = await run_in_threadpool(service.search, data, filters, parse_box(box))
    record["returned_sighting_ids"] = [h.sighting.id for c in result.clips for h in c.sightings]
    record["returned_clip_ids"] = [c.id for c in result.clips]
    return search_out(result, record["query_sha256"])
