"""GET /audit (admin): the search audit log, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, Audit
from api.schemas import Detail

router = APIRouter(tags=["audit"])


@router.get("/audit", responses={401: {"model": Detail}, 403: {"model": Detail}})
async def read_audit(
    audit: Audit, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
) -> list[dict[str, Any]]:
    """The search audit log, newest first (admins only): who searched, when, with what, and what came back."""
    return await run_in_threadpool(audit.read, limit, offset)
