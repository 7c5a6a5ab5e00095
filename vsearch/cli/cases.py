"""`vsearch case ...` and `vsearch identities`: thin over vsearch.casework.

Every change is written to the data dir's audit log, as the API's are, under `--by` (default `cli:<OS user>`), in
the change's own transaction; every read (show, list, route, companions, verify, identities) too, with its exit
code, before its answer is shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vsearch.cli.common import (
    CONTEXT,
    By,
    DataDir,
    JsonOut,
    ReasonOption,
    audited,
    by_user,
    service,
    settings,
)
from vsearch.cli.common import open_service as svc
from vsearch.errors import InputError
from vsearch.types import parse_time, ts_to_iso

app = typer.Typer(help="Cases: confirmed clips, evidence export and verification, routes.", no_args_is_help=True)
identities_app = typer.Typer()



@app.command("new")
def case_new(
    name: Annotated[str, typer.Argument(help="Case name.")],
    notes: Annotated[str, typer.Option(help="Notes.")] = "",
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Open a case; prints its id alone on the last line.

    Example: vsearch case new 'Bike theft 2026-03-01'"""
    case = svc(data_dir).casework.create(name, notes, by_user(by), CONTEXT)
    typer.echo(f"opened case {case.id}: {case.name}")
    typer.echo(str(case.id))


@app.command("add")
def case_add(
    case_id: Annotated[int, typer.Argument(metavar="CASE", help="Case id.")],
    refs: Annotated[list[str], typer.Argument(metavar="CLIP_ID...", help="Clip ids (or sighting ids) to add.")],
    query: Annotated[Path | None, typer.Option(help="The query image that found them (kept for the export).")] = None,
    filters: Annotated[str | None, typer.Option(help="The search's filters, as JSON.")] = None,
    note: Annotated[str, typer.Option(help="A note on these items.")] = "",
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Add confirmed clips or sightings to a case.

    Example: vsearch case add 1 1-8-51000-69000 --query visitor3.jpg"""
    image = _read_query(query)
    parsed = _json_object(filters, "--filters")
    items = svc(data_dir).casework.add(case_id, refs, by_user(by), image, None, parsed, note, CONTEXT)
    for i in items:
        typer.echo(f"item {i.id}: {i.kind} {i.ref} {i.camera_id} {ts_to_iso(i.start_ts_s)} .. {ts_to_iso(i.end_ts_s)[11:]}")


@app.command("remove")
def case_remove(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    item_id: Annotated[int, typer.Argument(metavar="ITEM")],
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Remove an item from a case.

    Example: vsearch case remove 1 3"""
    svc(data_dir).casework.remove(case_id, item_id, by_user(by), CONTEXT)
    typer.echo(f"removed item {item_id} from case {case_id}")


@app.command("close")
def case_close(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    reason: Annotated[str, typer.Option("--reason", help="Why the case is closed (required; audited).")],
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Close a case: its hold on footage ends (the next retention run may delete what only it kept); it takes no
    more items.

    Example: vsearch case close 1 --reason "closed by the court, ref 2026-114"
    """
    case = svc(data_dir).casework.close(case_id, reason, by_user(by), CONTEXT)
    typer.echo(f"closed case {case.id} ({case.name}): its footage is no longer held")


@app.command("list")
def case_list(json_out: JsonOut = False, by: By = None, data_dir: DataDir = None) -> None:
    """List cases.

    Example: vsearch case list --json"""
    s = svc(data_dir)
    with audited(s.audit, "case.list", by):
        cases = s.casework.cases()
    if json_out:
        typer.echo(json.dumps([{
            "id": c.id, "name": c.name, "notes": c.notes, "created_by": c.created_by,
            "created_at": ts_to_iso(c.created_at), "updated_at": ts_to_iso(c.updated_at), "items_count": c.items,
        } for c in cases], indent=2))  # fmt: skip
        return
    if not cases:
        typer.echo('no cases yet: `vsearch case new "NAME"` opens one')
    for c in cases:
        typer.echo(f"{c.id:>5}  {c.name:30}  items={c.items:<4} by {c.created_by} {ts_to_iso(c.created_at)[:19]}")


@app.command("show")
def case_show(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    json_out: JsonOut = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Show a case and its confirmed items in time order.

    Example: vsearch case show 1 --json"""
    from vsearch.cases import case_to_dict

    s = svc(data_dir)
    with audited(s.audit, "case.show", by, case_id=case_id):
        case, items = s.casework.case(case_id)
    if json_out:
        typer.echo(json.dumps(case_to_dict(case, items), indent=2))
        return
    typer.echo(f"case {case.id}: {case.name}  (opened by {case.created_by} {ts_to_iso(case.created_at)[:19]})")
    if case.notes:
        typer.echo(f"notes: {case.notes}")
    for i in items:
        typer.echo(
            f"  item {i.id:>4}  {i.kind:8} {i.camera_id:12} {ts_to_iso(i.start_ts_s)[:23]} .. {ts_to_iso(i.end_ts_s)[11:23]}"
            f"  {i.ref}  added by {i.added_by}"
        )


@app.command("export")
def case_export(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The evidence ZIP to write.")],
    render_check: Annotated[bool, typer.Option(help="Render each clip twice and record whether the bytes match.")] = True,
    redact: Annotated[str, typer.Option(
        "--redact", metavar="bystanders|faces|none",
        help="Cover everyone but each item's own person: whole bodies (bystanders), heads only (faces), or nobody"
             " (none: needs a --reason, audited)."
    )] = "bystanders",
    reason: ReasonOption = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Export a case's evidence as a ZIP with a hashed manifest; prints the manifest's sha256 (keep it). Everyone
    but each item's own person is pixelated unless --redact none. The export is audited with the case, the
    redaction and the --reason given.

    Example: vsearch case export 1 -o case1.zip --reason "court request 2026-114"
    """
    from vsearch.redact import check_mode

    check_mode(redact)  # before the catalog is opened
    r = svc(data_dir).casework.export(case_id, output, by_user(by), CONTEXT, render_check, reason, redact)
    typer.echo(f"wrote {r.path}: {r.clips} clips, {r.files} files, redaction {redact};"
               f" rendering deterministic: {r.deterministic}")  # fmt: skip
    for n in r.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"manifest sha256 {r.manifest_sha256}")


@app.command("verify")
def case_verify(
    zip_file: Annotated[Path, typer.Argument(metavar="FILE.zip")],
    expect: Annotated[str | None, typer.Option(help="The manifest sha256 recorded at export.")] = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Check an evidence ZIP: exit 0 when intact, 1 naming each changed, missing or added file, 2 when missing or
    refused (past the limits of vsearch.evidence.VerifyLimits: a ZIP bomb, too many entries; or a manifest nested
    too deeply). The check is audited in the data dir's log.

    Example: vsearch case verify case1.zip --expect SHA256"""
    from vsearch.evidence import verify_zip

    s = settings(data_dir)
    unaudited = s.catalog_url is None and not s.catalog_path.is_file()  # a ZIP needs no vsearch data: say so, after
    audit: Any = None if unaudited else service(s).audit  # the answer (a refusal stays one line)
    with audited(audit, "case.verify", by, file=str(zip_file), ok=False, expect_manifest_sha256=expect) as record:
        if not zip_file.is_file():
            raise InputError(f"{zip_file}: no such file")
        r = verify_zip(zip_file, expect)
        record.update(ok=r.ok, manifest_sha256=r.manifest_sha256, files_checked=r.files_checked,
                      problems=len(r.problems), exit_code=0 if r.ok else 1)  # fmt: skip
    if unaudited:
        typer.secho(f"note: not audited (no catalog in {s.data_dir})", err=True)
    for p in r.problems:
        typer.secho(p, fg=typer.colors.RED, err=True)
    if not r.ok:
        raise typer.Exit(1)
    typer.echo(f"intact: {r.files_checked} files match the manifest (sha256 {r.manifest_sha256})")


@app.command("route")
def case_route(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or geojson.")] = "table",
    item: Annotated[list[int] | None, typer.Option(help="Only these item ids (repeat).")] = None,
    merge_gap_s: Annotated[float, typer.Option(help="Merge stays on one camera at most this far apart.")] = 0.0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of printing.")] = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """The person's route: stops in time order, time per camera, gaps and transit times.

    Example: vsearch case route 1 --format geojson -o route.geojson"""
    if fmt not in ("table", "json", "csv", "geojson"):
        raise InputError(f"expected --format table, json, csv or geojson, got {fmt!r}")
    if merge_gap_s < 0:
        raise InputError(f"--merge-gap-s must be >= 0, got {merge_gap_s}")
    s = svc(data_dir)
    with audited(s.audit, "case.route", by, case_id=case_id, format=fmt):
        route = s.casework.route(case_id, item, merge_gap_s)
    text = {
        "json": lambda: json.dumps(route.to_dict(), indent=2), "csv": route.to_csv,
        "geojson": lambda: json.dumps(route.to_geojson(), indent=2), "table": lambda: _route_table(route),
    }[fmt]()  # fmt: skip
    if output:
        output.write_text(text if text.endswith("\n") else text + "\n")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text.rstrip("\n"))


@app.command("companions")
def case_companions(
    case_id: Annotated[int, typer.Argument(metavar="CASE")],
    max_dt_s: Annotated[float, typer.Option(help="Seconds apart that still count as together.")] = 2.0,
    max_dist_h: Annotated[float, typer.Option(help="Distance apart, in person heights, that counts as together.")] = 1.5,
    json_out: JsonOut = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Who the case's person was with: others close to them, grouped across places and times by appearance.

    Example: vsearch case companions 1 --json"""
    from vsearch.companions import companions_to_dict

    s = svc(data_dir)
    with audited(s.audit, "case.companions", by, case_id=case_id):
        rows = s.casework.companions(case_id, None, max_dt_s, max_dist_h)
    if json_out:
        typer.echo(json.dumps(companions_to_dict(rows), indent=2))
        return
    if not rows:
        has_items = bool(svc(data_dir).casework.case(case_id)[1])
        typer.echo("nobody was seen close to this person" if has_items
                   else f"case {case_id} has no confirmed items yet: `vsearch case add` them first")  # fmt: skip
    for c in rows:
        sim = "-" if c.similarity_to_target is None else f"{c.similarity_to_target:.2f}"
        typer.echo(f"{c.rank:>3}. stays={c.visits} cameras={','.join(c.cameras)} samples={c.samples}"
                   f" closest={c.min_distance_h:.2f}h sighting={c.sighting_id} like-target={sim}"
                   f" tracks={' '.join(f'{e.video_id}/{e.track_id}' for e in c.encounters)}")  # fmt: skip


@identities_app.command("identities")
def identities_cmd(
    from_: Annotated[str, typer.Option("--from", help="Window start, ISO 8601.")],
    to: Annotated[str, typer.Option(help="Window end, ISO 8601.")],
    camera: Annotated[list[str] | None, typer.Option(help="Camera id; several: repeat it or separate by commas.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Average cosine similarity to merge (default tuned).")] = None,
    json_out: JsonOut = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Group a window's tracks into putative people across cameras (operators: "who was seen here today").

    Example: vsearch identities --from 2026-03-01T14:00 --to 2026-03-01T15:00"""
    from vsearch.identities import identities_to_dict
    from vsearch.search import parse_cameras

    s = svc(data_dir)
    cameras = parse_cameras(camera)
    with audited(s.audit, "identities", by, **{"from": from_, "to": to, "cameras": list(cameras)}):
        people = s.casework.identities(
            parse_time(from_), parse_time(to), cameras or None, threshold
        )
    if json_out:
        typer.echo(json.dumps(identities_to_dict(people), indent=2))
        return
    typer.echo(f"{len(people)} putative people, {sum(len(p.tracks) for p in people)} tracks")
    for p in people:
        typer.echo(f"{p.id:>4}. sightings={p.sightings:<4} tracks={len(p.tracks):<3} cameras={','.join(p.cameras)}"
                   f" {ts_to_iso(p.first_ts_s)[:19]} .. {ts_to_iso(p.last_ts_s)[11:19]} sighting={p.representative_sighting_id}")  # fmt: skip


def _route_table(route: Any) -> str:
    lines = [f"{'#':>3} {'camera':14} {'from (UTC)':24} {'to':13} {'stay':>8}  arrived"]
    for i, s in enumerate(route.stops):
        m = route.moves[i - 1] if i else None
        arrived = "start" if m is None else f"{m.kind} {m.duration_s:.1f}s" + (f" from {m.from_camera}" if m.kind == "transit" else "")
        lines.append(f"{i + 1:>3} {s.camera_id:14} {ts_to_iso(s.start_ts_s)[:23]:24} {ts_to_iso(s.end_ts_s)[11:23]:13} {s.duration_s:7.1f}s  {arrived}")
    lines.append("time per camera: " + ", ".join(f"{k} {v:.1f}s" for k, v in route.per_camera_s.items()))
    return "\n".join(lines)


def _read_query(path: Path | None) -> bytes | None:
    if path is None:
        return None
    if not path.is_file():
        raise InputError(f"{path}: no such query image file")
    return path.read_bytes()


def _json_object(text: str | None, what: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InputError(f"{what}: expected a JSON object, got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise InputError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
