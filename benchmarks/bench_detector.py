"""Detector benchmark: ms/frame and frames/s per backend (PyTorch, ONNX Runtime, OpenVINO; CUDA when present),
input size and batch size, on real frames, with each backend's boxes checked against the PyTorch reference.

    python -m benchmarks.bench_detector --size S|M|L
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, print_table, time_calls, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.detect import PersonDetector
from vsearch.types import Detections
from vsearch.video import probe, sample_frames

SAMPLE = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
PETS = PROJECT_ROOT.parent / "shared" / "datasets" / "pets2009-s2l1-vtest" / "vtest.mp4"

GRID = {
    "S": {"imgsz": [320], "batch": [1], "frames": 4, "repeats": 1},
    "M": {"imgsz": [320, 480, 640], "batch": [1, 4], "frames": 16, "repeats": 2},
    "L": {"imgsz": [320, 480, 640, 960], "batch": [1, 4, 8], "frames": 32, "repeats": 3},
}


def real_frames(n: int) -> list[np.ndarray]:
    """n frames: half from the sample clip's visits (one large person), half from PETS (many small people)."""
    out = [f.image_bgr for f in sample_frames(probe(SAMPLE), "b", 0.0, 0.5) if 6 <= f.pts_s <= 135][: (n + 1) // 2]
    if PETS.exists():
        out += [f.image_bgr for f in sample_frames(probe(PETS), "b", 0.0, 0.25)][: n // 2]
    return out[:n]


def match_rate(ref: list[Detections], got: list[Detections], iou_min: float = 0.5) -> tuple[float, float]:
    """(share of reference boxes found at IoU >= iou_min, mean IoU of matched) over all frames, conf >= 0.35."""
    found = total = 0
    ious: list[float] = []
    for r, g in zip(ref, got):
        r, g = r[r.confidence >= 0.35], g[g.confidence >= 0.35]
        total += len(r)
        if not len(r) or not len(g):
            continue
        lt = np.maximum(r.xyxy[:, None, :2], g.xyxy[None, :, :2])
        rb = np.minimum(r.xyxy[:, None, 2:], g.xyxy[None, :, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
        iou = inter / (r.area[:, None] + g.area[None, :] - inter)
        best = iou.max(axis=1)
        found += int((best >= iou_min).sum())
        ious += best[best >= iou_min].tolist()
    return (found / total if total else 1.0), (float(np.mean(ious)) if ious else 0.0)


def run(size: str, backends: list[str]) -> dict[str, Any]:
    cfg = GRID[size]
    frames = real_frames(cfg["frames"])
    rows = []
    for imgsz in cfg["imgsz"]:
        ref_det = PersonDetector(Settings(detector_backend="torch", detector_imgsz=imgsz, min_person_height_px=0))
        reference = ref_det.detect(frames)
        for backend in backends:
            device = "cuda" if backend == "torch-cuda" else "cpu"
            det = PersonDetector(
                Settings(detector_backend=backend.split("-")[0], device=device, detector_imgsz=imgsz, min_person_height_px=0)  # type: ignore[arg-type]
            )
            got = det.detect(frames)  # also the warm-up
            recall, mean_iou = match_rate(reference, got)
            for batch in cfg["batch"]:
                chunks = [frames[i : i + batch] for i in range(0, len(frames), batch)]
                ms = time_calls(lambda d=det, cs=chunks: [d.detect(c) for c in cs], cfg["repeats"], warmup=0)
                per_frame = float(np.median(ms)) / len(frames)
                rows.append({
                    "backend": backend, "imgsz_px": imgsz, "batch": batch, "ms_per_frame": round(per_frame, 1),
                    "frames_per_s": round(1000 / per_frame, 1), "ref_boxes_found": round(recall, 3),
                    "mean_iou": round(mean_iou, 3),
                })  # fmt: skip
    return {"rows": rows, "frames": len(frames)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(GRID), default="M")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    import torch

    backends = ["torch", "onnx", "openvino"] + (["torch-cuda"] if torch.cuda.is_available() else [])
    result = run(args.size, backends)
    print_table(result["rows"], f"Detector (YOLO11n-pose), {result['frames']} real frames, size {args.size}")
    payload = {"benchmark": "detector", "size": args.size, "machine": machine_info(["ultralytics", "torch", "onnxruntime", "openvino"]), **result}
    write_json(f"bench_detector_{args.size}", payload, *( [args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
