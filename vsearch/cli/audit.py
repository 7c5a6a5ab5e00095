"""`vsearch audit`: the audit log, filtered (user, case, action, time) as a table, JSON or CSV, and `verify` (its
hash chain and its mirror). The CLI runs on the machine that holds the data dir, so it reads as an admin; each read
is itself audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import DataDir, JsonOut, audited, open_service
from vsearch.types import parse_time

app = typer.Typer(help="The audit log: who searched, viewed, exported or changed what, and why.")


@app.callback(invoke_without_command=True)
def audit_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this key name (cli:<user> for the CLI's own).")] = None,
    case: Annotated[int | None, typer.Option("--case", help="Only entries for this case.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action: search, clip.view, case.export, ...")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="From this time, ISO 8601.")] = None,
    to: Annotated[str | None, typer.Option(help="Until this time (exclusive), ISO 8601.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first.", min=1, max=1_000_000)] = 100,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the entries to this CSV file instead.")] = None,
    json_out: JsonOut = False,
    data_dir: DataDir = None,
) -> None:
    """List audit entries, newest first, filtered; --csv writes them as CSV (text cells safe from spreadsheet
    formulas).

    Example: vsearch audit --user ana --from 2026-03-01 --to 2026-03-02 --action search --csv ana.csv"""
    if ctx.invoked_subcommand is not None:
        return
    from vsearch.audit import audit_filter, entries_to_csv

    where = audit_filter(user, case, action, parse_time(from_) if from_ else None, parse_time(to) if to else None)
    svc = open_service(data_dir)
    with audited(svc.audit, "audit.read", None, filters={k: v for k, v in vars(where).items() if v is not None}) as entry:
        entries = svc.audit.find(where, limit)
        entry["entries"] = len(entries)
    if csv_out is not None:
        csv_out.write_text(entries_to_csv(entries))
        typer.echo(f"wrote {len(entries)} entries to {csv_out}")
    elif json_out:
        typer.echo(json.dumps(entries, indent=2))
    elif not entries:
        typer.echo("no audit entries match")
    else:
        for e in entries:
            why = " ".join(f"{k}={e[k]}" for k in ("case_id", "reason") if e.get(k) is not None)
            typer.echo(f"{e.get('seq', ''):>6} {e.get('time', ''):20} {e.get('action') or e.get('path') or '':16}"
                       f" {e.get('key_name') or e.get('key') or '':20} {why}".rstrip())  # fmt: skip


@app.command("verify")
def audit_verify(
    expect: Annotated[str | None, typer.Option(help="A head hash printed by an earlier verify: must still be in the chain.")] = None,
    json_out: JsonOut = False,
    data_dir: DataDir = None,
) -> None:
    """Check the audit log's hash chain and its mirror (audit.jsonl): exit 0 intact, 1 naming each entry edited,
    inserted or removed. Prints the head hash: keep it to prove later that nothing was cut off the end.

    Example: vsearch audit verify --expect 3f2a...e9"""
    svc = open_service(data_dir)
    with audited(svc.audit, "audit.verify", None) as entry:
        check = svc.audit.verify(expect)
        entry.update(ok=check.ok, entries=check.entries, head_hash=check.head, exit_code=0 if check.ok else 1)
    if json_out:
        typer.echo(json.dumps(check.to_dict(), indent=2))
    else:
        for p in check.problems:
            typer.echo(f"TAMPERED: {p}")
        typer.echo(f"{'intact' if check.ok else 'NOT intact'}: {check.entries} entries, head hash {check.head}")
    if not check.ok:
        raise typer.Exit(1)
