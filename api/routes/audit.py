"""GET /audit (admin): the search audit log, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, Audit
from api.schemas import AuditEntry, Detail

router = APIRouter(tags=["audit"])


# exclude_unset: an entry shows the keys its log line holds, no invented nulls
@router.get("/audit", response_model=list[AuditEntry], response_model_exclude_unset=True,
            responses={401: {"model": Detail}, 403: {"model": Detail}})  # fmt: skip
async def read_audit(
    audit: Audit, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
) -> list[AuditEntry]:
    """The search audit log, newest first (admins only): who searched, when, with what, and what came back."""
    return [AuditEntry.model_validate(e) for e in await run_in_threadpool(audit.read, limit, offset)]
