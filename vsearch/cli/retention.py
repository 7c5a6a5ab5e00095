"""`vsearch retention run [--dry-run]`: delete what has expired, except what open cases hold (vsearch/retention.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vsearch.cli.common import By, DataDir, JsonOut, by_user, open_service

app = typer.Typer(help="Retention: footage older than VSEARCH_RETENTION_DAYS (or a camera's own limit) is deleted,"
                       " except what open cases hold.", no_args_is_help=True)  # fmt: skip


@app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    json_out: JsonOut = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Delete recordings, sightings, embeddings, track boxes, crops, rendered clips and query images older than the
    limit, except what an open case holds; every deletion batch is audited with its counts.

    Example: VSEARCH_RETENTION_DAYS=30 vsearch retention run --dry-run"""
    svc = open_service(data_dir)
    r = svc.retention(by_user(by), dry_run)
    if json_out:
        typer.echo(json.dumps(r.to_dict(), indent=2))
        return
    if not r.cameras and not r.queries:
        typer.echo("no retention is set (VSEARCH_RETENTION_DAYS or `vsearch cameras set ID --retention-days N`): nothing expires")
        return
    verb = "would delete" if dry_run else "deleted"
    for c in r.cameras:
        files = "" if dry_run else f", {c.files} files"
        typer.echo(f"{c.camera_id}: {verb} before {c.cutoff} ({c.days:g} days): {c.videos} videos, {c.sightings}"
                   f" sightings, {c.track_boxes} track boxes{files}")  # fmt: skip
    typer.echo(f"{verb} {r.clips} rendered clips/frames and {r.queries} query images")
    if r.days:  # PostgreSQL: whole days whose partitions go (their counts are in the cameras' above)
        typer.echo(f"{'would drop' if dry_run else 'dropped'} whole days (partitions): {', '.join(r.days)}")
    for path in r.left_in_place:
        typer.echo(f"note: {path} is outside the data dir: its catalog rows are deleted, the file is left in place")
