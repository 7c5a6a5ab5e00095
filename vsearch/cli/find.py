"""`vsearch find` (search by description, no image) and `vsearch reindex-attributes`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from vsearch.cli.common import CONTEXT, CaseOption, DataDir, JsonOut, ReasonOption, by_user, open_service
from vsearch.config import MAX_TOP_K
from vsearch.errors import VSearchError
from vsearch.types import parse_time

app = typer.Typer()


def print_found(body: dict[str, Any]) -> None:
    typer.echo(f"description: {json.dumps(body['description'], ensure_ascii=False)}")
    typer.echo(f"{body['candidates']} sightings in the filters")
    if body["without_attributes"]:
        typer.echo(f"{body['without_attributes']} sightings have no attributes yet: run vsearch reindex-attributes")
    if not body["clips"]:
        typer.echo("no sightings in these filters" if not body["candidates"] else "no matching sightings")
        return
    typer.echo(f"{'rank':>4} {'p':>6}  {'camera':12} {'from (UTC)':24} {'track':>5} {'sighting':>8}  clip id")
    for i, c in enumerate(body["clips"], 1):
        typer.echo(f"{i:>4} {c['score']:6.3f}  {c['camera_id']:12} {c['start'][:23]:24} {c['track_id']:>5}"
                   f" {c['best']['id']:>8}  {c['id']}")  # fmt: skip


@app.command("find")
def find_cmd(
    phrase: Annotated[str | None, typer.Argument(help="A description, e.g. \"woman with a backpack, red top, dark"
                                                      " trousers\" (English, Ukrainian or Russian words).")] = None,
    gender: Annotated[str | None, typer.Option(help="female or male.")] = None,
    carrying: Annotated[list[str] | None, typer.Option(help="backpack, bag or handbag (repeat for several).")] = None,
    upper: Annotated[str | None, typer.Option(help="Upper-body colour: black, blue, green, gray, purple, red, white,"
                                                   " yellow.")] = None,
    lower: Annotated[str | None, typer.Option(help="Lower-body colour: black, blue, brown, gray, green, pink, purple,"
                                                   " white, yellow.")] = None,
    age: Annotated[str | None, typer.Option(help="young, teenager, adult or old.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Window start, ISO 8601.")] = None,
    to: Annotated[str | None, typer.Option(help="Window end, ISO 8601.")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Camera id; several: repeat it or separate by commas.")] = None,
    top: Annotated[int, typer.Option(help="Number of clips to return.", min=1, max=MAX_TOP_K)] = 20,
    case: CaseOption = None,
    reason: ReasonOption = None,
    json_out: JsonOut = False,
    data_dir: DataDir = None,
) -> None:
    """Find people by description, without an image: clips ranked by the joint probability of the attributes
    (vsearch/attributes.py), inside the time window and cameras. Audited as `find`.

    Examples: vsearch find "woman with a backpack, red top, dark trousers" --from 2026-03-01T14:00 --to 2026-03-01T15:00
              vsearch find --gender female --carrying backpack --upper red --lower black --camera cam-01"""
    from vsearch.find import find_result_to_dict
    from vsearch.search import SearchFilters, parse_cameras

    by = by_user()
    cameras = parse_cameras(camera)
    from vsearch.describe import describe

    description = describe(phrase, gender, carrying, upper, lower, age)  # refused before anything opens
    filters = SearchFilters(parse_time(from_) if from_ else None, parse_time(to) if to else None, cameras, top)
    svc = open_service(data_dir)
    svc.audit.ready()
    record: dict[str, Any] = {"action": "find", "via": "cli", "key_name": by, "description": description.summary(),
                              "filters": {"from": from_, "to": to, "cameras": list(cameras), "top_k": top}}  # fmt: skip
    try:
        record.update(svc.casework.purpose(case, reason, by, CONTEXT))
        result = svc.find(description, filters)
    except VSearchError as e:
        svc.audit.append({**record, "exit_code": 2, "error": str(e)})
        raise
    body = find_result_to_dict(result)
    svc.audit.append({**record, "exit_code": 0, "clips": [c["id"] for c in body["clips"]]})
    if json_out:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        print_found(body)


@app.command("reindex-attributes")
def reindex_attributes_cmd(data_dir: DataDir = None) -> None:
    """Give attribute probabilities to every sighting stored without them (footage ingested before attributes,
    or with them off): from the stored embedding when it is the attribute model's embedder's, else from the
    stored crop. Resumable; a second run does nothing.

    Example: vsearch reindex-attributes --data-dir data"""
    svc = open_service(data_dir)
    report = svc.reindex_attributes()
    typer.echo(f"{report.scored} sightings given attributes ({report.from_vectors} from stored embeddings,"
               f" {report.scored - report.from_vectors} from stored crops)")  # fmt: skip
    if report.missing_crops:
        typer.echo(f"{len(report.missing_crops)} sightings have no stored crop and got none: {report.missing_crops[:10]}")
        raise typer.Exit(1)
