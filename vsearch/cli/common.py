"""What every `vsearch` command shares: settings, the service, option types, and the one place errors are reported."""

from __future__ import annotations

import getpass
import math
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from vsearch.config import Settings
from vsearch.errors import VSearchError

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Catalog/index folder [env VSEARCH_DATA_DIR].")]
By = Annotated[str | None, typer.Option("--by", help="Who does this, for the audit log (default cli:<OS user>).")]
CONTEXT = {"role": "cli"}  # the audit log's context of a CLI action
EXIT_BUSY = 75  # EX_TEMPFAIL: nothing wrong, try again later


def settings(data_dir: Path | None, **overrides: object) -> Settings:
    s = Settings()
    if data_dir is not None:
        s = s.model_copy(update={"data_dir": data_dir})
    return s.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def service(s: Settings) -> Any:
    from vsearch.service import VSearch

    return VSearch(s)


def by_user(by: str | None = None) -> str:
    return by or f"cli:{getpass.getuser()}"


def finite(value: float | None) -> float | None:
    """Callback of every float option: click's FLOAT takes nan, inf and 1e400, which nothing below can use."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, got {value}")
    return value


def fail(msg: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class ReportingGroup(TyperGroup):
    """The root command group: the one place a VSearchError from any command becomes one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except VSearchError as e:
            fail(str(e))


def progress_bar(label: str):  # type: ignore[no-untyped-def]
    state: dict = {}

    def update(done_s: float, total_s: float) -> None:
        bar = state.get("bar")
        if bar is None or state.get("total") != total_s:
            if bar is not None:
                bar.__exit__(None, None, None)
            bar = typer.progressbar(length=max(1, int(total_s)), label=label, file=sys.stderr)
            bar.__enter__()
            state.update(bar=bar, total=total_s, done=0)
        step = int(done_s) - state["done"]
        if step > 0:
            bar.update(step)
            state["done"] += step
        if done_s >= total_s:
            bar.__exit__(None, None, None)
            state.pop("bar")

    return update


def print_reports(reports) -> int:  # type: ignore[no-untyped-def]
    failed = 0
    for r in reports:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.stage_s.items())
        if r.status == "failed":
            failed += 1
            typer.secho(f"FAILED  {r.path}: {r.error}", fg=typer.colors.RED, err=True)
        elif r.status == "busy":
            typer.secho(f"BUSY    {r.path}: {r.error}", fg=typer.colors.YELLOW, err=True)
        else:
            typer.echo(
                f"{r.status:16s} {r.path} camera={r.camera_id} video_id={r.video_id} frames={r.frames_sampled}"
                f" (detector skipped {r.frames_skipped} unchanged) sightings+={r.sightings_added} video={r.video_s:.1f}s wall={r.wall_s:.1f}s"
                f" speed={r.speed:.1f}x  [{stages}]"
            )
    return failed
