"""`vsearch cameras` (list) and `vsearch cameras set` (name and place one)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vsearch.cli.common import CONTEXT, By, DataDir, JsonOut, by_user, finite, open_service
from vsearch.types import ts_to_iso

app = typer.Typer(
    help="List cameras; `cameras set` names and places one.\n\nExample: vsearch cameras --json", invoke_without_command=True
)


@app.callback()
def cameras(ctx: typer.Context, json_out: JsonOut = False, data_dir: DataDir = None) -> None:
    """List cameras with their footage and sightings (and name and coordinates when set).

    Example: vsearch cameras --json"""
    if ctx.invoked_subcommand is not None:
        return
    svc = open_service(data_dir)
    info = svc.casework.camera_info()
    rows = []
    for c in svc.cameras():
        meta = info.get(c.id)
        first, last = (ts_to_iso(t) if t is not None else None for t in (c.first_ts_s, c.last_ts_s))
        rows.append({"id": c.id, "videos": c.videos, "footage_s": c.footage_s, "first": first, "last": last,
                     "sightings": c.sightings, "name": meta.name if meta else None,
                     "lat": meta.lat if meta else None, "lon": meta.lon if meta else None})  # fmt: skip
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no cameras yet: `vsearch ingest` adds footage")
    width = max((len(r["id"]) for r in rows), default=0)
    for r in rows:
        span = f"{r['first']} .. {r['last']}" if r["first"] and r["last"] else "-"
        where = f" name={r['name']!r}" if r["name"] else ""
        where += f" lat={r['lat']} lon={r['lon']}" if r["lat"] is not None else ""
        typer.echo(f"{r['id']:{width}}  videos={r['videos']} footage={r['footage_s']:.0f}s sightings={r['sightings']} {span}{where}")


@app.command("set")
def cameras_set(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude, degrees (WGS84).")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude, degrees (WGS84).")] = None,
    retention_days: Annotated[
        float | None, typer.Option(help="Keep this camera's footage this many days (0: back to VSEARCH_RETENTION_DAYS).",
                                   callback=finite, min=0)
    ] = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Name a camera the catalog holds and give its coordinates (for route maps and GeoJSON), or its own retention
    (alone, --retention-days leaves the name and coordinates as they are).

    Example: vsearch cameras set lobby --name "Lobby" --lat 48.137 --lon 11.575"""
    work = open_service(data_dir).casework
    if retention_days is not None:
        work.set_retention(camera_id, retention_days or None, by_user(by), CONTEXT)
        typer.echo(f"camera {camera_id}: retention {f'{retention_days:g} days' if retention_days else 'VSEARCH_RETENTION_DAYS'}")
        if name is None and lat is None and lon is None:
            return
    info = work.set_camera(camera_id, name, lat, lon, by_user(by), CONTEXT)
    typer.echo(f"camera {info.id}: name={info.name!r} lat={info.lat} lon={info.lon}")
