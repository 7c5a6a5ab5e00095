"""`vsearch adapt`: learn this deployment's cameras from its own footage; `--rollback` undoes the last switch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import By, DataDir, by_user, finite, service, settings
from vsearch.config import ADAPT_BUDGET_S, ADAPT_ROUNDS

app = typer.Typer()


@app.command()
def adapt(
    budget_s: Annotated[float, typer.Option(help="Wall seconds of fine-tuning.", callback=finite)] = ADAPT_BUDGET_S,
    rounds: Annotated[int, typer.Option(help="Re-cluster / train rounds within the budget.")] = ADAPT_ROUNDS,
    base: Annotated[Path | None, typer.Option(help="Checkpoint (.pt) to start from (default: VSEARCH_ADAPT_BASE, else models/reid/<embedder>.pt).")] = None,
    crops_per_track: Annotated[int, typer.Option(help="Stored crops used per track at most.")] = 8,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many training steps.", hidden=True)] = None,
    rollback: Annotated[bool, typer.Option("--rollback", help="Return to the embedder in use before the last switch.")] = False,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Fine-tune the re-ID model on the catalog's own tracks (no labels), write it as a new embedder, re-embed every
    sighting from its stored crop and switch the catalog to it; searches use the old vectors until the switch."""
    from vsearch.adapt import AdaptOptions
    from vsearch.adapt import adapt as run_adapt
    from vsearch.adapt import rollback as run_rollback

    def say(msg: str) -> None:
        typer.echo(msg, err=True)

    if rollback:
        svc = service(settings(data_dir))
        back = run_rollback(svc, by_user(by), say)
        typer.echo(f"rolled back from {back.previous} to {back.embedder}: {back.switched} sightings"
                   f" ({back.reembedded} re-embedded from their crops)")  # fmt: skip
        svc.close()
        return
    options = AdaptOptions(budget_s, rounds, base, crops_per_track, threads, seed, max_steps)  # refused before loading
    svc = service(settings(data_dir))
    r = run_adapt(svc, options, by_user(by), say)
    typer.echo(f"adapted {r.base} on {r.tracks} tracks of {r.cameras} cameras in {r.train_s:.0f} s -> {r.embedder}"
               f" (sha256 {r.sha256}); {r.switch.switched} sightings switched from {r.switch.previous}")  # fmt: skip
    svc.close()
