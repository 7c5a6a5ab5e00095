"""`vsearch serve`: the REST API and the investigators' web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import DataDir, fail, settings

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    footage_root: Annotated[Path | None, typer.Option(help="Folder POST /ingest may read server-side videos from.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the REST API (docs at /docs) and the investigators' web page (at /); runs retention on its schedule.

    Example: VSEARCH_API_KEYS='[{"name": "ana", "key": "...16+ chars...", "role": "investigator"}]' vsearch serve --host 0.0.0.0"""
    import secrets
    import socket

    import uvicorn

    from api import create_app
    from vsearch.config import ApiKey

    s = settings(data_dir, footage_root=footage_root)
    try:  # before any URL or key is printed
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
    if not s.api_keys:
        if host not in ("127.0.0.1", "localhost", "::1"):
            fail(f"refusing to listen on {host} without API keys: set VSEARCH_API_KEYS")
        key = secrets.token_urlsafe(24)
        s = s.model_copy(update={"api_keys": [ApiKey(name="local-admin", key=key, role="admin")]})
        typer.echo(f"no API keys configured: this run's local admin key is {key}", err=True)
    from vsearch.service import VSearch

    typer.echo(f"vsearch on http://{host}:{port}/  (API docs at /docs, data in {s.data_dir.resolve()})", err=True)
    svc = VSearch(s)
    schedule = svc.retention_schedule()  # expiry every VSEARCH_RETENTION_INTERVAL_S while retention is set
    try:
        # open alert streams (GET /watchlists/events) never end by themselves: at a stop, give requests 5 s, then end them
        uvicorn.run(create_app(s, svc), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        schedule.stop()
        svc.close()
