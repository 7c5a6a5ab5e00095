"""POST /search: a query image plus filters -> ranked clips. Every attempt is audited (api.audit.AuditTrail)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, Investigator, Service, key_context
from api.errors import public, status_for
from api.forms import camera_list, read_limited
from api.schemas import Detail, SearchOut, search_out
from vsearch.audit import SearchRecord
from vsearch.casework import MAX_REASON
from vsearch.config import Settings
from vsearch.describe import describe_search, said
from vsearch.errors import VSearchError
from vsearch.search import MAX_QUERY_IMAGES, Feedback, SearchFilters, parse_box
from vsearch.types import parse_time

router = APIRouter(tags=["search"])
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": Detail}, 401: {"model": Detail}, 404: {"model": Detail}, 413: {"model": Detail}, 415: {"model": Detail}, 422: {"model": Detail}}


@router.post("/search", response_model=SearchOut, responses=ERRORS)
async def search(
    request: Request,
    service: Service,
    settings: AppSettings,
    key: Investigator,
    image: Annotated[
        list[UploadFile],
        File(description="Query image: a person crop or a photo (JPEG, PNG, BMP, WebP). Repeat the field for several"
                         " images of the same person: they are searched together."),
    ],  # fmt: skip
    from_: Annotated[str | None, Form(alias="from", description="Window start, ISO 8601 (UTC if no zone).")] = None,
    to: Annotated[str | None, Form(description="Window end, ISO 8601.")] = None,
    cameras: Annotated[list[str] | None, Form(description="Camera ids: comma-separated and/or the field repeated.")] = None,
    top_k: Annotated[int, Form(ge=1, le=1000)] = 20,
    min_score: Annotated[float, Form(ge=-1.0, le=1.0, allow_inf_nan=False)] = -1.0,
    box: Annotated[str | None, Form(description="Person box in the image (one image only): x1,y1,x2,y2.")] = None,
    upper: Annotated[str | None, Form(description="Upper-body colour name.")] = None,
    lower: Annotated[str | None, Form(description="Lower-body colour name.")] = None,
    description: Annotated[str | None, Form(max_length=500, description="What the person looks like, as /find takes"
                                            " it, e.g. 'woman with a backpack': only sightings likely to fit are"
                                            " candidates, re-ranked by it; unknown words are refused (400).")] = None,
    gender: Annotated[str | None, Form(description="Description option: female or male.")] = None,
    carrying: Annotated[list[str] | None, Form(description="Description option: backpack, bag, handbag (repeat).")] = None,
    age: Annotated[str | None, Form(description="Description option: young, teenager, adult or old.")] = None,
    confirmed: Annotated[
        list[int] | None, Form(description="Sighting ids the investigator marked 'same person' (repeat the field).")
    ] = None,
    rejected: Annotated[
        list[int] | None, Form(description="Sighting ids the investigator marked 'not this person' (repeat the field).")
    ] = None,
    case_id: Annotated[int | None, Form(ge=1, lt=2**63, description="The case this search is for (audited).")] = None,
    reason: Annotated[str | None, Form(max_length=MAX_REASON, description="Why: free text (audited); a case or a reason"
                                       " is required when the server sets VSEARCH_REQUIRE_REASON=1.")] = None,
) -> SearchOut:
    """Find where the person in the image(s) was seen; filters are applied inside the index search, before ranking.
    With `confirmed` / `rejected` the search is refined: confirmed sightings join the query, rejected ones (and
    their near-duplicates) are ranked last; the marks are stored and audited. Unknown sighting ids: 404.

    Every attempt is audited with its outcome: by the service (vsearch.audit.SearchRecord, as the CLI's), or by
    api.audit.AuditTrail when refused before the search."""
    record = SearchRecord({"via": "api", "key_name": key.name, **key_context(request, key)},
                          {"from": from_, "to": to, "cameras": list(camera_list(cameras)), "top_k": top_k,
                           "min_score": min_score, "box": box, "upper": upper, "lower": lower,
                           **said(description=description, gender=gender, carrying=carrying, age=age)},
                          confirmed or (), rejected or (), code=lambda error: _status(error, settings))  # fmt: skip
    # the service writes it; a request refused before the search reaches it is written by the AuditTrail middleware
    request.state.audit = record
    record.update(await run_in_threadpool(service.casework.purpose, case_id, reason, key.name, key_context(request, key)))
    if len(image) > MAX_QUERY_IMAGES:
        raise HTTPException(400, f"at most {MAX_QUERY_IMAGES} query images per search, got {len(image)}")
    data: list[bytes] = []
    for upload in image:
        ctype = (upload.content_type or "").lower()
        if not ctype.startswith("image/"):
            raise HTTPException(415, f"expected an image upload (image/jpeg, image/png, ...), got {ctype or 'no content type'!r}")
        data.append(await read_limited(upload, settings.max_image_bytes, "image"))
    record.query(data)
    filters = SearchFilters(
        parse_time(from_) if from_ else None, parse_time(to) if to else None, camera_list(cameras),
        top_k, min_score, upper or None, lower or None, describe_search(description, gender or None, carrying, age or None),
    )  # fmt: skip
    feedback = Feedback(tuple(dict.fromkeys(confirmed or ())), tuple(dict.fromkeys(rejected or ())))
    result = await run_in_threadpool(service.search, data, filters, parse_box(box), feedback, f"api:{key.name}", record)
    return search_out(result)


def _status(error: Exception | None, settings: Settings) -> dict[str, Any]:
    """The search's audit entry as the API names an outcome: its status (and a refusal's public reason)."""
    if error is None:
        return {"status": 200}
    assert isinstance(error, VSearchError)
    return {"status": status_for(error), "error": public(str(error), settings)}
