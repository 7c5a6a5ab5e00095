"""How often watchlist alerts are right: the sample clip as two cameras, each visitor a watchlist entry.

Camera `cam-a` is the bundled clip; camera `cam-b` is the same clip mirrored, rescaled and darkened (another
file, so another video of the catalog). Each of the six visitors (sample_videos/visits_approx.csv) becomes an
entry from their best-quality crop on cam-a (`--sighting`), and visitor 3 also from the bundled query photo
(`sample_videos/queries/visitor3.jpg`); alerts are raised, through the real path (VSearch.ingest -> store ->
watchlist matcher, in the sightings' transaction), while cam-b is ingested, on cam-b only. A cam-b track belongs
to the visitor whose visit its crops overlap most; an alert is right when that visitor is its entry's.

Two ingests of cam-b, each on a copy of the catalog holding cam-a:
  sweep    entries at min_score 0.1 and no folding: one alert per track with its best score, so the alerts at any
           threshold t >= 0.1 are those scoring >= t (the threshold curve)
  default  entries at the embedder's default min_score (vsearch.embed.thresholds) with the product's rate limit (FOLD_S): what a user gets

Caveat, stated in the README: cam-b is the same footage transformed, not a second viewpoint; the figures are an
upper bound on a real second camera's.

    python -m benchmarks.bench_watchlist [--size S|M] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json
from vsearch.catalog import CameraInfo
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import thresholds
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.video import write_mp4
from vsearch.watchlist import FOLD_S

CLIP = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
PHOTO = PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg"
START = "2026-03-01T14:00:00+00:00"
CLIP_S = {"S": 50.0, "M": 1e9}  # S: visits 1-2 (the smoke test); M: all six
SWEEP = (0.1, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.93, 0.95)


def visits() -> list[tuple[int, float, float]]:
    import csv

    with open(PROJECT_ROOT / "sample_videos" / "visits_approx.csv") as f:
        return [(int(r["visit"]), float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]


def write_clip(out: Path, clip_s: float, transform: bool, src: Path = CLIP) -> Path:
    """A 10 fps clip's (`src`, the sample clip by default) first `clip_s` seconds; `transform`: mirrored, at 80 %
    size, gamma 1.4 (darker)."""
    lut = (255 * (np.arange(256) / 255) ** 1.4).astype(np.uint8)
    with av.open(str(src)) as c:
        def frames():  # type: ignore[no-untyped-def]
            for i, f in enumerate(c.decode(video=0)):
                if f.time is not None and f.time >= clip_s:
                    return
                img = f.to_ndarray(format="bgr24")
                if transform:
                    img = cv2.LUT(cv2.resize(img[:, ::-1], None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA), lut)
                yield i, np.ascontiguousarray(img)

        write_mp4(out, frames(), 10.0)
    return out


def track_visits(svc: VSearch, camera: str, in_visits: list[tuple[int, float, float]]) -> dict[tuple[int, int], int | None]:
    """(video_id, track_id) of the camera's tracks -> the visit its crops overlap most (None: no visit)."""
    spans: dict[tuple[int, int], list[float]] = {}
    for s in svc.catalog.sightings_between(0.0, 1e12, [camera]):
        spans.setdefault((s.video_id, s.track_id), []).append(s.pts_s)
    out: dict[tuple[int, int], int | None] = {}
    for key, pts in spans.items():
        lo, hi = min(pts), max(pts)
        overlaps = {n: min(hi, e + 1) - max(lo, s - 1) for n, s, e in in_visits}
        best = max(overlaps, key=lambda n: overlaps[n])
        out[key] = best if overlaps[best] >= 0 else None
    return out


def add_entries(svc: VSearch, in_visits: list[tuple[int, float, float]], min_score: float,
                cameras: tuple[str, ...] = ("cam-b",)) -> dict[int, int]:  # fmt: skip
    """Entry id -> the visit it is of: each visitor's best-quality crop on cam-a, and visitor 3's photo; watching
    `cameras`."""
    video = next(v for v in svc.catalog.videos() if v.camera_id == "cam-a")
    rows = svc.catalog._q("SELECT id, pts, quality FROM sightings WHERE video_id=?", (video.id,))
    entries: dict[int, int] = {}
    for n, s, e in in_visits:
        inside = [r for r in rows if s <= r[1] <= e]
        if not inside:
            continue
        best = max(inside, key=lambda r: r[2])
        entry = svc.watchlists.add(f"visitor {n}", [], "bench", None, None, cameras, min_score, None, [int(best[0])])
        entries[entry.id] = n
    if any(n == 3 for n, _, _ in in_visits):
        entry = svc.watchlists.add("visitor 3 (photo)", [PHOTO.read_bytes()], "bench", None, None, cameras, min_score)
        entries[entry.id] = 3
    return entries


def score(alerts: list[tuple[int, int, int, float]], entries: dict[int, int], truth: dict[tuple[int, int], int | None],
          t: float) -> dict[str, Any]:  # fmt: skip
    """Alerts (entry, video, track, score) at threshold t against the truth, per entry and over all entries."""
    per: dict[int, dict[str, Any]] = {}
    tracks_of = {n: sum(1 for v in truth.values() if v == n) for n in set(entries.values())}
    passers = 0
    for entry, n in entries.items():
        mine = [a for a in alerts if a[0] == entry and a[3] >= t]
        right = [a for a in mine if truth.get((a[1], a[2])) == n]
        passers += sum(1 for v in truth.values() if v != n)
        per[entry] = {
            "visit": n, "alerts": len(mine), "right": len(right), "wrong": len(mine) - len(right),
            "precision": len(right) / len(mine) if mine else None, "found": bool(right),
            "track_recall": len({(a[1], a[2]) for a in right}) / tracks_of[n] if tracks_of[n] else None,
        }  # fmt: skip
    alerts_n = sum(p["alerts"] for p in per.values())
    right_n = sum(p["right"] for p in per.values())
    return {
        "threshold": t, "alerts": alerts_n, "right": right_n, "wrong": alerts_n - right_n,
        "precision": right_n / alerts_n if alerts_n else None,
        "entries_found": sum(p["found"] for p in per.values()), "entries": len(per),
        "false_alerts_per_1000_passer_tracks": 1000 * (alerts_n - right_n) / passers if passers else None,
        "per_entry": per,
    }  # fmt: skip


def run_variant(base: Path, work: Path, name: str, cam_b: Path, models: VSearch, in_visits: list, min_score: float,
                fold_s: float) -> tuple[list[tuple[int, int, int, float]], dict[int, int], dict, list]:  # fmt: skip
    data = work / name
    shutil.copytree(base, data)
    svc = VSearch(models.settings.model_copy(update={"data_dir": data}), models.detector, models.embedder)
    try:
        entries = add_entries(svc, in_visits, min_score)
        svc.watchlists.matcher.fold_s = fold_s
        rep = svc.ingest([IngestItem(cam_b, "cam-b", parse_time(START) + 3600)])[0]
        assert rep.status == "ingested", rep.error
        found = svc.watchlists.alerts()
        alerts = [(v.alert.entry_id, v.alert.video_id, v.alert.track_id, v.alert.score) for v in found]
        folded = [(v.alert.entry_id, v.alert.tracks) for v in found]
        return alerts, entries, track_visits(svc, "cam-b", in_visits), folded
    finally:
        svc.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(CLIP_S), default="M")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    clip_s = CLIP_S[args.size]
    in_visits = [v for v in visits() if v[2] <= clip_s]
    with tempfile.TemporaryDirectory(prefix="bench_watchlist.") as tmp:
        work = Path(tmp)
        cam_a = write_clip(work / "cam-a.mp4", clip_s, transform=False)
        cam_b = write_clip(work / "cam-b.mp4", clip_s, transform=True)
        base = work / "base"
        models = VSearch(Settings(data_dir=base))
        default_min_score = thresholds(models.embedder.name).alert
        try:
            rep = models.ingest([IngestItem(cam_a, "cam-a", parse_time(START))])[0]
            assert rep.status == "ingested", rep.error
            models.catalog.set_camera_info(CameraInfo("cam-b", "cam-a mirrored"))  # watched before its footage
        finally:
            models.close()
        alerts, entries, truth, _ = run_variant(base, work, "sweep", cam_b, models, in_visits, min(SWEEP), 0.0)
        curve = [score(alerts, entries, truth, t) for t in SWEEP]
        d_alerts, d_entries, d_truth, folded = run_variant(base, work, "default", cam_b, models, in_visits,
                                                           default_min_score, FOLD_S)  # fmt: skip
        at_default = score(d_alerts, d_entries, d_truth, default_min_score)
        at_default["tracks_folded_into_alerts"] = sum(n - 1 for _, n in folded)
    rows = [{"min_score": c["threshold"], "alerts": c["alerts"], "right": c["right"], "wrong": c["wrong"],
             "precision": round(c["precision"], 3) if c["precision"] is not None else "-",
             "entries found": f"{c['entries_found']}/{c['entries']}",
             "false / 1000 passer tracks": round(c["false_alerts_per_1000_passer_tracks"] or 0, 1)} for c in curve]  # fmt: skip
    print_table(rows, f"watchlist alerts on cam-b by threshold (one alert per track, {len(entries)} entries)")
    print_table([{"entry": f"{e} (visit {p['visit']})", "alerts": p["alerts"], "right": p["right"], "wrong": p["wrong"],
                  "found": p["found"], "track recall": p["track_recall"]} for e, p in at_default["per_entry"].items()],
                f"at the default min_score {default_min_score}, rate limit {FOLD_S:.0f} s (the product's path)")  # fmt: skip
    payload = {
        "benchmark": "bench_watchlist", "size": args.size, "machine": machine_info(["onnxruntime", "openvino"]),
        "clip_s": min(clip_s, 139.4), "entries": {str(k): v for k, v in entries.items()},
        "cam_b_tracks": len(truth), "cam_b_tracks_of_no_visit": sum(v is None for v in truth.values()),
        "default_min_score": default_min_score, "fold_s": FOLD_S, "curve": curve, "at_default": at_default,
        "sweep_alerts": [{"entry": a[0], "visit_of_entry": entries[a[0]], "track": a[2], "visit_of_track": truth.get((a[1], a[2])),
                          "score": round(a[3], 4)} for a in alerts],
    }  # fmt: skip
    write_json(f"bench_watchlist_{args.size}", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
