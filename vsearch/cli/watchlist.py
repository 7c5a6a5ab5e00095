"""`vsearch watchlist ...` and `vsearch alerts`: thin over vsearch.watchlist.

Every change is audited under `--by` (default `cli:<OS user>`) in its own transaction; reads too, before their
answer is shown. The CLI is an operator: it sees every entry and alert.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import (
    CONTEXT,
    By,
    DataDir,
    JsonOut,
    audited,
    by_user,
    echo_listing,
    finite,
    service,
    settings,
)
from vsearch.cli.common import open_service as svc
from vsearch.errors import InputError
from vsearch.types import ts_to_iso

app = typer.Typer(help="Watchlists: wanted people, alerted on as footage is ingested or recorded.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised by watchlist entries; `alerts ack` records a verdict.", invoke_without_command=True)
webhooks_app = typer.Typer(help="Webhook deliveries of alerts: send them, list and retry the dead ones.", no_args_is_help=True)


def _read_images(paths: list[Path]) -> list[bytes]:
    out = []
    for p in paths:
        if not p.is_file():
            raise InputError(f"no image file at {p}")
        out.append(p.read_bytes())
    return out


@app.command("add")
def watch_add(
    name: Annotated[str, typer.Argument(help="Who is wanted (a name or a description).")],
    images: Annotated[list[Path] | None, typer.Argument(metavar="IMAGE...", help="Photos or crops of the person.")] = None,
    case: Annotated[int | None, typer.Option("--case", help="Link to a case: confirmed alerts join it.")] = None,
    cameras: Annotated[list[str] | None, typer.Option("--cameras", help="Only these cameras (repeat; default all).")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", callback=finite,
                                                    help="Cosine similarity an alert needs (default: see README).")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Stop watching at this ISO 8601 time.")] = None,
    sightings: Annotated[list[int] | None, typer.Option("--sighting", help="A sighting of the person (repeat).")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST new alerts to this URL, signed (README).")] = None,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Add a wanted person; prints the entry's id alone on the last line.

    Example: vsearch watchlist add 'visitor 3' visitor3.jpg --cameras lobby --expires 2027-01-01T00:00:00"""
    raw = _read_images(images or [])
    s = service(settings(data_dir))  # adding an entry before any footage is allowed: live cameras come later
    e = s.watchlists.add(name, raw, by_user(by), CONTEXT, case, cameras or [], min_score, expires, sightings or [], webhook)
    typer.echo(f"watching for {e.name!r}: entry {e.id}, {e.vectors} embeddings, min score {e.min_score}")
    if e.webhook_url is not None:
        typer.echo(f"webhook {e.webhook_url}, signing secret {s.watchlists.webhook_secret(e.id, None, CONTEXT)}")
    typer.echo(str(e.id))


@app.command("webhook")
def watch_webhook(
    entry_id: Annotated[int, typer.Argument(metavar="ENTRY")],
    url: Annotated[str | None, typer.Argument(help="Where to POST the entry's new alerts.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop sending the entry's alerts.")] = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Send an entry's new alerts to a URL (prints the new signing secret), or stop (--off).

    Example: vsearch watchlist webhook 1 https://ops.example/hooks/vsearch"""
    if (url is None) == (not off):
        raise InputError("give a webhook URL or --off (not both)")
    s = svc(data_dir)
    e = s.watchlists.set_webhook(entry_id, url, by_user(by), CONTEXT)
    if e.webhook_url is None:
        typer.echo(f"entry {e.id}: no webhook")
    else:
        typer.echo(f"entry {e.id}: webhook {e.webhook_url}, signing secret {s.watchlists.webhook_secret(e.id, None, CONTEXT)}")


@app.command("list")
def watch_list(json_out: JsonOut = False, by: By = None, data_dir: DataDir = None) -> None:
    """List the entries (active and paused).

    Example: vsearch watchlist list --json"""
    from vsearch.watchlist import entry_to_dict

    s = svc(data_dir)
    with audited(s.audit, "watchlist.list", by):
        entries = s.watchlists.entries(None, CONTEXT)
    echo_listing(entries, json_out, entry_to_dict, _line, "no watchlist entries: `vsearch watchlist add NAME IMAGE` adds one")


def _line(e) -> str:  # type: ignore[no-untyped-def]
    cams = ",".join(e.cameras) or "all cameras"
    until = f" until {ts_to_iso(e.expires_at)[:19]}" if e.expires_at is not None else ""
    return f"{e.id:>5}  {e.name:30} {e.status:7} min_score={e.min_score:.2f} {cams}{until} vectors={e.vectors} by {e.created_by}"


@app.command("show")
def watch_show(
    entry_id: Annotated[int, typer.Argument(metavar="ENTRY")], json_out: JsonOut = False, by: By = None,
    data_dir: DataDir = None,
) -> None:  # fmt: skip
    """Show an entry, where its embeddings come from, and its alerts.

    Example: vsearch watchlist show 1"""
    from vsearch.watchlist import alert_to_dict, entry_to_dict

    s = svc(data_dir)
    with audited(s.audit, "watchlist.show", by, entry_id=entry_id):
        e = s.watchlists.entry(entry_id, None, CONTEXT)
        vectors = s.watchlists.images(entry_id, None, CONTEXT)
        alerts = s.watchlists.alerts(None, CONTEXT, entry_id)
    if json_out:
        typer.echo(json.dumps({**entry_to_dict(e), "sources": [v.source for v in vectors],
                               "alerts": [alert_to_dict(a) for a in alerts]}, indent=2))  # fmt: skip
        return
    typer.echo(_line(e))
    for v in vectors:
        typer.echo(f"  embedding from {v.source}")
    for a in alerts:
        typer.echo(_alert_line(a))


def _status(entry_id: int, status: str, by: str | None, data_dir: Path | None) -> None:
    e = svc(data_dir).watchlists.set_status(entry_id, status, by_user(by), CONTEXT)
    typer.echo(f"entry {e.id} ({e.name}): {e.status}")


@app.command("pause")
def watch_pause(entry_id: Annotated[int, typer.Argument(metavar="ENTRY")], by: By = None, data_dir: DataDir = None) -> None:
    """Stop alerting on an entry for now.

    Example: vsearch watchlist pause 1"""
    _status(entry_id, "paused", by, data_dir)


@app.command("resume")
def watch_resume(entry_id: Annotated[int, typer.Argument(metavar="ENTRY")], by: By = None, data_dir: DataDir = None) -> None:
    """Alert on a paused entry again.

    Example: vsearch watchlist resume 1"""
    _status(entry_id, "active", by, data_dir)


@app.command("remove")
def watch_remove(entry_id: Annotated[int, typer.Argument(metavar="ENTRY")], by: By = None, data_dir: DataDir = None) -> None:
    """Remove an entry (its alerts are kept).

    Example: vsearch watchlist remove 1"""
    _status(entry_id, "removed", by, data_dir)


def _alert_line(v) -> str:  # type: ignore[no-untyped-def]
    a = v.alert
    return (f"  alert {a.id:>5}  entry {a.entry_id} ({v.entry_name}) {a.camera_id:10} {ts_to_iso(a.ts_s)[:23]}"
            f" score={a.score:.3f} sighting={a.sighting_id} tracks={a.tracks} {a.status}")  # fmt: skip


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    entry: Annotated[int | None, typer.Option("--entry", help="Only this entry's alerts.")] = None,
    json_out: JsonOut = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """List alerts, newest first.

    Example: vsearch alerts --entry 1 --json"""
    if ctx.invoked_subcommand is not None:
        return
    from vsearch.watchlist import alert_to_dict

    s = svc(data_dir)
    with audited(s.audit, "alert.list", by, entry_id=entry):
        found = s.watchlists.alerts(None, CONTEXT, entry)
    echo_listing(found, json_out, alert_to_dict, lambda a: _alert_line(a).strip(),
                 "no alerts" + (f" for entry {entry}" if entry is not None else ""))  # fmt: skip


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    false_alert: Annotated[bool, typer.Option("--false", help="A false alert (default: confirmed, the person).")] = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Acknowledge an alert: confirmed (its crop joins the entry, and the entry's case if linked) or --false.

    Example: vsearch alerts ack 3"""
    a = svc(data_dir).watchlists.ack(alert_id, "false" if false_alert else "confirmed", by_user(by), CONTEXT)
    typer.echo(f"alert {a.id}: {a.status} by {a.acked_by}")


@webhooks_app.command("dead")
def webhooks_dead(json_out: JsonOut = False, by: By = None, data_dir: DataDir = None) -> None:
    """List webhook deliveries that failed every attempt, newest first.

    Example: vsearch webhooks dead --json"""
    from vsearch.watchlist import delivery_to_dict

    s = svc(data_dir)
    with audited(s.audit, "webhook.dead", by):
        dead = s.watchlists.dead_letters(CONTEXT)
    echo_listing(dead, json_out, delivery_to_dict, lambda d: f"{d.id:>5}  alert {d.alert_id} entry {d.entry_id} {d.url}"
                 f" attempts={d.attempts} last error: {d.last_error}", "no dead webhook deliveries")  # fmt: skip


@webhooks_app.command("retry")
def webhooks_retry(delivery_id: Annotated[int, typer.Argument(metavar="ID")], by: By = None, data_dir: DataDir = None) -> None:
    """Queue a dead delivery again (sent by the next `vsearch serve` or `vsearch webhooks run` pass).

    Example: vsearch webhooks retry 4"""
    d = svc(data_dir).watchlists.retry_delivery(delivery_id, by_user(by), CONTEXT)
    typer.echo(f"delivery {d.id}: {d.status}")


@webhooks_app.command("run")
def webhooks_run(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Send webhook deliveries as they fall due (every `vsearch serve` does this too), until Ctrl-C.

    Example: vsearch webhooks run --once"""
    sender = svc(data_dir).watchlists.deliverer()
    if once:
        typer.echo(f"{sender.run_once()} deliveries attempted")
        return
    sender.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sender.close()
