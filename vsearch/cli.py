"""`vsearch` command line: a thin shell over vsearch.service. Errors print one line and exit non-zero."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import InputError, VSearchError
from vsearch.types import parse_time, ts_to_iso

app = typer.Typer(add_completion=False, no_args_is_help=True, help="vsearch: find a person in camera footage.")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Catalog/index folder [env VSEARCH_DATA_DIR].")]
SAMPLE_VIDEO = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
SAMPLE_QUERY = PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg"
DEMO_START = "2026-03-01T14:00:00+00:00"


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    s = Settings()
    if data_dir is not None:
        s = s.model_copy(update={"data_dir": data_dir})
    return s.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _service(settings: Settings):  # type: ignore[no-untyped-def]
    from vsearch.service import VSearch

    return VSearch(settings)


def _finite(value: float | None) -> float | None:
    """Callback of every float option: click's FLOAT takes nan, inf and 1e400, which nothing below can use."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, got {value}")
    return value


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _progress_bar(label: str):  # type: ignore[no-untyped-def]
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


def _print_reports(reports) -> int:  # type: ignore[no-untyped-def]
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


EXIT_BUSY = 75  # EX_TEMPFAIL: nothing wrong, try again later


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Video files, frame folders, or a folder of camera folders.")],
    camera: Annotated[str | None, typer.Option(help="Camera id (default: the parent folder's name).")] = None,
    start: Annotated[str | None, typer.Option(help="Absolute start time of the first file, ISO 8601 (UTC if no zone).")] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Frames sampled per second of video.", callback=_finite)] = None,
    backend: Annotated[str | None, typer.Option(help="Detector backend: openvino, onnx or torch.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (torch backend).")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size in px (default: follows the footage).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run the files on a Ray cluster (RAY_ADDRESS, or a local one).")] = False,
    workers: Annotated[int | None, typer.Option(help="Ray workers (default: one per CPU of the cluster).", min=1)] = None,
    frame_interval_s: Annotated[float | None, typer.Option(help="Frame folders are stills taken this many seconds apart (not video): every still is ingested and, past the tracker's buffer, nobody is tracked from one still to the next.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest footage: detect, track and embed every person, and store the sightings. Safe to re-run."""
    try:
        settings = _settings(
            data_dir, sample_fps=sample_fps, detector_backend=backend, device=device, detector_imgsz=imgsz
        )
        from vsearch.ingest import plan_ingest

        items = plan_ingest(paths, camera, parse_time(start) if start else None, frame_interval_s)
        svc = _service(settings)
        reports = []
        if ray:
            from vsearch.cluster import ingest_on_ray

            typer.echo(f"ingesting {len(items)} sources on Ray", err=True)

            def done(r, n: int, total: int) -> None:  # type: ignore[no-untyped-def]
                typer.echo(f"[{n}/{total}] ", nl=False)
                _print_reports([r])

            reports = ingest_on_ray(settings, items, workers, on_report=done)
        else:
            for it in items:
                typer.echo(f"ingesting {it.path} as camera {it.camera_id} from {ts_to_iso(it.start_ts_s)}", err=True)
                reports += svc.ingest([it], _progress_bar(it.path.name))
                _print_reports(reports[-1:])
        failed = sum(r.status == "failed" for r in reports)
        typer.echo(f"index now holds {svc.store.ntotal} sightings")
        svc.close()
    except VSearchError as e:
        _fail(str(e))
    if failed:
        _fail(f"{failed} of {len(reports)} sources failed (see above); the others were ingested", 1)
    if busy := sum(r.status == "busy" for r in reports):
        _fail(f"{busy} of {len(reports)} sources are being ingested by another process: run again later", EXIT_BUSY)


@app.command()
def watch(
    url: Annotated[str, typer.Argument(help="Live source: rtsp://..., http://..., a device index, or a file.")],
    camera: Annotated[str, typer.Option(help="Camera id.")],
    segment_s: Annotated[float, typer.Option(help="Seconds per recorded segment.", callback=_finite)] = 60.0,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: until the stream ends).", callback=_finite)] = None,
    data_dir: DataDir = None,
) -> None:
    """Record a live stream in segments and ingest each one as it completes (Ctrl-C stops cleanly).

    A camera that drops out is reconnected (VSEARCH_STREAM_RETRIES, VSEARCH_STREAM_BACKOFF_S) and the gap
    reported; one that cannot be reached within that budget ends the command with an error."""
    import signal
    import threading

    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        typer.echo("stopping: finishing the current segment (Ctrl-C again to abort)", err=True)
        stop.set()

    try:
        svc = _service(_settings(data_dir))
        typer.echo(f"recording {url} as camera {camera} in {segment_s:.0f} s segments (Ctrl-C to stop)", err=True)
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            result = svc.watch(url, camera, segment_s, duration_s, stop, lambda r: _print_reports([r]))
        finally:
            signal.signal(signal.SIGINT, previous)
        for g in result.gaps:
            typer.echo(f"gap: no video from {ts_to_iso(g.from_ts_s)} to {ts_to_iso(g.to_ts_s)} ({g.duration_s:.1f} s)")
        typer.echo(f"{len(result.reports)} segments ingested; index now holds {svc.store.ntotal} sightings")
    except VSearchError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("aborted: the segment being recorded is lost; recorded segments are ingested by a re-run of ingest", 130)


def _print_result(result, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    if json_out:
        typer.echo(json.dumps(result_to_dict(result), indent=2))
        return
    for q in result.queries:
        typer.echo(f"query: {q.source} {tuple(round(v) for v in q.xyxy)}")
    demoted = f"; {result.demoted} shown last as rejected or like a rejected one" if result.demoted else ""
    typer.echo(f"{result.candidates} sightings in the filters{demoted}")
    if not result.clips:
        typer.echo("no matching sightings")
    typer.echo(
        f"{'rank':>4} {'score':>6}  {'camera':12} {'from (UTC)':24} {'to':12} {'track':>5} {'sighting':>8}"
        f"  {'colours':14} clip id"
    )
    for i, c in enumerate(result.clips, 1):
        typer.echo(
            f"{i:>4} {c.score:6.3f}  {c.camera_id:12} {ts_to_iso(c.start_ts_s)[:23]:24} {ts_to_iso(c.end_ts_s)[11:23]:12}"
            f" {c.track_id:>5} {c.best.id:>8}  {f'{c.best.upper_color}/{c.best.lower_color}':14} {c.id}"
        )


def result_to_dict(result) -> dict:  # type: ignore[no-untyped-def]
    """A search result as plain JSON-able data (used by the CLI's --json)."""
    return {
        "query": {"source": result.query.source, "xyxy": list(result.query.xyxy)},
        "queries": [{"source": q.source, "xyxy": list(q.xyxy)} for q in result.queries],
        "demoted": result.demoted,
        "candidates": result.candidates,
        "latency_ms": result.latency_ms,
        "clips": [
            {
                "id": c.id, "camera_id": c.camera_id, "track_id": c.track_id, "score": c.score,
                "start": ts_to_iso(c.start_ts_s), "end": ts_to_iso(c.end_ts_s), "video": c.video_path,
                "best_sighting": c.best.id, "colors": {"upper": c.best.upper_color, "lower": c.best.lower_color},
                "sightings": [{"id": h.sighting.id, "score": h.score, "time": h.sighting.time_iso} for h in c.sightings],
            }
            for c in result.clips
        ],
    }  # fmt: skip


@app.command("search")
def search_cmd(
    images: Annotated[list[Path], typer.Argument(help="Query image(s) of one person: person crops or photos.")],
    from_: Annotated[str | None, typer.Option("--from", help="Window start, ISO 8601.")] = None,
    to: Annotated[str | None, typer.Option(help="Window end, ISO 8601.")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Camera id (repeat for several).")] = None,
    top: Annotated[int, typer.Option(help="Number of clips to return.")] = 20,
    min_score: Annotated[float, typer.Option(help="Minimum cosine similarity.", callback=_finite)] = -1.0,
    box: Annotated[str | None, typer.Option(help="Person box in the (one) query image: x1,y1,x2,y2.")] = None,
    upper: Annotated[str | None, typer.Option(help="Upper-body colour, e.g. red (see vsearch.colors).")] = None,
    lower: Annotated[str | None, typer.Option(help="Lower-body colour, e.g. blue.")] = None,
    confirm: Annotated[list[int] | None, typer.Option(help="Sighting id that IS the person (repeat): joins the query.")] = None,
    reject: Annotated[list[int] | None, typer.Option(help="Sighting id that is NOT the person (repeat): ranked last, with look-alikes.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Find where the person in IMAGES was seen, ranked, grouped into clips. Marks (--confirm/--reject) are stored.
    Every search is written to the audit log as the API's are (`via: cli`), refused ones with their reason."""
    import getpass

    from vsearch.audit import AuditLog
    from vsearch.search import Feedback, SearchFilters, parse_box

    settings = _settings(data_dir)
    by = f"cli:{getpass.getuser()}"
    record: dict[str, Any] = {
        "action": "search", "via": "cli", "key_name": by,
        "filters": {"from": from_, "to": to, "cameras": list(camera or ()), "top_k": top, "min_score": min_score,
                    "box": box, "upper": upper, "lower": lower},
        "returned_sighting_ids": [],
    }  # fmt: skip
    if confirm or reject:
        record["confirmed"], record["rejected"] = list(confirm or ()), list(reject or ())
    try:
        try:
            for image in images:
                if not image.is_file():
                    raise InputError(f"{image}: no such image file")
            data = [p.read_bytes() for p in images]
            shas = [hashlib.sha256(d).hexdigest() for d in data]
            record.update(query_sha256=shas[0], query_bytes=sum(map(len, data)))
            if len(shas) > 1:
                record["query_sha256s"] = shas
            filters = SearchFilters(
                parse_time(from_) if from_ else None, parse_time(to) if to else None, tuple(camera or ()), top,
                min_score, upper, lower,
            )  # fmt: skip
            feedback = Feedback(tuple(dict.fromkeys(confirm or ())), tuple(dict.fromkeys(reject or ())))
            result = _service(settings).search(data, filters, parse_box(box), feedback, by)
        except VSearchError as e:
            AuditLog(settings.audit_log_path).append({**record, "exit_code": 2, "error": str(e)})
            raise
        record["returned_sighting_ids"] = [h.sighting.id for c in result.clips for h in c.sightings]
        record["returned_clip_ids"] = [c.id for c in result.clips]
        AuditLog(settings.audit_log_path).append({**record, "exit_code": 0})
        _print_result(result, json_out)
    except VSearchError as e:
        _fail(str(e))


@app.command()
def clip(
    sighting_id: Annotated[int, typer.Argument(help="Sighting id (from `vsearch search`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the MP4.")] = Path("evidence.mp4"),
    data_dir: DataDir = None,
) -> None:
    """Cut the evidence clip around a sighting (box drawn, time burned in) and a JPEG thumbnail beside it."""
    try:
        svc = _service(_settings(data_dir))
        clip_id = svc.clip_id_for(sighting_id)
        mp4 = svc.clip_file(clip_id)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mp4, output)
        thumb = output.with_suffix(".jpg")
        shutil.copyfile(svc.frame_file(sighting_id), thumb)
        typer.echo(f"clip {clip_id}: {output} (H.264 MP4), thumbnail {thumb}")
    except VSearchError as e:
        _fail(str(e))


cameras_app = typer.Typer(help="List cameras; `cameras set` names and places one.", invoke_without_command=True)
app.add_typer(cameras_app, name="cameras")


@cameras_app.callback()
def cameras(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """List cameras with their footage and sightings (and name and coordinates when set)."""
    if ctx.invoked_subcommand is not None:
        return
    svc = _service(_settings(data_dir))
    info = svc.casework.camera_info()
    for c in svc.cameras():
        span = f"{ts_to_iso(c.first_ts_s)} .. {ts_to_iso(c.last_ts_s)}" if c.first_ts_s and c.last_ts_s else "-"
        meta = info.get(c.id)
        where = f" name={meta.name!r}" if meta and meta.name else ""
        where += f" lat={meta.lat} lon={meta.lon}" if meta and meta.lat is not None else ""
        typer.echo(f"{c.id:16} videos={c.videos} footage={c.footage_s:.0f}s sightings={c.sightings} {span}{where}")


from vsearch.cli_cases import register as _register_case_commands  # noqa: E402  (the case commands live apart)

_register_case_commands(app, cameras_app, _settings, _service, _fail)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    footage_root: Annotated[Path | None, typer.Option(help="Folder POST /ingest may read server-side videos from.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the REST API (docs at /docs) and the investigators' web page (at /)."""
    import secrets

    import uvicorn

    from api import create_app
    from vsearch.config import ApiKey

    settings = _settings(data_dir, footage_root=footage_root)
    if not settings.api_keys:
        if host not in ("127.0.0.1", "localhost", "::1"):
            _fail(f"refusing to listen on {host} without API keys: set VSEARCH_API_KEYS")
        key = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"api_keys": [ApiKey(name="local-admin", key=key, role="admin")]})
        typer.echo(f"no API keys configured: this run's local admin key is {key}", err=True)
    typer.echo(f"vsearch on http://{host}:{port}/  (API docs at /docs, data in {settings.data_dir.resolve()})", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@app.command("eval")
def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="Market-1501 layout: query/ and bounding_box_test/.")],
    embedder: Annotated[list[str] | None, typer.Option(help="Embedder name (repeat to compare; default: configured).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
) -> None:
    """Re-identification accuracy (rank-1/5/10, mAP) of one or more embedders on a Market-layout folder."""
    try:
        from vsearch.embed import make_embedder
        from vsearch.evaluate import format_table, run_eval

        names = embedder or [Settings().embedder]
        rows = run_eval(folder, [make_embedder(Settings(embedder=n)) for n in names], json_out)
        typer.echo(format_table(rows))
        if json_out:
            typer.echo(f"wrote {json_out}")
    except VSearchError as e:
        _fail(str(e))


@app.command("eval-footage")
def eval_footage_cmd(
    sequences: Annotated[list[Path], typer.Argument(help="MOTChallenge sequence folders (img1/, gt/gt.txt).")],
    k: Annotated[int, typer.Option(help="Ranks to score.")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval through the real ingest and search path on footage with identity ground truth."""
    try:
        import tempfile

        from training.footage import evaluate_footage

        settings = _settings(data_dir or Path(tempfile.mkdtemp(prefix="vsearch-eval-")))
        result = evaluate_footage(sequences, _service(settings), k)
        typer.echo(json.dumps(result, indent=2))
        if json_out:
            json_out.write_text(json.dumps(result, indent=2) + "\n")
    except VSearchError as e:
        _fail(str(e))


@app.command("convert-pku")
def convert_pku_cmd(
    src: Annotated[Path, typer.Argument(help="PKU-Reid folder (<pid>/<cam>_<orientation>.png, any depth).")],
    out: Annotated[Path, typer.Argument(help="Where to write the Market-1501 layout.")],
) -> None:
    """Convert PKU-Reid crops into the Market-1501 layout (camera 01 queries camera 02)."""
    try:
        from training.datasets import convert_pku

        stats = convert_pku(src, out)
        typer.echo(f"wrote {stats['crops']} crops of {stats['identities']} identities to {out}")
    except VSearchError as e:
        _fail(str(e))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the demo's clips.")] = Path("demo_out"),
    top: Annotated[int, typer.Option(help="Clips to print.")] = 5,
    data_dir: DataDir = None,
) -> None:
    """Ingest the bundled sample footage, search with a sample visitor crop, print ranked clips, write clip files."""
    try:
        from vsearch.ingest import IngestItem
        from vsearch.search import SearchFilters

        settings = _settings(data_dir)
        svc = _service(settings)
        typer.echo(f"data dir: {settings.data_dir.resolve()}")
        typer.echo(f"ingesting {SAMPLE_VIDEO.name} as camera 'lobby' starting {DEMO_START}")
        reports = svc.ingest([IngestItem(SAMPLE_VIDEO, "lobby", parse_time(DEMO_START))], _progress_bar("ingest"))
        if _print_reports(reports):
            _fail("the sample video could not be ingested")
        typer.echo(f"\nsearching with {SAMPLE_QUERY.relative_to(PROJECT_ROOT)} (a crop of the third visitor)")
        result = svc.search(SAMPLE_QUERY.read_bytes(), SearchFilters(top_k=top))
        _print_result(result, False)
        out.mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(result.clips[:3], 1):
            dst = out / f"rank{i}_{c.id}.mp4"
            shutil.copyfile(svc.clip_file(c.id), dst)
            shutil.copyfile(svc.frame_file(c.best.id), dst.with_suffix(".jpg"))
            typer.echo(f"wrote {dst} and {dst.with_suffix('.jpg').name}")
    except VSearchError as e:
        _fail(str(e))


def main() -> None:
    try:
        app(standalone_mode=True)
    except VSearchError as e:  # a safety net: every command also reports its own errors in one line
        _fail(str(e))


if __name__ == "__main__":
    main()
