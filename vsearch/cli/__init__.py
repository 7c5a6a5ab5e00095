"""`vsearch` command line: plain Typer apps, one per area, thin over vsearch.service.

Every command reports a VSearchError in one place (common.ReportingGroup): one line `error: ...` on stderr and
exit code 2. `python -m vsearch.cli` and the `vsearch` console script both run `main`.
"""

from __future__ import annotations

import typer

from vsearch.cli import cameras, cases, footage, research, search, server
from vsearch.cli.common import ReportingGroup

app = typer.Typer(
    cls=ReportingGroup, add_completion=False, no_args_is_help=True, help="vsearch: find a person in camera footage."
)
app.add_typer(footage.app)
app.add_typer(search.app)
app.add_typer(cameras.app, name="cameras")
app.add_typer(cases.app, name="case")
app.add_typer(cases.identities_app)
app.add_typer(server.app)
app.add_typer(research.app)


def main() -> None:
    app()
