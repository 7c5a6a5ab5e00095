"""What every `vsearch` command shares: settings, the service, option types, and the one place errors are reported."""

from __future__ import annotations

import getpass
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from vsearch.config import Settings, load_settings
from vsearch.errors import InputError, VSearchError

if TYPE_CHECKING:
    from vsearch.audit import AuditLog

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", show_default=False,
        help="The folder holding the catalog, index and clips (default ./vsearch_data, or VSEARCH_DATA_DIR).",
    ),
]  # fmt: skip
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
By = Annotated[str | None, typer.Option("--by", help="Who does this, for the audit log (default cli:<OS user>).")]
CaseOption = Annotated[int | None, typer.Option("--case", help="The case this is for (audited as its purpose).")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why you look, in a few words (audited; a case or a reason is required"
                                              " when VSEARCH_REQUIRE_REASON=1).")
]  # fmt: skip
CONTEXT = {"role": "cli"}  # the audit log's context of a CLI action
EXIT_BUSY = 75  # EX_TEMPFAIL: nothing wrong, try again later


def settings(data_dir: Path | None, **overrides: object) -> Settings:
    """The environment's settings (ConfigError naming a malformed VSEARCH_ variable), then the command's options."""
    s = load_settings()
    if data_dir is not None:
        s = s.model_copy(update={"data_dir": data_dir})
    return s.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def require_catalog(s: Settings) -> Settings:
    """Refuse a data dir without a catalog (a mistyped --data-dir), instead of creating an empty one that would
    answer every question with "nothing found". Commands that add footage (ingest, watch, demo) and serve skip it."""
    if s.catalog_url is None and not s.catalog_path.is_file():
        raise InputError(
            f"no catalog in {s.data_dir} (--data-dir or VSEARCH_DATA_DIR): check the folder, or ingest footage first"
        )
    return s


def service(s: Settings) -> Any:
    from vsearch.service import VSearch

    return VSearch(s)


def open_service(data_dir: Path | None) -> Any:
    """The service over an existing catalog (require_catalog), for commands that read or annotate footage."""
    return service(require_catalog(settings(data_dir)))


def by_user(by: str | None = None) -> str:
    return by or f"cli:{getpass.getuser()}"


@contextmanager
def audited(audit: AuditLog | None, action: str, by: str | None, **fields: Any) -> Iterator[dict[str, Any]]:
    """A CLI read, audited as the API's requests are (`via: cli`, its exit code, a refusal's reason). Its entry is
    written before the answer is shown (print after the block), and nothing is read if it cannot be written.
    `audit` None: no data dir to audit in (the caller said so)."""
    record: dict[str, Any] = {"action": action, "via": "cli", "key_name": by_user(by), **CONTEXT, **fields}
    if audit is None:
        yield record
        return
    audit.ready()
    try:
        yield record
    except VSearchError as e:
        audit.append({**record, "exit_code": 2, "error": str(e)})
        raise
    audit.append({"exit_code": 0, **record})  # a read that answered: 0 unless the block set its own


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
    """A progress bar on a terminal; elsewhere (a log file, a pipe) a line at each tenth of the video."""
    state: dict = {}
    if not sys.stderr.isatty():

        def lines(done_s: float, total_s: float) -> None:
            tenth = int(10 * done_s / total_s) if total_s > 0 else 10
            if tenth > state.get("tenth", 0):
                state["tenth"] = tenth
                typer.echo(f"progress {label}: {done_s:.0f}/{total_s:.0f} s of video ({min(100, 10 * tenth)} %)", err=True)

        return lines

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


def echo_listing(items: Sequence[Any], json_out: bool, to_dict: Callable[[Any], Any], line: Callable[[Any], str], empty: str) -> None:
    """A listing as JSON (`--json`: a list of `to_dict` of each) or as text (a `line` each, or `empty` for none)."""
    if json_out:
        typer.echo(json.dumps([to_dict(i) for i in items], indent=2))
        return
    if not items:
        typer.echo(empty)
    for i in items:
        typer.echo(line(i))
