"""Redacted exports (issue 28 part 1): how many bystanders a redaction covers, that the subject stays uncovered,
and what it costs, on MOT17's frames with ground truth.

Every frame of the chosen mot17-mini sequences goes once through the person detector as an export runs it
(vsearch.redact.person_detect). Then each of a few ground-truth tracks per sequence is the subject in turn: the
"stored track boxes" are the ground-truth boxes of every track at every STRIDE-th frame only (as an ingest
samples them), interpolated between samples as an export does (vsearch.clips.interpolated_box); the export's
plan (vsearch.redact.plan_frame) covers the others from them and from the detections. Coverage is read off the
covers' pixel mask:

- a bystander person-instant (every other ground-truth pedestrian, class 1, consider 1, in every frame) is fully
  covered when every pixel of its box inside the frame is covered, except the part inside the subject's box when
  the bystander stands behind the subject (its box ends higher): that part shows the subject. Reported for those
  at least half visible and at least 40 px tall (the target: >= 98 %), and the rest by height and visibility.
  `head covered`: the box's top sixth alone (where a face is). `mean covered`: the share of its pixels covered.
- the subject: the share of its box covered (mean and worst), and of its person-instants with any pixel covered.

Export time per clip-second: a real export (vsearch.casework, clips re-rendered and checked) of one sequence
written as a video at its frame rate, through a catalog holding its tracks' sampled boxes, redacted and not.

    python -m benchmarks.bench_redact --size S|M
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.bench_recall import MOT17
from benchmarks.common import machine_info, print_table, write_json
from vsearch.clips import interpolated_box
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.redact import Cover, plan_frame
from vsearch.types import Detections

SEQS = {
    "S": ["MOT17-09-FRCNN"],
    "M": ["MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-09-FRCNN", "MOT17-10-FRCNN", "MOT17-11-FRCNN",
          "MOT17-13-FRCNN"],
}  # fmt: skip
SUBJECTS = {"S": 3, "M": 3}  # ground-truth tracks per sequence taken as the subject in turn
STRIDE = 3  # stored boxes at every third frame: at 30 fps, 10 boxes/s (an ingest at 2 fps stores fewer; the detector fills in)
HEIGHTS = ((0, 40), (40, 80), (80, 160), (160, 10_000))
VISIBILITY = ((0.0, 0.25), (0.25, 0.5), (0.5, 1.01))
EXPORT_SEQ = "MOT17-09-FRCNN"


def _seq(name: str) -> tuple[list[np.ndarray], float, dict[int, dict[int, tuple[tuple[float, float, float, float], float]]]]:
    """Frames (BGR), fps, and {gt id: {frame index (0-based): (xyxy, visibility)}} of the pedestrians."""
    seq = MOT17 / name
    fps = float(next(line.split("=")[1] for line in (seq / "seqinfo.ini").read_text().splitlines() if line.startswith("frameRate")))
    frames: list[np.ndarray] = [cv2.imread(str(p)) for p in sorted((seq / "img1").glob("*.jpg"))]  # type: ignore[misc]
    gt: dict[int, dict[int, tuple[tuple[float, float, float, float], float]]] = {}
    for r in np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2):
        if r[6] == 1 and r[7] == 1 and int(r[0]) <= len(frames):
            gt.setdefault(int(r[1]), {})[int(r[0]) - 1] = ((r[2], r[3], r[2] + r[4], r[3] + r[5]), float(r[8]))
    return frames, fps, gt


def _mask(shape: tuple[int, int], covers: list[Cover]) -> np.ndarray:
    """The pixels the covers change (vsearch.redact.apply_covers' regions, outside their keep boxes)."""
    m = np.zeros(shape, bool)
    h, w = shape
    for c in covers:
        x1, y1, x2, y2 = (int(np.floor(c.xyxy[0])), int(np.floor(c.xyxy[1])), int(np.ceil(c.xyxy[2])), int(np.ceil(c.xyxy[3])))
        region = np.zeros(shape, bool)
        region[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)] = True
        if c.keep is not None:
            k = (int(np.floor(c.keep[0])), int(np.floor(c.keep[1])), int(np.ceil(c.keep[2])), int(np.ceil(c.keep[3])))
            region[max(0, k[1]) : min(h, k[3]), max(0, k[0]) : min(w, k[2])] = False
        m |= region
    return m


def _box_px(shape: tuple[int, int], box: tuple[float, float, float, float], top_share: float = 1.0) -> np.ndarray:
    h, w = shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    y2 = y1 + max(1, round((y2 - y1) * top_share))
    m = np.zeros(shape, bool)
    m[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)] = True
    return m


def _box(b: tuple[float, ...] | None) -> tuple[float, float, float, float] | None:
    return None if b is None else (b[0], b[1], b[2], b[3])


def _stored(track: dict[int, tuple[tuple[float, float, float, float], float]], fps: float) -> list[tuple[float, Any, float]]:
    return [(i / fps, box, 1.0) for i, (box, _) in sorted(track.items()) if i % STRIDE == 0]


def detect_all(size: str, detector: PersonDetector) -> tuple[dict[str, list[Detections]], float]:
    """Each sequence's detections per frame, as an export runs the detector; the median ms per frame."""
    from vsearch.redact import person_detect

    detect = person_detect(detector)
    found: dict[str, list[Detections]] = {}
    det_ms: list[float] = []
    for name in SEQS[size]:
        frames, _, _ = _seq(name)
        detect(frames[:1])  # load and compile: not timed
        found[name] = []
        for img in frames:
            t = time.perf_counter()
            found[name].append(detect([img])[0])
            det_ms.append(1000 * (time.perf_counter() - t))
    return found, float(np.median(det_ms))


def coverage(
    size: str, found: dict[str, list[Detections]], mode: str, stored_others: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(bystander rows, subject rows) for every sequence and subject of `size`; `stored_others` False: the
    detections alone cover the bystanders (the subject's stored box still finds the subject)."""
    by, subj = [], []
    for name in SEQS[size]:
        frames, fps, gt = _seq(name)
        dets = found[name]
        shape = frames[0].shape[:2]
        # subjects: the tallest well-visible tracks in the first frame, then every few by height, for variety
        first = sorted((tid for tid, t in gt.items() if 0 in t and t[0][1] >= 0.5), key=lambda t: -(gt[t][0][0][3] - gt[t][0][0][1]))
        picks = first[:: max(1, len(first) // SUBJECTS[size])][: SUBJECTS[size]]
        for sid in picks:
            stored = {tid: _stored(t, fps) for tid, t in gt.items()}
            gap = 1.0
            for i, d in enumerate(dets):
                subject = interpolated_box(stored[sid], i / fps, gap) if stored[sid] else None
                others = [b for tid, s in stored.items() if stored_others and tid != sid and s
                          and (b := interpolated_box(s, i / fps, gap)) is not None]  # fmt: skip
                covers, _, _, _ = plan_frame(_box(subject), [_box(b) for b in others], d, mode)  # type: ignore[misc]
                covered = _mask(shape, covers)
                if i in gt[sid]:
                    sbox = gt[sid][i][0]
                    spx = _box_px(shape, sbox)
                    subj.append({"seq": name, "share": float(covered[spx].mean()) if spx.any() else 0.0})
                for tid, t in gt.items():
                    if tid == sid or i not in t:
                        continue
                    box, vis = t[i]
                    px = _box_px(shape, box)
                    if sid in gt and i in gt[sid] and box[3] <= gt[sid][i][0][3]:
                        px &= ~_box_px(shape, gt[sid][i][0])  # behind the subject: that part shows the subject
                    head = _box_px(shape, box, 1 / 6) & px
                    if not px.any():
                        continue
                    by.append({"seq": name, "h": box[3] - box[1], "vis": vis, "full": bool(covered[px].all()),
                               "head": bool(covered[head].all()) if head.any() else True, "share": float(covered[px].mean())})  # fmt: skip
    return by, subj


def _rows(by: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    def row(label: str, sel: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(sel)
        return {"mode": mode, "bystanders": label, "n": n,
                "fully_covered_%": round(100 * np.mean([s["full"] for s in sel]), 1) if n else None,
                "head_covered_%": round(100 * np.mean([s["head"] for s in sel]), 1) if n else None,
                "mean_covered_%": round(100 * np.mean([s["share"] for s in sel]), 1) if n else None}  # fmt: skip

    rows = [row("target: vis >= 0.5, >= 40 px", [b for b in by if b["vis"] >= 0.5 and b["h"] >= 40])]
    for lo, hi in VISIBILITY:
        for hl, hh in HEIGHTS:
            sel = [b for b in by if lo <= b["vis"] < hi and hl <= b["h"] < hh]
            if sel:
                rows.append(row(f"vis {lo:g}-{min(hi, 1):g}, {hl}-{hh if hh < 10_000 else ''} px", sel))
    return rows


def export_time(detector: PersonDetector) -> list[dict[str, Any]]:
    """Seconds of export per second of clip, redacted and not, through a real catalog and Casework.export."""
    from vsearch.catalog import Checkpoint, NewSighting
    from vsearch.service import VSearch
    from vsearch.video import write_mp4

    frames, fps, gt = _seq(EXPORT_SEQ)
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-redact-") as tmp:
        root = Path(tmp)
        video = root / "seq.mp4"
        write_mp4(video, enumerate(frames), fps)
        svc = VSearch(Settings(data_dir=root / "data", embedder="hsv-parts"), detector=detector)
        h, w = frames[0].shape[:2]
        rec = svc.catalog.begin_video("bench", str(video), hashlib.sha256(video.read_bytes()).hexdigest(), 1.7e9, fps,
                                      len(frames), (w, h), svc.embedder.name)  # fmt: skip
        sid = max(gt, key=lambda t: len(gt[t]))
        (svc.settings.thumbs_dir / "b").mkdir(parents=True)
        rows, boxes = [], []
        for tid, track in gt.items():
            for ts, box, _ in _stored(track, fps):
                boxes.append((tid, ts, box, 0.9))
                if tid == sid:
                    thumb = svc.settings.thumbs_dir / "b" / f"{round(ts * 1000)}.jpg"
                    x1, y1, x2, y2 = (max(0, int(v)) for v in box)
                    crop = frames[round(ts * fps)][y1:y2, x1:x2]
                    cv2.imwrite(str(thumb), crop)
                    rows.append(NewSighting("bench", tid, 1.7e9 + ts, ts, box, 0.9, 0.5, str(thumb.relative_to(svc.settings.data_dir)),
                                            svc.embedder.embed([np.ascontiguousarray(crop[:, :, ::-1])])[0]))  # fmt: skip
        ids = svc.store.commit_chunk(rec.id, Checkpoint(rows, boxes, len(frames) / fps, len(frames), True))
        case = svc.casework.create("bench", "", "bench")
        svc.casework.add(case.id, [str(ids[0])], "bench")
        for mode in ("none", "bystanders", "faces"):
            t0, c0 = time.perf_counter(), time.process_time()
            r = svc.casework.export(case.id, root / f"{mode}.zip", "bench", {"role": "admin"}, reason="benchmark", redact=mode)
            s, cpu = time.perf_counter() - t0, time.process_time() - c0
            clip_s = len(frames) / fps
            out.append({"mode": mode, "sequence": EXPORT_SEQ, "clip_frames": len(frames), "clip_s": round(clip_s, 3),
                        "export_s": round(s, 2), "export_s_per_clip_s": round(s / clip_s, 1),
                        "cpu_s_per_clip_s": round(cpu / clip_s, 1), "deterministic": r.deterministic})  # fmt: skip
        svc.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SEQS), default="M")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    detector = PersonDetector(Settings())
    rows, subjects = [], []
    found, ms = detect_all(args.size, detector)
    for mode, stored_others in (("bystanders", True), ("faces", True), ("bystanders", False)):
        by, subj = coverage(args.size, found, mode, stored_others)
        rows += _rows(by, mode if stored_others else f"{mode}, detections only")
        if not stored_others:
            continue
        shares = [s["share"] for s in subj]
        subjects.append({"mode": mode, "subject_instants": len(shares), "mean_covered_%": round(100 * float(np.mean(shares)), 2),
                         "worst_covered_%": round(100 * float(np.max(shares)), 1),
                         "any_pixel_covered_%": round(100 * float(np.mean([s > 0 for s in shares])), 1)})  # fmt: skip
    print_table(rows, f"Bystander person-instants covered ({', '.join(SEQS[args.size])}; stored boxes every {STRIDE} frames)")
    print_table(subjects, "The subject's box covered")
    timing = export_time(detector)
    print_table(timing, f"Export time per clip-second (detector {ms:.0f} ms/frame median, machine under load)")
    payload = {"benchmark": "redact", "size": args.size, "machine": machine_info(["openvino"]), "sequences": SEQS[args.size],
               "stride_frames": STRIDE, "detector_ms_per_frame_median": round(ms, 1), "bystanders": rows,
               "subject": subjects, "export": timing}  # fmt: skip
    write_json(f"bench_redact_{args.size}", payload, *([args.out] if args.out else []))
    return payload


if __name__ == "__main__":
    main()
