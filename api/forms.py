"""Form fields and uploads as the routes read them (shared by the search and case routes)."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile

from vsearch.search import parse_cameras


async def read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    """The upload's bytes, refusing (413) as soon as more than `limit` arrive."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{what} larger than the limit of {limit} bytes")
    return data


def camera_list(values: list[str] | None) -> tuple[str, ...]:
    """Camera ids from repeated and/or comma-separated form fields (the CLI's --camera reads them the same way)."""
    return parse_cameras(values)
