"""`vsearch ingest` and `vsearch watch`: footage in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsearch.cli.common import (
    EXIT_BUSY,
    DataDir,
    fail,
    finite,
    print_reports,
    progress_bar,
    service,
    settings,
)
from vsearch.types import parse_time, ts_to_iso

app = typer.Typer()


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Video files, frame folders, or a folder of camera folders.")],
    camera: Annotated[str | None, typer.Option(help="Camera id (default: the parent folder's name).")] = None,
    start: Annotated[str | None, typer.Option(help="Absolute start time of the first file, ISO 8601 (UTC if no zone).")] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Frames sampled per second of video.", callback=finite)] = None,
    backend: Annotated[str | None, typer.Option(help="Detector backend: openvino, onnx or torch.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (torch backend).")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size in px (default: follows the footage).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run the files on a Ray cluster (RAY_ADDRESS, or a local one).")] = False,
    workers: Annotated[int | None, typer.Option(help="Ray workers (default: one per CPU of the cluster).", min=1)] = None,
    frame_interval_s: Annotated[float | None, typer.Option(help="Frame folders are stills taken this many seconds apart (not video): every still is ingested and, past the tracker's buffer, nobody is tracked from one still to the next.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest footage: detect, track and embed every person, and store the sightings. Safe to re-run.

    A video file, or a folder holding only images (frames), given as a path is ingested as given. Other folders
    are scanned: video files in them are ingested (camera: the folder's name), and so are subfolders of frames or
    videos (camera: the subfolder's name). A subfolder of stills counts as a camera's frames only when it holds
    at least two images of one size; query crops, single photos and files that are not videos are skipped, each
    named on stderr.

    Example: vsearch ingest /footage --start 2026-03-01T14:00:00"""
    s = settings(data_dir, sample_fps=sample_fps, detector_backend=backend, device=device, detector_imgsz=imgsz)
    from vsearch.ingest import plan_ingest

    def skipped(path: Path, why: str) -> None:
        typer.echo(f"skipped {path}: {why}", err=True)

    items = plan_ingest(paths, camera, parse_time(start) if start else None, frame_interval_s, skipped)
    svc = service(s)
    reports = []
    if ray:
        from vsearch.cluster import ingest_on_ray

        typer.echo(f"ingesting {len(items)} sources on Ray", err=True)

        def done(r, n: int, total: int) -> None:  # type: ignore[no-untyped-def]
            typer.echo(f"[{n}/{total}] ", nl=False)
            print_reports([r])

        reports = ingest_on_ray(s, items, workers, on_report=done)
    else:
        for it in items:
            typer.echo(f"ingesting {it.path} as camera {it.camera_id} from {ts_to_iso(it.start_ts_s)}", err=True)
            reports += svc.ingest([it], progress_bar(it.path.name))
            print_reports(reports[-1:])
    typer.echo(f"index now holds {svc.store.ntotal} sightings")
    svc.close()
    if failed := sum(r.status == "failed" for r in reports):
        fail(f"{failed} of {len(reports)} sources failed (see above); the others were ingested", 1)
    if busy := sum(r.status == "busy" for r in reports):
        fail(f"{busy} of {len(reports)} sources are being ingested by another process: run again later", EXIT_BUSY)


@app.command()
def watch(
    url: Annotated[str, typer.Argument(help="Live source: rtsp://..., http://..., a device index, or a file.")],
    camera: Annotated[str, typer.Option(help="Camera id.")],
    segment_s: Annotated[float, typer.Option(help="Seconds per recorded segment.", callback=finite)] = 60.0,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: until the stream ends).", callback=finite)] = None,
    detect_url: Annotated[str | None, typer.Option(help="The same camera's low-resolution substream: people are detected on it, cropped and recorded from URL.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Record a live stream in segments while making its sightings as it records: a person is matched against the
    watchlists within seconds of appearing; one line per segment once its last frame is processed (Ctrl-C stops
    cleanly).

    A camera that drops out is reconnected (VSEARCH_STREAM_RETRIES, VSEARCH_STREAM_BACKOFF_S) and the gap
    reported; one that cannot be reached within that budget ends the command with an error.

    With --detect-url (the camera's substream, e.g. 640x360), detection and tracking run on the substream's
    frames, each paired with the main stream's frame of the same instant (within half a frame interval; 0.1 s at
    least), from which the boxes are stored, the people cropped and the clips cut. A substream frame with no main
    frame that close is not detected (logged); the substream is reconnected like the main stream, and one lost
    for good, or with another aspect ratio than URL's, ends the command with an error.

    Example: vsearch watch rtsp://camera-7/main --detect-url rtsp://camera-7/sub --camera cam-07"""
    import signal
    import threading

    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        typer.echo("stopping: finishing the current segment (Ctrl-C again to abort)", err=True)
        stop.set()

    try:
        svc = service(settings(data_dir))
        typer.echo(f"recording {url} as camera {camera} in {segment_s:.0f} s segments (Ctrl-C to stop)", err=True)
        if detect_url is not None:
            typer.echo(f"detecting on {detect_url}", err=True)
        previous = signal.signal(signal.SIGINT, on_sigint)
        schedule = svc.retention_schedule()  # expiry every VSEARCH_RETENTION_INTERVAL_S while retention is set
        try:
            result = svc.watch(url, camera, segment_s, duration_s, stop, lambda r: print_reports([r]), detect_url)
        finally:
            schedule.stop()
            signal.signal(signal.SIGINT, previous)
        for g in result.gaps:
            typer.echo(f"gap: no video from {ts_to_iso(g.from_ts_s)} to {ts_to_iso(g.to_ts_s)} ({g.duration_s:.1f} s)")
        for g in result.detect_gaps:
            typer.echo(f"detect gap: no detection from {ts_to_iso(g.from_ts_s)} to {ts_to_iso(g.to_ts_s)} ({g.duration_s:.1f} s)")
        if detect_url is not None:
            typer.echo(f"detect stream: {result.detect_paired} frames detected, {result.detect_dropped} dropped"
                       " (no main-stream frame of the same instant)")  # fmt: skip
        typer.echo(f"{len(result.reports)} segments ingested; index now holds {svc.store.ntotal} sightings")
    except KeyboardInterrupt:
        fail("aborted: the segment being recorded is lost; recorded segments are ingested by a re-run of ingest", 130)
