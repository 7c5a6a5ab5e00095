"""POST /ingest (admin): a video upload or a server-side path inside the footage root -> a background job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, AppSettings, Investigator, Jobs
from api.schemas import Detail
from api.uploads import FILE_FIELD, read_ingest_form
from vsearch.errors import InputError
from vsearch.ingest import plan_ingest
from vsearch.types import parse_time

router = APIRouter(tags=["ingest"])


class IngestForm(BaseModel):
    """The ingest form's text fields (the video, if any, arrives as the multipart file field `file`)."""

    camera: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                                 description="Camera id the footage belongs to.")]
    start: Annotated[str | None, Field(description="Absolute start time of the video, ISO 8601 (UTC if no zone). "
                                       "Without it a file is taken to end at its modification time.")] = None
    path: Annotated[str | None, Field(description="Instead of an upload: a video file or folder under the server's "
                                      "footage root (a folder's files are taken as consecutive recordings).")] = None


_FIELDS = IngestForm.model_json_schema()
_FILE = {"type": "string", "format": "binary", "description": "A video file to upload (MP4, MKV, AVI, MOV, ...)."}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {**_FIELDS, "properties": {**_FIELDS["properties"], FILE_FIELD: _FILE}}},
        "application/x-www-form-urlencoded": {"schema": _FIELDS},
    },
}


class JobOut(BaseModel):
    """An ingest job: status, progress in video seconds over all its files, what it added, and errors."""

    id: str
    path: str
    camera_id: str
    start_ts_s: float
    files_total: int
    files_done: int
    status: str
    video_s_done: float
    video_s_total: float
    frames_sampled: int
    sightings_added: int
    result: str | None
    errors: list[str]
    created_at: float
    finished_at: float | None


def resolve_inside(root: Path | None, path: str) -> Path:
    """`path` (relative to root, or absolute) resolved with symlinks; refused unless it lies inside root."""
    if root is None:
        raise HTTPException(403, "server-side paths are disabled: no footage root is configured (VSEARCH_FOOTAGE_ROOT)")
    base = root.resolve()
    try:
        p = Path(path)
        target = (p if p.is_absolute() else base / p).resolve()
        inside = target == base or base in target.parents
        exists = inside and target.exists()
    except (ValueError, OSError, RuntimeError) as e:  # NUL bytes, names too long, symlink loops
        raise InputError(f"unusable path {path!r}: {e}") from None
    if not inside:
        raise HTTPException(403, f"path {path!r} lies outside the footage root")
    if not exists:
        raise HTTPException(404, f"path {path!r} does not exist under the footage root")
    return target


def check_tree(root: Path | None, folder: Path, depth: int = 3) -> None:
    """Refuse (403) a folder holding anything (a symlink) that resolves outside root, down to `depth` levels:
    camera folders, their videos and frame folders are all read by the ingest."""
    if not folder.is_dir():
        return
    top = len(folder.parts)
    for here, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            resolve_inside(root, str(Path(here) / name))
        if len(Path(here).parts) - top >= depth - 1:
            dirs.clear()


@router.post("/ingest", status_code=202, response_model=JobOut, openapi_extra={"requestBody": REQUEST_BODY},
             responses={400: {"model": Detail}, 401: {"model": Detail}, 403: {"model": Detail}, 404: {"model": Detail},
                        413: {"model": Detail}, 415: {"model": Detail}, 422: {"model": Detail}})  # fmt: skip
async def ingest(request: Request, response: Response, settings: AppSettings, jobs: Jobs, _: Admin) -> JobOut:
    """Queue an ingest; returns at once (202, Location: /jobs/{id}) with the job to poll at GET /jobs/{id}.

    The key is checked before the body is read; an uploaded video streams to the data dir's uploads/ folder."""
    form = await read_ingest_form(request, settings.uploads_dir, settings.max_video_bytes)
    try:
        try:
            fields = IngestForm.model_validate(form.fields)
        except ValidationError as e:
            where = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise HTTPException(422, where) from None
        start_ts = parse_time(fields.start) if fields.start else None
        if (form.video is None) == (not fields.path):
            raise InputError("give exactly one of: a video file upload, or a server-side path")
        if form.video is not None:
            src, name = form.video, form.video_name or form.video.name
        else:
            assert fields.path is not None
            src, name = resolve_inside(settings.footage_root, fields.path), fields.path
            await run_in_threadpool(check_tree, settings.footage_root, src)
        items = await run_in_threadpool(plan_ingest, [src], fields.camera, start_ts)
    except BaseException:
        form.discard()
        raise
    job = jobs.submit(name, items, upload=form.video if form.video_is_new else None)
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobOut(**job.as_dict())


@router.get("/jobs/{job_id}", response_model=JobOut, responses={401: {"model": Detail}, 404: {"model": Detail}})
async def get_job(job_id: str, jobs: Jobs, _: Investigator) -> JobOut:
    """An ingest job's status and progress (video seconds done/total, frames, sightings added, errors)."""
    return JobOut(**jobs.get(job_id).as_dict())
