"""Cases (investigators): create, list, show, add and remove confirmed items, route, companions, evidence export and
verification; camera metadata and "people seen in this window" (admins, who operate the system).

Thin over `VSearch.casework`: every change and every export is audited there, with the caller's key, role and
address.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.case_schemas import CaseDetailOut, CaseOut, VerifyOut, case_detail_out, case_out
from api.deps import Admin, AppSettings, Investigator, Service
from api.deps import key_context as _ctx
from api.forms import camera_list, read_limited
from api.schemas import Detail
from api.uploads import ZipSink, read_form
from vsearch.casework import MAX_REASON
from vsearch.companions import MAX_DIST_H, MAX_DT_S, companions_to_dict
from vsearch.errors import InputError
from vsearch.evidence import verify_zip
from vsearch.identities import identities_to_dict
from vsearch.scratch import scratch_name, scratch_root
from vsearch.types import parse_time

router = APIRouter(tags=["cases"])
CaseId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Case id.")]
ItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Case item id.")]
E: dict[int | str, dict[str, Any]] = {c: {"model": Detail} for c in (400, 401, 403, 404, 413, 422)}
MAX_ZIP_BYTES = 4 * 1024**3


class CaseIn(BaseModel):
    """A new case."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    notes: Annotated[str, Field(max_length=20_000)] = ""


class CasePatch(BaseModel):
    """A change to a case's name or notes (omitted fields stay)."""

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    notes: Annotated[str | None, Field(max_length=20_000)] = None


class CameraIn(BaseModel):
    """A camera's display name and WGS84 coordinates (both or neither)."""

    name: Annotated[str | None, Field(max_length=200)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None


@router.post("/cases", response_model=CaseOut, status_code=201, responses=E)
async def create_case(body: CaseIn, request: Request, service: Service, key: Investigator) -> CaseOut:
    """Open a case."""
    case = await run_in_threadpool(service.casework.create, body.name, body.notes, key.name, _ctx(request, key))
    return case_out(case)


@router.get("/cases", response_model=list[CaseOut], responses=E)
async def list_cases(request: Request, service: Service, key: Investigator) -> list[CaseOut]:
    """The cases the caller owns or is a member of (admins: every case), oldest first."""
    return [case_out(c) for c in await run_in_threadpool(service.casework.cases, key.name, _ctx(request, key))]


@router.get("/cases/{case_id}", response_model=CaseDetailOut, responses=E)
async def get_case(case_id: CaseId, request: Request, service: Service, key: Investigator) -> CaseDetailOut:
    """A case with its confirmed items in time order."""
    case, items = await run_in_threadpool(service.casework.case, case_id, key.name, _ctx(request, key))
    return case_detail_out(case, items)


@router.patch("/cases/{case_id}", response_model=CaseOut, responses=E)
async def patch_case(case_id: CaseId, body: CasePatch, request: Request, service: Service, key: Investigator) -> CaseOut:
    """Rename a case or change its notes."""
    case = await run_in_threadpool(service.casework.update, case_id, body.name, body.notes, key.name, _ctx(request, key))
    return case_out(case)


@router.post("/cases/{case_id}/items", response_model=CaseDetailOut, responses=E)
async def add_items(
    case_id: CaseId,
    request: Request,
    service: Service,
    settings: AppSettings,
    key: Investigator,
    ids: Annotated[list[str], Form(description="Clip ids (or sighting ids): comma-separated and/or repeated.")],
    query_image: Annotated[UploadFile | None, File(description="The query image of the search that found them.")] = None,
    query_sha256: Annotated[str | None, Form(description="Or only its sha256 (as in the audit log).")] = None,
    filters: Annotated[str | None, Form(description="The search's filters, a JSON object.")] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> CaseDetailOut:
    """Add confirmed clips or sightings to a case (one transaction; items already there stay as they were)."""
    refs = list(camera_list(ids))
    image = await read_limited(query_image, settings.max_image_bytes, "query image") if query_image is not None else None
    parsed = None
    if filters:
        try:
            parsed = json.loads(filters)
        except ValueError:
            raise InputError(f"filters: expected a JSON object, got {filters[:80]!r}") from None
        if not isinstance(parsed, dict):
            raise InputError(f"filters: expected a JSON object, got {type(parsed).__name__}")
    await run_in_threadpool(
        service.casework.add, case_id, refs, key.name, image, query_sha256 or None, parsed, note, _ctx(request, key)
    )
    case, items = await run_in_threadpool(service.casework.case, case_id, key.name, _ctx(request, key))
    return case_detail_out(case, items)


class MemberIn(BaseModel):
    """An investigator (API key name) to share a case with."""

    name: Annotated[str, Field(min_length=1, max_length=200)]


@router.get("/cases/{case_id}/members", response_model=list[str], responses=E)
async def members(case_id: CaseId, request: Request, service: Service, key: Investigator) -> list[str]:
    """Whom the case is shared with, besides its owner (`created_by`)."""
    return await run_in_threadpool(service.casework.members, case_id, key.name, _ctx(request, key))


@router.post("/cases/{case_id}/members", response_model=list[str], responses=E)
async def share(case_id: CaseId, body: MemberIn, request: Request, service: Service, settings: AppSettings,
                key: Investigator) -> list[str]:  # fmt: skip
    """Share the case with another investigator (the case's owner or an admin); returns its members."""
    if body.name not in {k.name for k in settings.api_keys}:
        raise InputError(f"no API key is named {body.name!r}")
    return await run_in_threadpool(service.casework.share, case_id, body.name, key.name, _ctx(request, key))


@router.delete("/cases/{case_id}/members/{member}", response_model=list[str], responses=E)
async def unshare(case_id: CaseId, member: str, request: Request, service: Service, key: Investigator) -> list[str]:
    """Stop sharing the case with a member (the case's owner or an admin); returns the members left."""
    return await run_in_threadpool(service.casework.unshare, case_id, member, key.name, _ctx(request, key))


@router.delete("/cases/{case_id}/items/{item_id}", status_code=204, responses=E)
async def remove_item(case_id: CaseId, item_id: ItemId, request: Request, service: Service, key: Investigator) -> Response:
    """Remove an item from a case."""
    await run_in_threadpool(service.casework.remove, case_id, item_id, key.name, _ctx(request, key))
    return Response(status_code=204)


class CaseClose(BaseModel):
    """Why a case is closed (required)."""

    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.post("/cases/{case_id}/close", response_model=CaseOut, responses=E)
async def close_case(case_id: CaseId, body: CaseClose, request: Request, service: Service, key: Investigator) -> CaseOut:
    """Close a case with a reason (audited): its hold on footage ends, so retention may delete what only it kept;
    it takes no more items. Closing a closed case: 400."""
    return case_out(await run_in_threadpool(service.casework.close, case_id, body.reason, key.name, _ctx(request, key)))


@router.get("/cases/{case_id}/route", responses={**E, 200: {"content": {"application/json": {}, "text/csv": {}, "application/geo+json": {}}}})
async def route(
    case_id: CaseId,
    request: Request,
    service: Service,
    key: Investigator,
    format: Annotated[Literal["json", "csv", "geojson"], Query(description="json, csv or geojson")] = "json",
    item: Annotated[list[int] | None, Query(description="Only these item ids (repeat).")] = None,
    merge_gap_s: Annotated[float, Query(ge=0, le=86_400)] = 0.0,
) -> Any:
    """The person's route: stops in time order (a lane per camera on the page), time per camera, gaps and
    transits; as JSON, CSV (a row per stop) or GeoJSON (cameras with coordinates and the line through them)."""
    r = await run_in_threadpool(service.casework.route, case_id, item, merge_gap_s, key.name, _ctx(request, key))
    if format == "csv":
        return PlainTextResponse(r.to_csv(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="case-{case_id}-route.csv"'})
    if format == "geojson":
        return Response(json.dumps(r.to_geojson()), media_type="application/geo+json")
    return r.to_dict()


@router.get("/cases/{case_id}/companions", responses=E)
async def companions(
    case_id: CaseId,
    request: Request,
    service: Service,
    key: Investigator,
    max_dt_s: Annotated[float, Query(ge=0, le=60)] = MAX_DT_S,
    max_dist_h: Annotated[float, Query(gt=0, le=20)] = MAX_DIST_H,
) -> list[dict[str, Any]]:
    """Who the case's person was with: others close to them during their confirmed stays, grouped by appearance
    across places and times, ranked by how many stays they shared, then cameras, then time together."""
    rows = await run_in_threadpool(
        service.casework.companions, case_id, None, max_dt_s, max_dist_h, None, key.name, _ctx(request, key)
    )
    return companions_to_dict(rows)


@router.post("/cases/{case_id}/export", response_class=FileResponse, responses=E)
async def export(
    case_id: CaseId, request: Request, service: Service, settings: AppSettings, key: Investigator,
    reason: Annotated[str | None, Query(max_length=MAX_REASON, description="Why it is exported (audited).")] = None,
    redact: Annotated[Literal["bystanders", "faces", "none"], Query(
        description="Cover everyone but each item's own person: whole bodies (bystanders), heads (faces), or nobody"
                    " (none: admins only, with a reason; audited).")] = "bystanders",
) -> FileResponse:  # fmt: skip
    """The case's evidence ZIP (clips, frames, crops, query images, manifest.json with every hash); the manifest's
    sha256 is in the `X-Manifest-SHA256` header and in the audit log: keep it to prove the manifest later. The
    export's audit entry holds the case, the redaction and the `reason` given; `redact=none` is refused (403) to
    investigators and (400) without a reason."""
    folder = await run_in_threadpool(scratch_root, settings)  # a killed server's leftovers are swept there
    tmp = Path(tempfile.mkdtemp(prefix=scratch_name("export"), dir=folder)) / f"case-{case_id}.zip"
    try:
        r = await run_in_threadpool(service.casework.export, case_id, tmp, key.name, _ctx(request, key), True, reason, redact)
    except BaseException:
        _cleanup(tmp)
        raise
    return FileResponse(
        tmp, media_type="application/zip", filename=f"case-{case_id}-evidence.zip",
        headers={"X-Manifest-SHA256": r.manifest_sha256}, background=BackgroundTask(_cleanup, tmp),
    )  # fmt: skip


def _cleanup(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.rmdir()


VERIFY_BODY: dict[str, Any] = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "An evidence ZIP exported by vsearch."},
            "expect_manifest_sha256": {"type": "string", "description": "The manifest sha256 recorded at export."},
        },
    }}},
}  # fmt: skip


@router.post("/cases/verify", response_model=VerifyOut, responses=E, openapi_extra={"requestBody": VERIFY_BODY})
async def verify(request: Request, settings: AppSettings, _: Investigator) -> VerifyOut:
    """Recompute every hash of an evidence ZIP: `ok`, and each changed, missing or added file by name.

    The upload goes to a scratch file under the data dir as it arrives (400 at its first bytes if they are not a
    ZIP's, 413 past the limit); the check streams every entry and refuses (413) a ZIP past the limits of
    `vsearch.evidence.VerifyLimits`."""
    folder = await run_in_threadpool(scratch_root, settings)
    form = await read_form(request, lambda _: ZipSink(folder, MAX_ZIP_BYTES))
    try:
        if form.video is None:
            raise InputError("expected an evidence ZIP in the form field 'file'")
        r = await run_in_threadpool(verify_zip, form.video, form.fields.get("expect_manifest_sha256") or None)
    finally:
        await run_in_threadpool(form.discard)
    return VerifyOut(ok=r.ok, changed=r.changed, missing=r.missing, added=r.added, problems=r.problems,
                     files_checked=r.files_checked, manifest_sha256=r.manifest_sha256)  # fmt: skip


@router.put("/cameras/{camera_id}", responses=E)
async def set_camera(camera_id: str, body: CameraIn, request: Request, service: Service, key: Admin) -> dict[str, Any]:
    """Set a camera's display name and coordinates (admins)."""
    info = await run_in_threadpool(service.casework.set_camera, camera_id, body.name, body.lat, body.lon, key.name, _ctx(request, key))
    return {"id": info.id, "name": info.name, "lat": info.lat, "lon": info.lon}


@router.get("/identities", responses=E)
async def identities(
    service: Service,
    _: Admin,
    from_: Annotated[str, Query(alias="from", description="Window start, ISO 8601 (UTC if no zone).")],
    to: Annotated[str, Query(description="Window end, ISO 8601.")],
    cameras: Annotated[list[str] | None, Query(description="Camera ids: comma-separated and/or repeated.")] = None,
    threshold: Annotated[float | None, Query(ge=-1, le=1, description="Merge similarity (default: the one measured for the catalog's embedder).")] = None,
) -> list[dict[str, Any]]:
    """People seen in a window (admins): the window's tracks grouped across cameras into putative identities, most
    sightings first; two tracks on one camera at one time are never grouped."""
    people = await run_in_threadpool(
        service.casework.identities, parse_time(from_), parse_time(to), camera_list(cameras) or None, threshold
    )
    return identities_to_dict(people)
