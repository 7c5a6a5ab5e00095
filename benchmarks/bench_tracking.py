"""Tracking at the ingest's sampling rate (2 frames a second), where a walker moves about a body width between
samples, against the same detections tracked at every frame.

Footage without identity labels: PETS 2009 S2.L1 (480x360, people 45-75 px tall crossing a street) and the
bundled sample clip (six visitors, 768x432). Every frame is detected once (the real detector, whole frames); then
`SegmentTracker` runs on the detections of the sampled frames with each box-margin setting
(`Settings.track_box_margin_per_s`), and once on every frame with the default settings as the reference. Reported:

- tracked: of the detections that may start a track (score >= the footage's start score), the share stored as
  a track box (what an ingest keeps and a search can return);
- tracks: how many tracks the sampled run made;
- purity: of a sampled track's boxes, the share that belong to the reference track most of them belong to (an
  identity switch inside a track lowers it; the reference, at 10 fps, has its own errors, so 1.0 is not reachable);
- pieces: sampled tracks per reference track (fragmentation).

Correctness first: the sampled runs must store only boxes the detector gave.

    python -m benchmarks.bench_tracking --size S|M
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.detect import PersonDetector
from vsearch.track import SegmentTracker, TrackSegment
from vsearch.types import Detections, Frame
from vsearch.video import VideoInfo, probe, sample_bucket, sample_frames

FOOTAGE = {
    "PETS 2009 S2.L1": PROJECT_ROOT.parent / "shared" / "datasets" / "pets2009-s2l1-vtest" / "vtest.mp4",
    "sample clip": PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4",
}
SECONDS = {"S": 20.0, "M": None}  # of each footage (None: all of it)
MARGINS = (0.0, 0.5, 1.0, 1.4, 2.0)  # track_box_margin_per_s; 1.0 is the default (0.5 of a box at 2 samples/s)
SAMPLE_FPS = 2.0

Detected = list[tuple[Frame, Detections]]


def detect_all(info: VideoInfo, seconds: float | None) -> Detected:
    """Every frame (up to `seconds`) through the detector; frames keep a blank image (the tracker crops it)."""
    det = PersonDetector(Settings())
    out = []
    blank = np.zeros((info.resolution_wh[1], info.resolution_wh[0], 3), np.uint8)
    for f in sample_frames(info, "bench", 0.0, info.fps):
        if seconds is not None and f.pts_s >= seconds:
            break
        d = det.detect([f.image_bgr])[0]
        out.append((Frame(f.camera_id, f.index, f.pts_s, f.ts_s, blank), d))
    return out


def sampled(frames: Detected, rate: float) -> Detected:
    """The first frame of each 1/rate-second bucket, as the ingest samples (vsearch.video.sample_bucket)."""
    out, last = [], -1
    for frame, dets in frames:
        bucket = sample_bucket(frame.pts_s, rate)
        if bucket != last:
            out.append((frame, dets))
            last = bucket
    return out


def track(frames: Detected, settings: Settings, rate: float) -> list[TrackSegment]:
    """The segments of one tracking run over the frames sampled at `rate` a second."""
    tracker = SegmentTracker(settings.model_copy(update={"sample_fps": rate}))
    segs = []
    for frame, dets in sampled(frames, rate):
        segs += tracker.update(frame, dets)[1]
    return segs + tracker.flush()


def score(frames: Detected, segs: list[TrackSegment], ref: list[TrackSegment], conf: float) -> dict[str, Any]:
    detected = {round(f.pts_s, 3): d for f, d in frames}
    ref_id = {(round(b.pts_s, 3), b.xyxy): s.track_id for s in ref for b in s.boxes}
    for s in segs:  # correctness: every stored box is one the detector gave at that instant
        for b in s.boxes:
            d = detected[round(b.pts_s, 3)]
            assert np.any(np.all(np.abs(d.xyxy - np.array(b.xyxy, np.float32)) < 1e-3, axis=1)), (s.track_id, b)
    starters = sum(int((d.confidence >= conf).sum()) for _, d in sampled(frames, SAMPLE_FPS))
    tracked = sum(1 for s in segs for b in s.boxes if b.confidence >= conf)
    members: dict[int, list[int]] = defaultdict(list)
    for s in segs:
        members[s.track_id] += [ref_id[k] for b in s.boxes if (k := (round(b.pts_s, 3), b.xyxy)) in ref_id]
    pure = sum(Counter(v).most_common(1)[0][1] for v in members.values() if v)
    pieces: dict[int, set[int]] = defaultdict(set)
    for tid, v in members.items():
        for r in v:
            pieces[r].add(tid)
    return {"start_detections": starters, "tracked": round(tracked / max(1, starters), 3),
            "tracks": len({s.track_id for s in segs}),
            "purity": round(pure / max(1, sum(len(v) for v in members.values())), 3),
            "pieces_per_reference_track": round(float(np.mean([len(p) for p in pieces.values()])), 2)}  # fmt: skip


def run(size: str) -> dict[str, Any]:
    rows = []
    for name, path in FOOTAGE.items():
        info = probe(path)
        frames = detect_all(info, SECONDS[size])
        conf = PersonDetector(Settings()).conf_for(info.resolution_wh)
        base = Settings().model_copy(update={"detector_conf": conf})
        ref = track(frames, base, info.fps)  # every frame
        for margin in MARGINS:
            segs = track(frames, base.model_copy(update={"track_box_margin_per_s": margin}), SAMPLE_FPS)
            rows.append({"footage": name, "margin_per_s": margin, "default": margin == Settings().track_box_margin_per_s,
                         **score(frames, segs, ref, conf)})  # fmt: skip
    return {"rows": rows, "sample_fps": SAMPLE_FPS}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SECONDS), default="M")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run(args.size)
    print_table(result["rows"], f"Tracking at {SAMPLE_FPS:g} samples a second against every-frame tracking")
    payload = {"benchmark": "tracking", "size": args.size, "machine": machine_info(["ultralytics", "openvino"]), **result}
    write_json(f"bench_tracking_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
