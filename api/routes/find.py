"""POST /find: a description (phrase or attribute fields) plus filters -> clips ranked by joint probability.
Audited like /search (api.audit.AuditTrail), as action `find`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Investigator, Service, key_context
from api.schemas import Detail, FindOut
from vsearch.audit import SearchRecord
from vsearch.casework import MAX_REASON
from vsearch.describe import describe
from vsearch.find import find_result_to_dict
from vsearch.search import SearchFilters, parse_cameras
from vsearch.types import parse_time

router = APIRouter(tags=["search"])
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": Detail}, 401: {"model": Detail}, 404: {"model": Detail},
                                           409: {"model": Detail}, 422: {"model": Detail}}  # fmt: skip


class FindIn(BaseModel):
    """A description: a phrase, or attribute fields (not both); the same time window and cameras as /search."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    description: str | None = Field(None, max_length=500, description="e.g. 'woman with a backpack, red top, dark"
                                    " trousers' (English, Ukrainian or Russian); unknown words are refused (400)")
    gender: str | None = Field(None, description="female or male")
    carrying: list[str] = Field(default_factory=list, max_length=3, description="backpack, bag, handbag")
    upper: str | None = Field(None, description="upper-body colour")
    lower: str | None = Field(None, description="lower-body colour")
    age: str | None = Field(None, description="young, teenager, adult or old")
    from_: str | None = Field(None, alias="from", description="window start, ISO 8601")
    to: str | None = Field(None, description="window end, ISO 8601")
    cameras: list[str] = Field(default_factory=list, max_length=1000)
    top_k: int = Field(20, ge=1, le=1000)
    case_id: int | None = Field(None, ge=1, lt=2**63, description="the case this search is for (audited)")
    reason: str | None = Field(None, max_length=MAX_REASON, description="why (audited)")


@router.post("/find", response_model=FindOut, responses=ERRORS)
async def find(request: Request, body: FindIn, service: Service, key: Investigator) -> FindOut:
    """Find people by description, without an image: clips ranked by the joint probability of the described
    attributes, the time window and cameras applied inside the ranking. 400 names unknown words or values."""
    cameras = parse_cameras(body.cameras)
    record = SearchRecord({"action": "find"}, {"from": body.from_, "to": body.to, "cameras": list(cameras),
                                               "top_k": body.top_k})  # fmt: skip
    request.state.audit = record
    record.update(await run_in_threadpool(service.casework.purpose, body.case_id, body.reason, key.name,
                                          key_context(request, key)))  # fmt: skip
    description = describe(body.description, body.gender, body.carrying, body.upper, body.lower, body.age)
    record["description"] = description.summary()
    filters = SearchFilters(parse_time(body.from_) if body.from_ else None, parse_time(body.to) if body.to else None,
                            cameras, body.top_k)  # fmt: skip
    result = await run_in_threadpool(service.find, description, filters)
    out = find_result_to_dict(result)
    record.returned((c["best"]["id"] for c in out["clips"]), (c["id"] for c in out["clips"]))
    return FindOut.model_validate(out)
