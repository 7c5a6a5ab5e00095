"""Recall by person height through the real ingest path (issue 13 item 5, "small people").

Each MOT17 sequence (a frame folder) goes through `VSearch.ingest`; the stored track boxes are scored against
MOT17's ground truth at the sampled instants: a ground-truth person counts as found when a track box of that
frame overlaps it with IoU >= 0.5 (one box per person, greedy by IoU). Ground truth: pedestrians (`class == 1`,
`consider == 1`) at least 25 % visible (less visible people have boxes that no detector box can overlap at 0.5).
Two footages: the frames as they are (1080p, plus MOT17-05 at 640x480) and SD: every frame downscaled to 384 px
wide (written to a temporary folder with its seqinfo.ini) with the boxes scaled alike. The sequences hold 4-8
frames each, so every frame is sampled (at 2 frames/s only the first frame of each would be).

Reported per height bucket (px, in the scored footage): person-instants found, and tracks seen at least once
(a ground-truth identity in the bucket of its median height, found in at least one sampled frame); also the
wall time per sampled frame, for the cost of each setting.

    python -m benchmarks.bench_recall --size S|M
"""

from __future__ import annotations

import configparser
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import machine_info, print_table, size_and_variants, warm, write_json
from training.footage import iou
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.video import probe

MOT17 = PROJECT_ROOT.parent / "shared" / "datasets" / "mot17-mini" / "train"
BUCKETS = ((40, 60), (60, 80), (80, 100), (100, 200), (200, 10_000))
SD_WIDTH = 384
SEQS = {
    "S": ["MOT17-09-FRCNN"],
    "M": ["MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-09-FRCNN", "MOT17-10-FRCNN", "MOT17-11-FRCNN",
          "MOT17-13-FRCNN"],
}  # fmt: skip
# settings compared (Settings fields); the first is today's default
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "2026-12-06 default (SD at 960, SD conf 0.35)": {"detector_sd_imgsz": 960, "detector_sd_conf": 0.35},
    "before (square, SD at 640, min height 48)": {"detector_rect": False, "detector_sd_imgsz": 640,
                                                  "detector_sd_conf": 0.35, "min_person_height_px": 48},
    "no rect margin": {"detector_margin_px": 0},
    "SD at 640": {"detector_sd_imgsz": 640},
    "SD conf 0.35": {"detector_sd_conf": 0.35},
    "SD at 960": {"detector_sd_imgsz": 960},
    "regions off": {"detector_regions": False},
    "conf 0.25 (HD)": {"detector_conf": 0.25},
    "conf 0.2 (HD)": {"detector_conf": 0.2},
    "HD at its own scale (max 1920)": {"detector_max_imgsz": 1920},
}  # fmt: skip


def ground_truth(seq: Path, scale: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame (1-based) -> (xyxy boxes, identities) of visible pedestrians, scaled by `scale`."""
    rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = rows[(rows[:, 6] == 1) & (rows[:, 7] == 1) & (rows[:, 8] >= 0.25)]
    out = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1) * scale
        out[int(f)] = (xyxy, r[:, 1].astype(int))
    return out


def every_box(seq: Path, scale: float) -> dict[int, np.ndarray]:
    """frame (1-based) -> xyxy of every annotated object (any class, any visibility), scaled by `scale`: a track
    box overlapping none of them is a false box."""
    rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    return {
        int(f): np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1) * scale
        for f in np.unique(rows[:, 0]).astype(int)
        for r in [rows[rows[:, 0] == f]]
    }


def sd_copy(seq: Path, out: Path) -> tuple[Path, float]:
    """The sequence's frames downscaled to SD_WIDTH px wide, in out/<seq>/img1 with a seqinfo.ini; (folder, scale)."""
    frames = sorted((seq / "img1").glob("*.jpg"))
    w = cv2.imread(str(frames[0])).shape[1]
    scale = SD_WIDTH / w
    img_dir = out / seq.name / "img1"
    img_dir.mkdir(parents=True)
    for f in frames:
        img = cv2.imread(str(f))
        small = cv2.resize(img, (SD_WIDTH, round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(img_dir / f.name), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cp = configparser.ConfigParser()
    cp.read(seq / "seqinfo.ini")
    cp.set("Sequence", "imWidth", str(SD_WIDTH))
    cp.set("Sequence", "imHeight", str(round(int(cp.get("Sequence", "imHeight")) * scale)))
    with open(out / seq.name / "seqinfo.ini", "w") as fh:
        cp.write(fh)
    return img_dir, scale


def matched(gt: np.ndarray, boxes: np.ndarray, iou_min: float = 0.5) -> np.ndarray:
    """Which ground-truth boxes a track box overlaps at IoU >= iou_min, one box per person (greedy by IoU)."""
    found = np.zeros(len(gt), bool)
    if not len(gt) or not len(boxes):
        return found
    m = iou(gt, boxes)
    while True:
        g, b = np.unravel_index(np.argmax(m), m.shape)
        if m[g, b] < iou_min:
            return found
        found[g] = True
        m[g, :], m[:, b] = -1, -1


def ingest_and_score(
    folder: Path, gt: dict[int, tuple[np.ndarray, np.ndarray]], settings: Settings, every: dict[int, np.ndarray]
) -> dict[str, Any]:
    """Ingest one frame folder (every frame sampled) and score its stored track boxes against gt; track boxes
    that overlap no annotated object at all (`every`, IoU >= 0.3) are counted as false."""
    svc = VSearch(settings)
    info = probe(folder)
    warm(svc, info.resolution_wh)  # load, compile every input shape
    r = svc.ingest([IngestItem(folder, "recall", 0.0, info.fps)])[0]
    assert r.status == "ingested", r.error
    boxes = np.array(svc.catalog._q("SELECT pts, x1, y1, x2, y2 FROM track_boxes"), np.float64).reshape(-1, 5)
    svc.close()
    instants = []  # (height, identity, found)
    false_boxes = 0
    for frame in range(1, info.frame_count + 1):
        at = boxes[np.abs(boxes[:, 0] * info.fps - (frame - 1)) < 0.5, 1:]
        if len(at):
            anything = every.get(frame, np.zeros((0, 4)))
            false_boxes += int((iou(at, anything).max(axis=1) < 0.3).sum()) if len(anything) else len(at)
        if frame not in gt:
            continue
        xyxy, ids = gt[frame]
        for h, i, f in zip(xyxy[:, 3] - xyxy[:, 1], ids, matched(xyxy, at)):
            instants.append((float(h), int(i), bool(f)))
    return {"instants": instants, "wall_s": r.wall_s, "frames": r.frames_sampled, "false_boxes": false_boxes}


def by_bucket(instants: list[tuple[str, float, int, bool]]) -> dict[str, dict[str, Any]]:
    """Person-instant recall and tracks-seen-once per height bucket; instants are (sequence, height, id, found)."""
    out = {}
    tracks: dict[tuple[str, int], list[tuple[float, bool]]] = {}
    for seq, h, i, f in instants:
        tracks.setdefault((seq, i), []).append((h, f))
    for lo, hi in BUCKETS:
        inst = [f for _, h, _, f in instants if lo <= h < hi]
        trk = [any(f for _, f in v) for v in tracks.values() if lo <= float(np.median([h for h, _ in v])) < hi]
        out[f"{lo}-{hi if hi < 10_000 else ''}"] = {
            "instants": len(inst), "instant_recall": round(float(np.mean(inst)), 3) if inst else None,
            "tracks": len(trk), "tracks_seen_once": round(float(np.mean(trk)), 3) if trk else None,
        }  # fmt: skip
    return out


def run(size: str, variants: list[str]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vsearch-bench-recall-"))
    try:
        footages: dict[str, list[tuple[str, Path, float]]] = {"SD 384 px": [], "full (1080p)": []}
        for name in SEQS[size]:
            seq = MOT17 / name
            folder, scale = sd_copy(seq, work / "sd")
            footages["SD 384 px"].append((name, folder, scale))
            footages["full (1080p)"].append((name, seq / "img1", 1.0))
        rows = []
        for footage, seqs in footages.items():
            for v in variants:
                instants: list[tuple[str, float, int, bool]] = []
                wall = frames = false_boxes = 0.0
                for name, folder, scale in seqs:
                    settings = Settings(data_dir=work / "data" / footage.split()[0] / v / name, **VARIANTS[v])
                    res = ingest_and_score(folder, ground_truth(MOT17 / name, scale), settings, every_box(MOT17 / name, scale))
                    instants += [(name, *x) for x in res["instants"]]
                    wall, frames = wall + res["wall_s"], frames + res["frames"]
                    false_boxes += res["false_boxes"]
                rows.append({"footage": footage, "settings": v, "ms_per_frame": round(1000 * wall / frames, 1),
                             "false_boxes_per_frame": round(false_boxes / frames, 2), "buckets": by_bucket(instants)})  # fmt: skip
        return {"rows": rows, "sequences": SEQS[size]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = size_and_variants(__doc__, list(SEQS), list(VARIANTS), argv)
    result = run(args.size, args.variants)
    table = [
        {"footage": r["footage"], "settings": r["settings"], "ms/frame": r["ms_per_frame"],
         "false/frame": r["false_boxes_per_frame"],
         **{f"{k} px": f"{b['instant_recall']} ({b['instants']}) / {b['tracks_seen_once']} ({b['tracks']})"
            for k, b in r["buckets"].items()}}
        for r in result["rows"]
    ]  # fmt: skip
    print_table(table, "Recall by height: person-instants (n) / tracks seen at least once (n), IoU >= 0.5")
    payload = {"benchmark": "recall", "size": args.size, "machine": machine_info(["ultralytics", "openvino"]), **result}
    write_json(f"bench_recall_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
