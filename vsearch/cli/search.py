"""`vsearch search`, `vsearch clip` and `vsearch demo`: find a person, cut the evidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from vsearch.cli.common import (
    CONTEXT,
    CaseOption,
    DataDir,
    JsonOut,
    ReasonOption,
    audited,
    by_user,
    fail,
    finite,
    open_service,
    print_reports,
    progress_bar,
    require_catalog,
    service,
    settings,
)  # fmt: skip
from vsearch.cli.remote import KEY_VARIABLE, search_through
from vsearch.config import MAX_TOP_K, PROJECT_ROOT
from vsearch.errors import InputError
from vsearch.types import parse_time

app = typer.Typer()

SAMPLE_VIDEO = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
SAMPLE_QUERY = PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg"
DEMO_START = "2026-03-01T14:00:00+00:00"


def print_result(result: dict[str, Any]) -> None:
    """A search result as a table, from its JSON shape (vsearch.search.result_to_dict, or the API's body)."""
    for q in result["queries"]:
        typer.echo(f"query: {q['source']} {tuple(round(v) for v in q['box_xyxy'])}")
    clips = result["clips"]
    demoted = f"; {result['demoted']} shown last as rejected or like a rejected one" if result["demoted"] else ""
    typer.echo(f"{result['candidates']} sightings in the filters{demoted}")
    for r in result.get("unsearched", []):  # a shard owner of a partitioned index was down: partial there
        typer.echo(f"WARNING: not searched (a shard owner is down): {r['from'] or 'the start'} to {r['to'] or 'now'}")
    if not clips:
        typer.echo("no matching sightings")
    cam = max([12, *(len(c["camera_id"]) for c in clips)])  # long camera names widen the column
    sid = max([8, *(len(str(c["best"]["id"])) for c in clips)])
    typer.echo(
        f"{'rank':>4} {'score':>6}  {'camera':{cam}} {'from (UTC)':24} {'to':12} {'track':>5} {'sighting':>{sid}}"
        f"  {'colours':14} clip id"
    )
    for i, c in enumerate(clips, 1):
        best = c["best"]
        colours = f"{best['upper_color']}/{best['lower_color']}"
        typer.echo(
            f"{i:>4} {c['score']:6.3f}  {c['camera_id']:{cam}} {c['start'][:23]:24} {c['end'][11:23]:12}"
            f" {c['track_id']:>5} {best['id']:>{sid}}  {colours:14} {c['id']}"
        )


def read_images(images: list[Path]) -> list[tuple[str, bytes]]:
    """(content type, bytes) of each query image; InputError for a folder, a missing file or a non-image."""
    from vsearch.images import image_size

    for image in images:
        if image.is_dir():
            raise InputError(f"{image} is a folder; expected image files (e.g. {image}/*.jpg)")
        if not image.is_file():
            raise InputError(f"{image}: no such image file")
    data = [p.read_bytes() for p in images]
    return [(f"image/{image_size(d)[0].lower()}", d) for d in data]


@app.command("search")
def search_cmd(
    images: Annotated[list[Path], typer.Argument(help="Query image(s) of one person: person crops or photos.")],
    from_: Annotated[str | None, typer.Option("--from", help="Window start, ISO 8601.")] = None,
    to: Annotated[str | None, typer.Option(help="Window end, ISO 8601.")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Camera id; several: repeat it or separate by commas.")] = None,
    top: Annotated[int, typer.Option(help="Number of clips to return.", min=1, max=MAX_TOP_K)] = 20,
    min_score: Annotated[float, typer.Option(help="Minimum cosine similarity.", callback=finite)] = -1.0,
    box: Annotated[str | None, typer.Option(help="Person box in the (one) query image: x1,y1,x2,y2.")] = None,
    upper: Annotated[str | None, typer.Option(help="Upper-body colour, e.g. red (see vsearch.colors).")] = None,
    lower: Annotated[str | None, typer.Option(help="Lower-body colour, e.g. blue.")] = None,
    describe: Annotated[str | None, typer.Option(help="What the person looks like, as `vsearch find` takes it, e.g."
                                                      " \"woman with a backpack\": only sightings likely to fit are"
                                                      " candidates, re-ranked by it.")] = None,
    gender: Annotated[str | None, typer.Option(help="Description option: female or male.")] = None,
    carrying: Annotated[list[str] | None, typer.Option(help="Description option: backpack, bag or handbag (repeat).")] = None,
    age: Annotated[str | None, typer.Option(help="Description option: young, teenager, adult or old.")] = None,
    confirm: Annotated[list[int] | None, typer.Option(help="Sighting id that IS the person (repeat): joins the query.")] = None,
    reject: Annotated[list[int] | None, typer.Option(help="Sighting id that is NOT the person (repeat): ranked last, with look-alikes.")] = None,
    case: CaseOption = None,
    reason: ReasonOption = None,
    json_out: JsonOut = False,
    data_dir: DataDir = None,
    server: Annotated[
        str | None,
        typer.Option(help="Search through a running `vsearch serve` at this URL (its catalog, its warm models; the key"
                          f" in {KEY_VARIABLE}) instead of opening a data dir."),
    ] = None,
) -> None:
    """Find where the person in IMAGES was seen, ranked, grouped into clips. Marks (--confirm/--reject) are stored.
    Every search is written to the audit log as the API's are (`via: cli`; through --server, the server's log),
    refused ones with their reason.

    Example: vsearch search query.jpg --from 2026-03-01T14:00 --to 2026-03-01T18:00 --camera cam-01,cam-02 --top 20
             vsearch search query.jpg --describe "woman with a backpack"   (or --gender female --carrying backpack)"""
    if server is not None:
        if data_dir is not None:
            raise InputError("--data-dir and --server exclude each other: through --server, the server's catalog is searched")
        fields = [("from", from_), ("to", to), *(("cameras", c) for c in camera or ()), ("top_k", str(top)),
                  ("min_score", repr(min_score)), ("box", box), ("upper", upper), ("lower", lower),
                  ("description", describe), ("gender", gender), ("age", age), *(("carrying", c) for c in carrying or ()),
                  *(("confirmed", str(i)) for i in confirm or ()), *(("rejected", str(i)) for i in reject or ()),
                  ("case_id", None if case is None else str(case)), ("reason", reason)]  # fmt: skip
        uploads = [(p.name, ctype, data) for p, (ctype, data) in zip(images, read_images(images))]
        body = search_through(server, uploads, [(k, v) for k, v in fields if v is not None])
        if json_out:
            typer.echo(json.dumps(body, indent=2))
        else:
            print_result(body)
        return
    from vsearch.audit import SearchRecord
    from vsearch.describe import describe_search, said
    from vsearch.search import Feedback, SearchFilters, parse_box, parse_cameras, result_to_dict

    s = settings(data_dir)
    by = by_user()
    cameras = parse_cameras(camera)
    record = SearchRecord({"via": "cli", "key_name": by, **CONTEXT, "client": None},
                          {"from": from_, "to": to, "cameras": list(cameras), "top_k": top, "min_score": min_score,
                           "box": box, "upper": upper, "lower": lower,
                           **said(description=describe, gender=gender, carrying=carrying, age=age)}, confirm or (), reject or (),
                          code=lambda error: {"exit_code": 0 if error is None else 2})  # fmt: skip
    # the input is checked first; a mistyped data dir is then refused (require_catalog), with no audit log beside it
    svc = service(s) if s.catalog_url or s.catalog_path.is_file() else None
    with record.audited(svc.audit if svc is not None else None):  # the service writes it; input refused before too
        data = [d for _, d in read_images(images)]  # a non-image is refused before anything is opened
        record.query(data)
        filters = SearchFilters(
            parse_time(from_) if from_ else None, parse_time(to) if to else None, cameras, top,
            min_score, upper, lower, describe_search(describe, gender, carrying, age),
        )  # fmt: skip
        feedback = Feedback(tuple(dict.fromkeys(confirm or ())), tuple(dict.fromkeys(reject or ())))
        box_xyxy = parse_box(box)
        svc = svc or service(require_catalog(s))
        record.update(svc.casework.purpose(case, reason, by, CONTEXT))
        result = svc.search(data, filters, box_xyxy, feedback, by, record)
    found = result_to_dict(result)
    if json_out:
        typer.echo(json.dumps(found, indent=2))
    else:
        print_result(found)


@app.command()
def clip(
    ref: Annotated[str, typer.Argument(metavar="CLIP_ID", help="A clip id as `vsearch search` prints it (or a sighting id).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the MP4.")] = Path("evidence.mp4"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite the MP4 and JPEG if they exist.")] = False,
    case: CaseOption = None,
    reason: ReasonOption = None,
    data_dir: DataDir = None,
) -> None:
    """Cut the evidence clip (box drawn, time burned in) and a JPEG thumbnail beside it. The view is audited
    (`clip.view`, with the case or reason given; one is required when VSEARCH_REQUIRE_REASON=1).

    Example: vsearch clip 1-8-51000-69000 -o evidence.mp4 --case 3"""
    thumb = output.with_suffix(".jpg")
    if not force and (taken := [p for p in (output, thumb) if p.exists()]):
        fail(f"{taken[0]} exists; choose another --output or add --force to overwrite it")
    svc = open_service(data_dir)
    with audited(svc.audit, "clip.view", None, clip_ref=ref) as entry:  # written before the files are
        entry.update(svc.casework.purpose(case, reason, entry["key_name"], CONTEXT))
        clip_id, sighting_id = svc.resolve_clip(ref)
        entry["clip_id"] = clip_id
        mp4 = svc.clip_file(clip_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mp4, output)
    shutil.copyfile(svc.frame_file(sighting_id), thumb)
    typer.echo(f"clip {clip_id}: {output} (H.264 MP4), thumbnail {thumb}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the demo's clips.")] = Path("demo_out"),
    top: Annotated[int, typer.Option(help="Clips to print.")] = 5,
    data_dir: DataDir = None,
) -> None:
    """Ingest the bundled sample footage, search with a sample visitor crop, print ranked clips, write clip files.

    Example: vsearch demo --out demo_out"""
    from vsearch.ingest import IngestItem
    from vsearch.search import SearchFilters, result_to_dict

    s = settings(data_dir)
    svc = service(s)
    typer.echo(f"data dir: {s.data_dir.resolve()}")
    typer.echo(f"ingesting {SAMPLE_VIDEO.name} as camera 'lobby' starting {DEMO_START}")
    reports = svc.ingest([IngestItem(SAMPLE_VIDEO, "lobby", parse_time(DEMO_START))], progress_bar("ingest"))
    if print_reports(reports):
        fail("the sample video could not be ingested")
    typer.echo(f"\nsearching with {SAMPLE_QUERY.relative_to(PROJECT_ROOT)} (a crop of the third visitor)")
    query = SAMPLE_QUERY.read_bytes()
    result = svc.search(query, SearchFilters(top_k=top))
    print_result(result_to_dict(result))
    out.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(result.clips[:3], 1):
        dst = out / f"rank{i}_{c.id}.mp4"
        shutil.copyfile(svc.clip_file(c.id), dst)
        shutil.copyfile(svc.frame_file(c.best.id), dst.with_suffix(".jpg"))
        typer.echo(f"wrote {dst} and {dst.with_suffix('.jpg').name}")
