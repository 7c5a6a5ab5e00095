"""Keyframe-only sampling where GOPs are short (issue 29 part 2): what it saves in decoding and costs in tracks.

A camera-encoded H.264 1080p25 file (bench_hd.make_camera_file: no B-frames, fixed GOP) is ingested twice: at the
default sampling rate (2 samples a second: the planned decoder decodes each GOP's keyframe and the frames up to
its last sampled one) and at one sample per GOP, which falls on the keyframes (frame indices multiples of the GOP,
asserted), so that only keyframes are decoded. Reported: decode CPU seconds per camera-second both ways (each
decode run three times, alternating, median), and of the tracks the default ingest stores, the share the
keyframe-only ingest still finds: a track counts as found when, at one of its instants that is a keyframe, a
keyframe-only track box overlaps its box at IoU >= 0.5 (a track seen only between keyframes is lost). Its track
boxes at keyframe instants found the same way are reported too, and the sightings stored by each.

    python -m benchmarks.bench_keyframes --size S|M
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_hd import (
    CACHE,
    FPS,
    PETS,
    SAMPLE,
    STREAMS,
    camera_file_main,
    cpu_wall,
    make_camera_file,
)
from benchmarks.common import warm
from training.footage import iou
from vsearch.config import Settings
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.video import probe, sample_frames

SIZES: dict[str, dict[str, Any]] = {
    "S": {"sources": [(PETS, 10.0)], "seconds": 6.0, "gops_s": (1.0,)},
    "M": {"sources": [(SAMPLE, 30.0), (PETS, 10.0)], "seconds": 20.0, "gops_s": (1.0, 2.0)},
}


def tracks_of(video: Path, sample_fps: float, work: Path) -> tuple[dict[int, np.ndarray], int, int]:
    """Ingest `video` at `sample_fps`: (track id -> rows of pts, x1, y1, x2, y2; sightings; frames sampled)."""
    svc = VSearch(Settings(data_dir=work))
    warm(svc, probe(video).resolution_wh)
    r = svc.ingest([IngestItem(video, "kf", 0.0, sample_fps)])[0]
    assert r.status == "ingested", r.error
    rows = np.array(svc.catalog._q("SELECT track_id, pts, x1, y1, x2, y2 FROM track_boxes"), np.float64).reshape(-1, 6)
    svc.close()
    return {int(t): rows[rows[:, 0] == t, 1:] for t in np.unique(rows[:, 0])}, r.sightings_added, r.frames_sampled


def still_found(ref: dict[int, np.ndarray], kf: dict[int, np.ndarray], gop_s: float) -> tuple[float, float, int]:
    """(share of ref's tracks found at a keyframe instant, share of ref's boxes at keyframe instants found, ref
    tracks seen at no keyframe instant)."""
    kf_boxes = np.concatenate(list(kf.values())) if kf else np.zeros((0, 5))
    found_tracks, boxes, found_boxes, unseen = 0, 0, 0, 0
    for rows in ref.values():
        at_key = rows[np.abs(rows[:, 0] / gop_s - np.round(rows[:, 0] / gop_s)) < 1e-3]
        unseen += not len(at_key)
        hit = False
        for pts, *xyxy in at_key:
            there = kf_boxes[np.abs(kf_boxes[:, 0] - pts) < 1e-3, 1:]
            ok = bool(len(there)) and float(iou(np.array([xyxy]), there).max()) >= 0.5
            boxes += 1
            found_boxes += ok
            hit |= ok
        found_tracks += hit
    return found_tracks / max(1, len(ref)), found_boxes / max(1, boxes), unseen


def decode_cpu_s(video: Path, sample_fps: float) -> tuple[float, list[int]]:
    info = probe(video)
    frames, cpu, _ = cpu_wall(lambda: [f.index for f in sample_frames(info, "kf", 0.0, sample_fps)])
    return cpu, frames


def run(size: str, sample_fps: float) -> dict[str, Any]:
    cfg = SIZES[size]
    name, size_wh, bitrate = STREAMS[0]  # 1080p25
    rows = []
    work = Path(tempfile.mkdtemp(prefix="vsearch-bench-kf-"))
    try:
        for src, start_s in cfg["sources"]:
            if not src.exists():
                continue
            for gop_s in cfg["gops_s"]:
                tag = f"{src.stem}-{start_s:g}s-{cfg['seconds']:g}s-{name}-{bitrate // 1000}k-gop{gop_s:g}s"
                video = make_camera_file(src, start_s, cfg["seconds"], size_wh, bitrate, gop_s, CACHE / f"{tag}.mp4")
                key_fps = 1.0 / gop_s
                cpu: dict[float, list[float]] = {sample_fps: [], key_fps: []}
                for _ in range(3):
                    for fps in cpu:
                        c, idx = decode_cpu_s(video, fps)
                        cpu[fps].append(c)
                        if fps == key_fps:
                            assert all(i % round(gop_s * FPS) == 0 for i in idx), "keyframe-only sampling left the keyframes"
                ref, ref_sightings, ref_frames = tracks_of(video, sample_fps, work / f"{tag}-ref")
                kf, kf_sightings, kf_frames = tracks_of(video, key_fps, work / f"{tag}-kf")
                tracks, boxes, unseen = still_found(ref, kf, gop_s)
                vs = probe(video).duration_s
                dec, dec_kf = float(np.median(cpu[sample_fps])), float(np.median(cpu[key_fps]))
                rows.append({
                    "source": src.stem[:12], "gop_s": gop_s, "video_s": round(vs, 1),
                    "frames_sampled": ref_frames, "frames_keyframes_only": kf_frames,
                    "decode_core_s_per_cam_s": round(dec / vs, 4), "decode_keyframes_core_s_per_cam_s": round(dec_kf / vs, 4),
                    "decode_saved": round(1 - dec_kf / dec, 3),
                    "tracks": len(ref), "tracks_still_found": round(tracks, 3), "tracks_at_no_keyframe": unseen,
                    "boxes_at_keyframes_still_found": round(boxes, 3),
                    "sightings": ref_sightings, "sightings_keyframes_only": kf_sightings,
                })  # fmt: skip
        return {"rows": rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    title = "Keyframe-only sampling, 1080p25, size {size} (default {fps:g} samples/s): decode saved, tracks still found"
    return camera_file_main("keyframes", __doc__, list(SIZES), run, title, argv)


if __name__ == "__main__":
    main()
