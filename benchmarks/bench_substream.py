"""Live HD cameras with a substream (issue 29): core-seconds per camera-second of `vsearch watch` on a 1080p25 main
stream alone, and with a 640x360 substream to detect on (`--detect-url`), served live over RTSP.

The camera is Debian's GStreamer RTSP server (tests/rtsp_server.py, run with /usr/bin/python3) serving two files
made from the same stretch of the sample clip by benchmarks.bench_hd.make_camera_file (upscaled, 25 fps, sensor
noise, H.264 Main without B-frames, 2 s GOPs, 4 Mbit/s for 1080p and 0.5 Mbit/s for 640x360), at their own pace;
its CPU is the camera's and is not counted. Each run is VSearch.watch in this process (models loaded and warmed
first), from its call until its last sighting is stored: core-seconds are this process's CPU time (every thread:
decoding, the recording's H.264 encoder, detection, embedding), divided by the seconds of video watched. Beside
the two watches, the same main stream recorded alone (decode + re-encode into segment files, no detection) and
the substream decoded alone, so the parts can be told apart. Wall seconds are recorded too: on a loaded machine
the CPU time is the steadier figure.

    python -m benchmarks.bench_substream --size S|M
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_hd import CACHE, SAMPLE, STREAMS, cpu_wall, make_camera_file
from benchmarks.common import machine_info, print_table, warm, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.record import RetryPolicy, record_stream, stream_frames
from vsearch.service import VSearch

SERVER = PROJECT_ROOT / "tests" / "rtsp_server.py"
DEBIAN_PYTHON = "/usr/bin/python3"
SIZES: dict[str, dict[str, Any]] = {"S": {"seconds": 8.0}, "M": {"seconds": 20.0}}
START_S = 6.0  # the clip from its first visitor on: someone is in view most of the time


class Camera:
    """The RTSP server serving the main stream at /cam and the substream at /sub (one process per run, so that
    each run sees both files from their start)."""

    def __init__(self, main: Path, sub: Path, port: int = 18654) -> None:
        self.proc = subprocess.Popen([DEBIAN_PYTHON, str(SERVER), str(main), str(port), f"sub={sub}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"RTSP server did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.main, self.sub = f"rtsp://127.0.0.1:{port}/cam", f"rtsp://127.0.0.1:{port}/sub"

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
        time.sleep(0.5)  # the port is free again


def read_stream(url: str, seconds: float, decode: bool) -> int:
    """Read `seconds` of a stream: its packets only, or every frame decoded to BGR as the recording does."""
    import av

    if decode:
        n, t0 = 0, None
        for item in stream_frames(url, RetryPolicy(retries=2, backoff_s=0.5)):
            if isinstance(item, tuple):
                t0 = item[0] if t0 is None else t0
                n += 1
                if item[0] - t0 >= seconds:
                    break
        return n
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as c:
        stream = c.streams.video[0]
        n, t0 = 0, None
        for p in c.demux(stream):
            if p.pts is not None:
                t = float(p.pts * p.time_base)
                t0 = t if t0 is None else t0
                if t - t0 >= seconds:
                    break
            n += 1
        return n


def run(size: str, sample_fps: float) -> dict[str, Any]:
    seconds = SIZES[size]["seconds"]
    files = {}
    for name, size_wh, bitrate in STREAMS:
        if name in ("1080p25", "360p25"):
            # longer than what is watched: the camera must not end (and restart) its stream inside a run
            tag = f"{SAMPLE.stem}-{START_S:g}s-{seconds + 6:g}s-{name}-{bitrate // 1000}k-gop2s"
            files[name] = make_camera_file(SAMPLE, START_S, seconds + 6, size_wh, bitrate, 2.0, CACHE / f"{tag}.mp4")
    work = Path(tempfile.mkdtemp(prefix="vsearch-bench-substream-"))
    rows = []
    try:
        settings = Settings(data_dir=work / "data", sample_fps=sample_fps)
        svc = VSearch(settings)
        warm(svc, (1920, 1080))
        warm(svc, (640, 360))
        retry = RetryPolicy(retries=2, backoff_s=0.5)

        def row(name: str, cpu_s: float, wall_s: float, sightings: int | None = None, **extra: Any) -> None:
            rows.append({"run": name, "video_s": seconds, "core_s_per_cam_s": round(cpu_s / seconds, 4),
                         "wall_s_per_cam_s": round(wall_s / seconds, 3), "sightings": sightings, **extra})  # fmt: skip
            print(rows[-1], flush=True)

        for name, detect in (("watch 1080p main alone", False), ("watch 1080p + 640x360 --detect-url", True)):
            before = svc.catalog.count_sightings()
            with Camera(files["1080p25"], files["360p25"]) as cam:
                camera, sub = f"cam-{'sub' if detect else 'main'}", cam.sub if detect else None
                result, cpu, wall = cpu_wall(lambda c=camera, d=sub: svc.watch(cam.main, c, 60.0, seconds, detect_url=d))  # type: ignore[misc]
            stages: dict[str, float] = {}
            for r in result.reports:
                for k, v in r.stage_s.items():
                    stages[k] = stages.get(k, 0.0) + v
            row(name, cpu, wall, svc.catalog.count_sightings() - before,
                frames_detected=sum(r.frames_sampled for r in result.reports), detect_dropped=result.detect_dropped,
                worker_wall_s={k: round(v, 2) for k, v in sorted(stages.items())})  # fmt: skip
        with Camera(files["1080p25"], files["360p25"]) as cam:
            _, cpu, wall = cpu_wall(lambda: list(record_stream(cam.main, work / "rec", 60.0, seconds, retry=retry)))
            row("record 1080p alone (decode + encode)", cpu, wall)
        for name, stream in (("demux 1080p main alone (no decoding)", "demux"), ("decode 1080p main alone", "cam"),
                             ("decode 640x360 substream alone", "sub")):  # fmt: skip
            with Camera(files["1080p25"], files["360p25"]) as cam:
                url = cam.sub if stream == "sub" else cam.main
                _, cpu, wall = cpu_wall(lambda u=url, d=stream != "demux": read_stream(u, seconds, d))  # type: ignore[misc]
            row(name, cpu, wall)
        svc.close()
        return {"rows": rows, "files": {k: str(v.relative_to(PROJECT_ROOT)) for k, v in files.items()}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="M")
    ap.add_argument("--sample-fps", type=float, default=Settings().sample_fps)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run(args.size, args.sample_fps)
    print_table(result["rows"], f"live 1080p25 camera, size {args.size}, {args.sample_fps:g} samples/s: core-seconds per camera-second")
    payload = {"benchmark": "substream", "size": args.size, "sample_fps": args.sample_fps, "start_s": START_S,
               "footage": "made by benchmarks.bench_hd.make_camera_file (see its module docstring)",
               "machine": machine_info(["av", "opencv-python-headless", "openvino", "onnxruntime"]), **result}  # fmt: skip
    write_json(f"bench_substream_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
