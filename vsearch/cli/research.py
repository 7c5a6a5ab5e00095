"""`vsearch eval`, `vsearch eval-footage`, `vsearch convert-pku`: accuracy on labelled data (the benchmarks use them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import DataDir, service, settings
from vsearch.config import Settings

app = typer.Typer()


@app.command("eval")
def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="Market-1501 layout: query/ and bounding_box_test/.")],
    embedder: Annotated[list[str] | None, typer.Option(help="Embedder name (repeat to compare; default: configured).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
) -> None:
    """Re-identification accuracy (rank-1/5/10, mAP) of one or more embedders on a Market-layout folder."""
    from vsearch.embed import make_embedder
    from vsearch.evaluate import format_table, run_eval

    names = embedder or [Settings().embedder]
    rows = run_eval(folder, [make_embedder(Settings(embedder=n)) for n in names], json_out)
    typer.echo(format_table(rows))
    if json_out:
        typer.echo(f"wrote {json_out}")


@app.command("eval-footage")
def eval_footage_cmd(
    sequences: Annotated[list[Path], typer.Argument(help="MOTChallenge sequence folders (img1/, gt/gt.txt).")],
    k: Annotated[int, typer.Option(help="Ranks to score.")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval through the real ingest and search path on footage with identity ground truth."""
    import tempfile

    from training.footage import evaluate_footage

    s = settings(data_dir or Path(tempfile.mkdtemp(prefix="vsearch-eval-")))
    result = evaluate_footage(sequences, service(s), k)
    typer.echo(json.dumps(result, indent=2))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command("convert-pku")
def convert_pku_cmd(
    src: Annotated[Path, typer.Argument(help="PKU-Reid folder (<pid>/<cam>_<orientation>.png, any depth).")],
    out: Annotated[Path, typer.Argument(help="Where to write the Market-1501 layout.")],
) -> None:
    """Convert PKU-Reid crops into the Market-1501 layout (camera 01 queries camera 02)."""
    from training.datasets import convert_pku

    stats = convert_pku(src, out)
    typer.echo(f"wrote {stats['crops']} crops of {stats['identities']} identities to {out}")
