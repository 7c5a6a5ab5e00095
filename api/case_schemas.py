"""Response models of the case endpoints (kept apart from api/schemas.py so that the two change independently)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from vsearch.cases import case_to_dict
from vsearch.catalog import Case, CaseItem
from vsearch.types import ts_to_iso


class CaseOut(BaseModel):
    """A case: name, notes, who opened it, when, and how many confirmed items it holds."""

    id: int
    name: str
    notes: str
    created_by: str
    created_at: str
    updated_at: str
    items_count: int
    closed_at: str | None = None
    close_reason: str | None = None


class CaseItemOut(BaseModel):
    """A confirmed clip or sighting of a case, with where and when, who added it, and the search that found it."""

    id: int
    kind: str
    ref: str
    camera_id: str
    video_id: int
    track_id: int
    start: str
    end: str
    start_ts_s: float
    end_ts_s: float
    sighting_id: int
    query_sha256: str | None
    search_filters: dict | None
    note: str
    added_by: str
    added_at: str
    clip_url: str | None
    thumbnail_url: str


class CaseDetailOut(CaseOut):
    """A case with its items in time order."""

    items: list[CaseItemOut]


class VerifyOut(BaseModel):
    """The check of an evidence ZIP: every problem names its file."""

    ok: bool
    changed: list[str]
    missing: list[str]
    added: list[str]
    problems: list[str]
    files_checked: int
    manifest_sha256: str | None


def case_out(c: Case) -> CaseOut:
    """A case as the API shows it."""
    return CaseOut(id=c.id, name=c.name, notes=c.notes, created_by=c.created_by, created_at=ts_to_iso(c.created_at),
                   updated_at=ts_to_iso(c.updated_at), items_count=c.items,
                   closed_at=None if c.closed_at is None else ts_to_iso(c.closed_at), close_reason=c.close_reason)  # fmt: skip


def case_detail_out(c: Case, items: Sequence[CaseItem]) -> CaseDetailOut:
    """A case and its items as the API shows them."""
    d = case_to_dict(c, items)
    rows = [
        CaseItemOut(**{k: v for k, v in i.items() if k in CaseItemOut.model_fields},
                    clip_url=f"/clips/{i['ref']}.mp4" if i["kind"] == "clip" else None,
                    thumbnail_url=f"/sightings/{i['sighting_id']}/thumbnail.jpg")  # fmt: skip
        for i in d["items"]
    ]
    return CaseDetailOut(**case_out(c).model_dump(), items=rows)
