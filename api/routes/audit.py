"""GET /audit (admin): the audit log, newest first, filtered by user, case, action and time, as JSON or CSV; and
GET /audit/verify: its hash chain and mirror checked."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, Audit
from api.schemas import AuditEntry, Detail
from vsearch.audit import audit_filter, entries_to_csv
from vsearch.types import parse_time

router = APIRouter(tags=["audit"])
E: dict[int | str, dict[str, Any]] = {400: {"model": Detail}, 401: {"model": Detail}, 403: {"model": Detail}}


# exclude_unset: an entry shows the keys its log line holds, no invented nulls
@router.get("/audit", response_model=list[AuditEntry], response_model_exclude_unset=True,
            responses={**E, 200: {"content": {"text/csv": {}}}})  # fmt: skip
async def read_audit(
    audit: Audit,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    user: Annotated[str | None, Query(description="Only this key name.")] = None,
    case_id: Annotated[int | None, Query(description="Only entries for this case.", ge=1, lt=2**63)] = None,
    action: Annotated[str | None, Query(description="Only this action: search, clip.view, case.export, ...")] = None,
    from_: Annotated[str | None, Query(alias="from", description="From this time, ISO 8601 (UTC if no zone).")] = None,
    to: Annotated[str | None, Query(description="Until this time (exclusive), ISO 8601.")] = None,
    before_seq: Annotated[int | None, Query(ge=1, description="Filtered: only entries before this seq (the next page).")] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json, or csv (formula-safe cells).")] = "json",
) -> Any:
    """The audit log, newest first (admins only): who searched, viewed, exported or changed what, and why. With any
    filter, pages go on with `before_seq` (the last seq of the page before) instead of `offset`."""
    where = audit_filter(user, case_id, action, parse_time(from_) if from_ else None, parse_time(to) if to else None)
    if any(v is not None for v in vars(where).values()) or before_seq is not None:
        entries = await run_in_threadpool(audit.find, where, limit, before_seq)
    else:
        entries = await run_in_threadpool(audit.read, limit, offset)
    if format == "csv":
        return Response(entries_to_csv(entries), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="vsearch-audit.csv"'})  # fmt: skip
    return [AuditEntry.model_validate(e) for e in entries]


@router.get("/audit/verify", responses=E)
async def verify_audit(audit: Audit, _: Admin, expect: Annotated[str | None, Query(description="A head hash kept from an earlier verify.")] = None) -> dict[str, Any]:
    """Check the audit log's hash chain and its mirror: `ok`, the entries checked, the head hash (keep it: with
    `expect` a later verify proves nothing was cut off the end) and each entry edited, inserted or removed."""
    return (await run_in_threadpool(audit.verify, expect)).to_dict()
