"""POST /ingest (admin): a video upload or a server-side path inside the footage root -> a background job."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, AppSettings, Investigator, Jobs
from api.schemas import Detail
from vsearch.errors import InputError
from vsearch.service import plan_ingest
from vsearch.types import parse_time
from vsearch.video import VIDEO_EXTS

router = APIRouter(tags=["ingest"])


class JobOut(BaseModel):
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


async def save_upload(upload: UploadFile, folder: Path, limit: int) -> Path:
    """Stream an upload to disk, enforcing the size limit as bytes arrive; named by content hash."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in VIDEO_EXTS:
        raise InputError(f"expected a video file ({', '.join(sorted(VIDEO_EXTS))}), got {upload.filename!r}")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=suffix, dir=folder)
    h, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"video larger than the limit of {limit} bytes")
                h.update(chunk)
                f.write(chunk)
        if size == 0:
            raise InputError("the uploaded video is empty")
        final = folder / f"{h.hexdigest()[:16]}{suffix}"
        os.replace(tmp, final)
        return final
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@router.post("/ingest", status_code=202, response_model=JobOut,
             responses={400: {"model": Detail}, 401: {"model": Detail}, 403: {"model": Detail}, 404: {"model": Detail}, 413: {"model": Detail}})  # fmt: skip
async def ingest(
    response: Response,
    settings: AppSettings,
    jobs: Jobs,
    _: Admin,
    camera: Annotated[str, Form(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")],
    start: Annotated[str | None, Form(description="Absolute start time of the video, ISO 8601 (UTC if no zone). "
                                  "Without it a file is taken to end at its modification time.")] = None,
    file: Annotated[UploadFile | None, File(description="A video file to upload.")] = None,
    path: Annotated[str | None, Form(description="Or: a video file or folder under the server's footage root "
                                 "(a folder's files are taken as consecutive recordings).")] = None,
) -> JobOut:
    """Queue an ingest; returns at once (202, Location: /jobs/{id}) with the job to poll at GET /jobs/{id}."""
    start_ts = parse_time(start) if start else None
    if (file is None) == (not path):
        raise InputError("give exactly one of: a video file upload, or a server-side path")
    if file is not None:
        src = await save_upload(file, settings.uploads_dir, settings.max_video_bytes)
    else:
        assert path is not None
        src = resolve_inside(settings.footage_root, path)
        await run_in_threadpool(check_tree, settings.footage_root, src)
    items = await run_in_threadpool(plan_ingest, [src], camera, start_ts)
    job = jobs.submit(str(path) if path else src.name, items)
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobOut(**job.as_dict())


@router.get("/jobs/{job_id}", response_model=JobOut, responses={401: {"model": Detail}, 404: {"model": Detail}})
async def get_job(job_id: str, jobs: Jobs, _: Investigator) -> JobOut:
    """An ingest job's status and progress (video seconds done/total, frames, sightings added, errors)."""
    return JobOut(**jobs.get(job_id).as_dict())
