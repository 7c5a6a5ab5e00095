"""`vsearch cameras` (list) and `vsearch cameras set` (name and place one)."""

from __future__ import annotations

from typing import Annotated

import typer

from vsearch.cli.common import CONTEXT, By, DataDir, by_user, service, settings
from vsearch.types import ts_to_iso

app = typer.Typer(help="List cameras; `cameras set` names and places one.", invoke_without_command=True)


@app.callback()
def cameras(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """List cameras with their footage and sightings (and name and coordinates when set)."""
    if ctx.invoked_subcommand is not None:
        return
    svc = service(settings(data_dir))
    info = svc.casework.camera_info()
    for c in svc.cameras():
        span = f"{ts_to_iso(c.first_ts_s)} .. {ts_to_iso(c.last_ts_s)}" if c.first_ts_s and c.last_ts_s else "-"
        meta = info.get(c.id)
        where = f" name={meta.name!r}" if meta and meta.name else ""
        where += f" lat={meta.lat} lon={meta.lon}" if meta and meta.lat is not None else ""
        typer.echo(f"{c.id:16} videos={c.videos} footage={c.footage_s:.0f}s sightings={c.sightings} {span}{where}")


@app.command("set")
def cameras_set(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude, degrees (WGS84).")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude, degrees (WGS84).")] = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Name a camera and give its coordinates (for route maps and GeoJSON)."""
    info = service(settings(data_dir)).casework.set_camera(camera_id, name, lat, lon, by_user(by), CONTEXT)
    typer.echo(f"camera {info.id}: name={info.name!r} lat={info.lat} lon={info.lon}")
