"""`vsearch eval`, `vsearch eval-footage`, `vsearch convert-pku`: accuracy on labelled data (the benchmarks use them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vsearch.cli.common import DataDir, service, settings
from vsearch.config import load_settings
from vsearch.errors import VSearchError

app = typer.Typer()


def research(module: str) -> Any:
    """Import `training.<module>`: research code that lives in the source tree, not in the installed wheel."""
    import importlib

    try:
        return importlib.import_module(f"training.{module}")
    except ModuleNotFoundError as e:
        if e.name not in ("training", f"training.{module}"):
            raise
        raise VSearchError(
            "this command needs the research code (training/), which the installed vsearch package does not ship:"
            " run it from a source checkout (python -m vsearch.cli ... in the project folder)"
        ) from None


@app.command("eval")
def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="Market-1501 layout: query/ and bounding_box_test/.")],
    embedder: Annotated[list[str] | None, typer.Option(help="Embedder name (repeat to compare; default: configured).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
) -> None:
    """Re-identification accuracy (rank-1/5/10, mAP) of one or more embedders on a Market-layout folder."""
    from vsearch.embed import make_embedder
    from vsearch.evaluate import format_table, run_eval

    names = embedder or [load_settings().embedder]
    rows = run_eval(folder, [make_embedder(load_settings(embedder=n)) for n in names], json_out)
    typer.echo(format_table(rows))
    if json_out:
        typer.echo(f"wrote {json_out}")


@app.command("eval-footage")
def eval_footage_cmd(
    sequences: Annotated[list[Path], typer.Argument(help="MOTChallenge sequence folders (img1/, gt/gt.txt).")],
    k: Annotated[int, typer.Option(help="Ranks to score.")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    data_dir: DataDir = None,
    embedder: Annotated[str | None, typer.Option(help="Embedder to ingest and search with (default: configured).")] = None,
    track_level: Annotated[bool | None, typer.Option(help="Rank tracks by their mean vector (default: configured).")] = None,
    camera_norm: Annotated[bool | None, typer.Option(help="Take each camera's mean vector out (default: configured).")] = None,
) -> None:
    """Retrieval through the real ingest and search path on footage with identity ground truth."""
    import tempfile

    footage = research("footage")
    s = settings(data_dir or Path(tempfile.mkdtemp(prefix="vsearch-eval-")), embedder=embedder,
                 search_track_level=track_level, search_camera_norm=camera_norm)  # fmt: skip
    result = footage.evaluate_footage(sequences, service(s), k)
    typer.echo(json.dumps(result, indent=2))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command("convert-pku")
def convert_pku_cmd(
    src: Annotated[Path, typer.Argument(help="PKU-Reid folder (<pid>/<cam>_<orientation>.png, any depth).")],
    out: Annotated[Path, typer.Argument(help="Where to write the Market-1501 layout.")],
) -> None:
    """Convert PKU-Reid crops into the Market-1501 layout (camera 01 queries camera 02)."""
    stats = research("datasets").convert_pku(src, out)
    typer.echo(f"wrote {stats['crops']} crops of {stats['identities']} identities to {out}")
