"""`vsearch` command line: plain Typer apps, one per area, thin over vsearch.service.

Every error is one line `error: ...` on stderr: a VSearchError from any command is reported in one place
(common.ReportingGroup, exit code 2), and so are click's usage errors (main). `python -m vsearch.cli` and the
`vsearch` console script both run `main`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vsearch import __version__
from vsearch.cli import (
    adapt,
    audit,
    cameras,
    cases,
    find,
    footage,
    research,
    retention,
    search,
    server,
    watchlist,
)
from vsearch.cli.common import ReportingGroup

app = typer.Typer(
    cls=ReportingGroup, add_completion=False, no_args_is_help=True, help="vsearch: find a person in camera footage."
)
app.add_typer(footage.app)
app.add_typer(search.app)
app.add_typer(find.app)
app.add_typer(cameras.app, name="cameras")
app.add_typer(cases.app, name="case")
app.add_typer(cases.identities_app)
app.add_typer(watchlist.app, name="watchlist")
app.add_typer(watchlist.alerts_app, name="alerts")
app.add_typer(watchlist.webhooks_app, name="webhooks")
app.add_typer(server.app)
app.add_typer(research.app)
app.add_typer(adapt.app)
app.add_typer(audit.app, name="audit")
app.add_typer(retention.app, name="retention")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """vsearch: find a person in camera footage. Exit codes: 0 done, 1 some sources failed or an evidence ZIP was
    changed, 2 bad input or configuration (one line on stderr), 75 busy (run again later), 130 interrupted."""


def main() -> None:
    try:
        rc = app(standalone_mode=False)
    except typer.TyperException as e:  # click's usage errors (typer vendors click): one line too, naming the option
        message = e.format_message()  # type: ignore[attr-defined]
        if type(e).__name__ == "NoArgsIsHelpError":  # the help text itself
            typer.echo(message)
        else:
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        rc = getattr(e, "exit_code", 2)
    except typer.Abort:
        typer.secho("error: aborted", fg=typer.colors.RED, err=True)
        rc = 130
    sys.exit(rc if isinstance(rc, int) else 0)
