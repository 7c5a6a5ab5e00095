"""HD cameras (issue 29): core-seconds per camera-second for decode, detection, tracking, embedding and the whole
ingest of H.264 1080p25, 720p25 and 640x360 (a camera's substream) files, per GOP length.

The footage is made at run time into benchmarks/cache/ (never committed) from the footage we have: the sample
clip (768x432, 10 fps) and PETS 2009 S2L1 (480x360, 10 fps), each excerpt upscaled with cv2.INTER_LINEAR to the
target size, every source frame repeated to reach 25 fps (frame k of the output shows the source frame at
k/25 s), plus seeded Gaussian sensor noise (sigma 2 grey levels, a fresh pattern each frame, so that no frame is a
free copy of the one before as a real sensor's never is), and encoded with PyAV's libx264 as a camera's encoder
does: Main profile, no B-frames, a fixed GOP (keyint = min-keyint = GOP, no scene-cut keyframes), rate-limited
at a typical camera bitrate (1080p 4 Mbit/s, 720p 2 Mbit/s, 640x360 0.5 Mbit/s; maxrate = bitrate, buffer 2 s).

Core-seconds are process CPU time (every thread: decoder threads, OpenVINO's, ONNX Runtime's), per second of
video; each stage is run alone over the same file: decode (every frame decoded as before this issue, OpenCV
grab, only sampled frames converted; then vsearch's planned decode), detection (the ingest's DetectionSchedule
over the sampled frames), tracking, embedding (the crops the tracker keeps), and the whole ingest
(VSearch.ingest, models warmed first). Wall seconds are recorded beside them: on a loaded machine the CPU time
is the steadier figure.

    python -m benchmarks.bench_hd --size S|M
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import machine_info, print_table, warm, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.ingest import IngestItem, _Timed
from vsearch.schedule import DetectionSchedule
from vsearch.service import VSearch
from vsearch.track import SegmentTracker
from vsearch.video import probe, sample_bucket, sample_frames

CACHE = PROJECT_ROOT / "benchmarks" / "cache"
SAMPLE = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
PETS = PROJECT_ROOT.parent / "shared" / "datasets" / "pets2009-s2l1-vtest" / "vtest.mp4"
# (name, size, bitrate bit/s) of the streams a city camera offers
STREAMS = (("1080p25", (1920, 1080), 4_000_000), ("720p25", (1280, 720), 2_000_000), ("360p25", (640, 360), 500_000))
FPS = 25
SIZES: dict[str, dict[str, Any]] = {
    "S": {"sources": [(SAMPLE, 30.0)], "seconds": 4.0, "gops_s": (2.0,), "streams": ("1080p25",)},
    "M": {"sources": [(SAMPLE, 30.0), (PETS, 10.0)], "seconds": 10.0, "gops_s": (1.0, 2.0),
          "streams": ("1080p25", "720p25", "360p25")},
}  # fmt: skip


def make_camera_file(src: Path, start_s: float, seconds: float, size_wh: tuple[int, int], bitrate: int, gop_s: float,
                     out: Path, seed: int = 0) -> Path:  # fmt: skip
    """`seconds` of `src` from `start_s`, upscaled to `size_wh` at 25 fps with sensor noise, encoded as an IP
    camera does (module docstring). Made once per parameter set into the cache."""
    import av

    if out.exists():
        return out
    info = probe(src)
    frames = {f.index: f.image_bgr for f in sample_frames(info, "x", 0.0, info.fps) if start_s <= f.pts_s < start_s + seconds + 1}
    first = min(frames)
    rng = np.random.default_rng(seed)
    tmp = out.with_suffix(".part.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), mode="w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height = size_wh
        s.pix_fmt = "yuv420p"
        s.bit_rate = bitrate
        gop = round(gop_s * FPS)
        s.options = {"profile": "main", "preset": "veryfast", "bf": "0", "g": str(gop), "keyint_min": str(gop),
                     "sc_threshold": "0", "maxrate": str(bitrate), "bufsize": str(2 * bitrate)}  # fmt: skip
        for k in range(round(seconds * FPS)):
            img = frames[min(max(frames), first + int(k / FPS * info.fps))]
            big = cv2.resize(img, size_wh, interpolation=cv2.INTER_LINEAR).astype(np.int16)
            noisy = np.clip(big + rng.normal(0, 2, big.shape[:2])[:, :, None].astype(np.int16), 0, 255).astype(np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(noisy, format="bgr24")))
        c.mux(s.encode(None))
    tmp.rename(out)
    return out


def cpu_wall(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(fn's result, process CPU seconds, wall seconds)."""
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def decode_every_frame(path: Path, sample_fps: float) -> Iterator[tuple[int, np.ndarray]]:
    """Decoding as before issue 29: OpenCV decodes every frame, converts only the sampled ones to BGR."""
    fps = probe(path).fps
    cap = cv2.VideoCapture(str(path))
    i, last = 0, -1
    while cap.grab():
        b = sample_bucket(i / fps, sample_fps)
        if b != last:
            last = b
            yield i, cap.retrieve()[1]
        i += 1
    cap.release()


def measure(video: Path, sample_fps: float, work: Path) -> dict[str, Any]:
    """Per-stage and whole-ingest CPU and wall seconds for one file (each stage alone, one after the other)."""
    settings = Settings(data_dir=work / "data")
    svc = VSearch(settings)
    info = probe(video)
    warm(svc, info.resolution_wh)
    out: dict[str, Any] = {}
    before, out["decode_every_frame_cpu_s"], out["decode_every_frame_wall_s"] = cpu_wall(
        lambda: [i for i, _ in decode_every_frame(video, sample_fps)])
    frames, out["decode_cpu_s"], out["decode_wall_s"] = cpu_wall(lambda: list(sample_frames(info, "c", 0.0, sample_fps)))
    assert [f.index for f in frames] == before, "planned decode sampled other frames than decoding every frame"
    schedule = DetectionSchedule(svc.detector, settings, sample_fps)
    timer = _Timed(defaultdict(float))
    b = settings.detector_batch
    dets, out["detect_cpu_s"], out["detect_wall_s"] = cpu_wall(
        lambda: [d for k in range(0, len(frames), b) for d in schedule.detect(frames[k : k + b], timer)])
    tracker = SegmentTracker(settings, 1, None, sample_fps=sample_fps, conf=svc.detector.conf_for(info.resolution_wh))
    segs, out["track_cpu_s"], out["track_wall_s"] = cpu_wall(
        lambda: [g for f, d in zip(frames, dets) for g in tracker.update(f, d)[1]] + tracker.flush())
    crops = [c.crop_rgb for g in segs for c in g.crops]
    _, out["embed_cpu_s"], out["embed_wall_s"] = cpu_wall(lambda: svc.embedder.embed(crops))
    frames.clear()  # 1080p frames: let them go before the ingest decodes its own
    report, out["ingest_cpu_s"], out["ingest_wall_s"] = cpu_wall(lambda: svc.ingest([IngestItem(video, "bench", 0.0, sample_fps)])[0])
    assert report.status == "ingested", report.error
    svc.close()
    out.update(video_s=info.duration_s, frames_sampled=report.frames_sampled, crops_embedded=len(crops),
               sightings=report.sightings_added)  # fmt: skip
    return out


def run(size: str, sample_fps: float) -> dict[str, Any]:
    cfg = SIZES[size]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="vsearch-bench-hd-"))
    try:
        for src, start_s in cfg["sources"]:
            if not src.exists():
                continue
            for name, size_wh, bitrate in (s for s in STREAMS if s[0] in cfg["streams"]):
                for gop_s in cfg["gops_s"]:
                    tag = f"{src.stem}-{start_s:g}s-{cfg['seconds']:g}s-{name}-{bitrate // 1000}k-gop{gop_s:g}s"
                    video = make_camera_file(src, start_s, cfg["seconds"], size_wh, bitrate, gop_s, CACHE / f"{tag}.mp4")
                    m = measure(video, sample_fps, work / tag)
                    vs = m["video_s"]
                    row: dict[str, Any] = {"source": src.stem[:12], "stream": name, "kbit_s": bitrate // 1000, "gop_s": gop_s,
                                           "video_s": round(vs, 1), "frames_sampled": m["frames_sampled"]}  # fmt: skip
                    for stage in ("decode_every_frame", "decode", "detect", "track", "embed", "ingest"):
                        row[f"{stage}_core_s_per_cam_s"] = round(m[f"{stage}_cpu_s"] / vs, 4)
                    row["ingest_wall_s_per_cam_s"] = round(m["ingest_wall_s"] / vs, 4)
                    row["ingest_x_decode_every_frame"] = round(m["ingest_cpu_s"] / m["decode_every_frame_cpu_s"], 2)
                    row["crops_embedded"] = m["crops_embedded"]
                    row["sightings"] = m["sightings"]
                    rows.append(row)
        return {"rows": rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def camera_file_main(bench: str, doc: str | None, sizes: list[str], run_fn: Callable[[str, float], dict[str, Any]],
                     title: str, argv: list[str] | None) -> dict[str, Any]:  # fmt: skip
    """The command line of a benchmark over camera files made by make_camera_file: --size, --sample-fps, --out;
    runs `run_fn(size, sample_fps)`, prints its rows under `title` and writes the JSON with the machine."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sizes, default="M")
    ap.add_argument("--sample-fps", type=float, default=Settings().sample_fps)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run_fn(args.size, args.sample_fps)
    print_table(result["rows"], title.format(size=args.size, fps=args.sample_fps))
    payload = {"benchmark": bench, "size": args.size, "sample_fps": args.sample_fps,
               "footage": "made by bench_hd.make_camera_file (see its module docstring)",
               "machine": machine_info(["av", "opencv-python-headless", "openvino", "onnxruntime"]), **result}  # fmt: skip
    write_json(f"bench_{bench}_{args.size}", payload, *([args.out] if args.out else []))
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    title = "HD cameras, size {size}, {fps:g} samples/s: core-seconds per camera-second"
    return camera_file_main("hd", __doc__, list(SIZES), run, title, argv)


if __name__ == "__main__":
    main()
