"""Follow each person through sampled frames (ByteTrack) and cut tracks into segments with a few best crops.

Only the best few crops of each segment (sharp, large, confident, not cut by the frame edge) are embedded and
stored, so the index grows with people and time, not with frames. Every sampled box of a track is kept
(cheaply) so that clips can draw the person's box over time.
"""

from __future__ import annotations

import functools
import json
from argparse import Namespace
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.config import Settings
from vsearch.types import Detections, Frame
from vsearch.weights import import_ultralytics


@dataclass(frozen=True)
class TrackBox:
    """One sampled box of a track."""

    pts_s: float
    xyxy: tuple[float, float, float, float]
    confidence: float


@dataclass(frozen=True, eq=False)
class Crop:
    """A candidate crop of a track: the person's pixels at one instant, RGB."""

    pts_s: float
    ts_s: float
    xyxy: tuple[float, float, float, float]
    confidence: float
    quality: float
    crop_rgb: NDArray[np.uint8]
    keypoints: NDArray[np.float32]


@dataclass
class TrackSegment:
    """At most `segment_max_s` of one track: its boxes and its best crops."""

    track_id: int
    start_pts_s: float
    end_pts_s: float = 0.0
    boxes: list[TrackBox] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)
    last_seen_pts_s: float = 0.0
    # crops already stored while the segment was open (live: `SegmentTracker.early_crops`); they count among its
    # `crops_per_segment`, and the closed segment's `crops` include them
    sent: list[Crop] = field(default_factory=list)


class _TrackerInput:
    """The Results-like view BYTETracker reads: conf, cls, xywh, boolean indexing."""

    def __init__(self, xyxy: NDArray[np.float32], conf: NDArray[np.float32]) -> None:
        self.xyxy = xyxy
        self.conf = conf
        self.cls = np.zeros(len(conf), np.float32)

    @property
    def xywh(self) -> NDArray[np.float32]:
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: NDArray[np.bool_]) -> _TrackerInput:
        return _TrackerInput(self.xyxy[mask], self.conf[mask])


def crop_quality(crop_bgr: NDArray[np.uint8], xyxy: NDArray[np.float32], conf: float, frame_wh: tuple[int, int]) -> float:
    """Higher for confident, tall, sharp crops that the frame edge does not cut."""
    h = float(xyxy[3] - xyxy[1])
    gray = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    w_img, h_img = frame_wh
    cut = xyxy[0] <= 1 or xyxy[1] <= 1 or xyxy[2] >= w_img - 2 or xyxy[3] >= h_img - 2
    return conf * min(1.0, h / 256.0) ** 0.5 * (1.0 - np.exp(-sharpness / 100.0)) * (0.6 if cut else 1.0)


@dataclass(frozen=True)
class TrackerState:
    """What a tracker with no live track needs to go on exactly as before: ByteTrack's frame counter (a new
    tracker confirms tracks on its first frame at once, a running one only on their second frame)."""

    frame_id: int

    def to_json(self) -> str:
        return json.dumps({"frame_id": self.frame_id})

    @classmethod
    def from_json(cls, text: str | None) -> TrackerState | None:
        return None if text is None else cls(int(json.loads(text)["frame_id"]))


def buffered_iou(a: NDArray[np.float32], b: NDArray[np.float32], margin: float) -> NDArray[np.float32]:
    """IoU of every xyxy box of `a` with every one of `b`, each first grown by `margin` times its own width and
    height on every side (the buffered IoU of C-BIoU, Yang et al., WACV 2023): boxes of a person who moved
    about a body width between two samples overlap again."""
    def grow(x: NDArray[np.float32]) -> NDArray[np.float32]:
        wh = (x[:, 2:] - x[:, :2]) * margin
        return np.concatenate([x[:, :2] - wh, x[:, 2:] + wh], axis=1)

    a, b = grow(np.asarray(a, np.float32).reshape(-1, 4)), grow(np.asarray(b, np.float32).reshape(-1, 4))
    inter = np.prod(np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9), np.float32)


@functools.cache
def _byte_tracker_class() -> type:
    """ultralytics' BYTETracker with two changes for sampled video (2 frames a second, not 30):

    - boxes are matched by their buffered IoU (`buffered_iou`, margin `args.box_margin`): a walker moves about a
      body width between two samples, so a small person's boxes often do not overlap at all and plain IoU started
      a new track, never confirmed, at every sample (tests/test_track.py; benchmarks/README.md, "Tracking at 2
      samples a second");
    - a new track is confirmed by the same gate as every other match: ultralytics matches a new (unconfirmed)
      track to its second detection at 1 - IoU x score <= 0.7, a constant made for 30 fps and scores >= 0.6;
      with tracks started from 0.2 (SD) or 0.35 it dropped faint people (a 0.25 box never confirms) and walkers
      (0.5 x IoU 0.43). Here it is `track_match_thresh`, as in the first association."""
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.trackers.utils import matching

    class ByteTracker(BYTETracker):  # type: ignore[misc]
        def get_dists(self, tracks, detections):  # type: ignore[no-untyped-def]
            ious = np.zeros((len(tracks), len(detections)), np.float32)
            if tracks and detections:
                ious = buffered_iou(np.stack([t.xyxy for t in tracks]), np.stack([d.xyxy for d in detections]), self.args.box_margin)
            dists = 1 - ious
            return matching.fuse_score(dists, detections) if self.args.fuse_score else dists

        def _unconfirmed_association(self, unconfirmed, u_detection, detections, activated, removed):  # type: ignore[no-untyped-def]
            detections = [detections[i] for i in u_detection]
            if not unconfirmed:
                return list(range(len(detections))), detections
            dists = self.get_dists(unconfirmed, detections)
            matches, u_unconfirmed, u_detection = matching.linear_assignment(dists, thresh=self.args.match_thresh)
            for itracked, idet in matches:
                unconfirmed[itracked].update(detections[idet], self.frame_id)
                activated.append(unconfirmed[itracked])
            for it in u_unconfirmed:
                unconfirmed[it].mark_removed()
                removed.append(unconfirmed[it])
            return u_detection, detections

    return ByteTracker


class SegmentTracker:
    """ByteTrack over sampled frames, emitting closed TrackSegments.

    `update(frame, dets)` returns the segments that closed (too long, or their track was lost);
    `flush()` closes all open ones (end of video, or a forced checkpoint). Track ids are numbered from
    `first_track_id` in order of confirmation, so a tracker resumed from an idle `state()` with the next free id
    numbers tracks exactly as the uninterrupted one would.
    """

    def __init__(
        self, settings: Settings, first_track_id: int = 1, state: TrackerState | None = None,
        sample_fps: float | None = None, conf: float | None = None,
    ) -> None:  # fmt: skip
        """`sample_fps` and `conf` (the score a track starts from) are the file's, when not the settings'."""
        import_ultralytics(settings)

        self.settings = settings
        self.sample_fps = sample_fps or settings.sample_fps
        self.conf = settings.detector_conf if conf is None else conf
        args = Namespace(
            track_high_thresh=self.conf,
            track_low_thresh=0.1,
            new_track_thresh=self.conf,
            track_buffer=max(1, round(settings.track_buffer_s * self.sample_fps)),
            match_thresh=settings.track_match_thresh,
            fuse_score=True,
            box_margin=min(1.0, settings.track_box_margin_per_s / self.sample_fps),
        )
        self._tracker = _byte_tracker_class()(args)
        if state is not None:
            self._tracker.frame_id = state.frame_id
        self._next_id = first_track_id
        self._ids: dict[int, int] = {}  # ByteTrack's id -> ours
        self._open: dict[int, TrackSegment] = {}
        self._pending: dict[int, tuple[Frame, Detections, int]] = {}  # by ByteTrack's id

    @property
    def idle(self) -> bool:
        """No track is open, pending or lost: `state()` then captures everything needed to resume."""
        t = self._tracker
        return not (self._open or self._pending or t.tracked_stracks or t.lost_stracks)

    @property
    def next_track_id(self) -> int:
        """The id the next new track will get."""
        return self._next_id

    def state(self) -> TrackerState:
        return TrackerState(int(self._tracker.frame_id))

    def _own_id(self, raw: int) -> int:
        if raw not in self._ids:
            self._ids[raw] = self._next_id
            self._next_id += 1
        return self._ids[raw]

    def update(self, frame: Frame, dets: Detections) -> tuple[Detections, list[TrackSegment]]:
        """Track `dets` of `frame`; returns the tracked detections (tracker_id set) and segments that closed."""
        out = self._tracker.update(_TrackerInput(dets.xyxy, dets.confidence), frame.image_bgr)
        idx = out[:, 7].astype(np.int64) if len(out) else np.zeros(0, np.int64)
        raw_ids = out[:, 4].astype(np.int64).tolist() if len(out) else []
        tracked = dets[idx]
        tracked.tracker_id = np.array([self._own_id(r) for r in raw_ids], np.int64)
        closed = []
        for i, (raw, tid) in enumerate(zip(raw_ids, tracked.tracker_id.tolist())):
            seg = self._open.get(tid)
            if seg is not None and frame.pts_s - seg.start_pts_s >= self.settings.segment_max_s:
                closed.append(self._close(tid))
                seg = None
            if seg is None:
                first = self._pending.get(raw)
                seg = self._open[tid] = TrackSegment(tid, first[0].pts_s if first else frame.pts_s)
                if first is not None:  # the detection that started this track, one frame before it was confirmed
                    self._observe(seg, *first)
            self._observe(seg, frame, tracked, i)
        # ByteTrack confirms a track on its second frame; remember each new track's first detection until then
        self._pending = {
            t.track_id: (frame, dets, int(t.idx))
            for t in self._tracker.tracked_stracks
            if not t.is_activated and t.frame_id == self._tracker.frame_id
        }
        lost_after = self.settings.track_buffer_s
        for tid in [t for t, s in self._open.items() if frame.pts_s - s.last_seen_pts_s > lost_after]:
            closed.append(self._close(tid))
        live = {t.track_id for t in (*self._tracker.tracked_stracks, *self._tracker.lost_stracks)}
        self._ids = {raw: own for raw, own in self._ids.items() if raw in live}
        return tracked, closed

    def flush(self) -> list[TrackSegment]:
        return [self._close(tid) for tid in list(self._open)]

    def early_crops(self, ages_s: Sequence[float]) -> list[tuple[TrackSegment, Crop]]:
        """Crops of open segments to store now, before the segment closes (live: a person must be matched against
        the watchlists within seconds, not when they leave or after `segment_max_s`): once a segment has been
        followed for `ages_s[i]` seconds its best crop so far, at least 1 s from those already sent, is sent, up to
        `crops_per_segment - 1` of them (the last one is chosen when it closes, among all its crops)."""
        out = []
        limit = min(len(ages_s), self.settings.crops_per_segment - 1)
        for seg in self._open.values():
            n = len(seg.sent)
            if n >= limit or seg.last_seen_pts_s - seg.start_pts_s < ages_s[n]:
                continue
            picked = select_crops(seg.crops, n + 1, min_gap_s=1.0, kept=seg.sent)
            new = [c for c in picked if not any(c is o for o in seg.sent)]
            if new:
                seg.sent.append(new[0])
                out.append((seg, new[0]))
        return out

    def _observe(self, seg: TrackSegment, frame: Frame, dets: Detections, i: int) -> None:
        xyxy = dets.xyxy[i]
        conf = float(dets.confidence[i])
        box = tuple(float(v) for v in xyxy)
        seg.boxes.append(TrackBox(frame.pts_s, box, conf))  # type: ignore[arg-type]
        seg.end_pts_s = seg.last_seen_pts_s = frame.pts_s
        if conf < self.conf:
            return  # low-confidence boxes keep the track alive but are not stored as sightings
        w_img, h_img = frame.resolution_wh
        x1, y1, x2, y2 = np.clip(np.round(xyxy), 0, [w_img, h_img, w_img, h_img]).astype(int)
        if x2 - x1 < 8 or y2 - y1 < 16:
            return
        crop_bgr = frame.image_bgr[y1:y2, x1:x2]
        q = crop_quality(crop_bgr, xyxy, conf, (w_img, h_img))
        crop = Crop(frame.pts_s, frame.ts_s, box, conf, q, np.ascontiguousarray(crop_bgr[:, :, ::-1]), dets.keypoints[i])  # type: ignore[arg-type]
        seg.crops.append(crop)
        # keep memory bounded: a few more candidates than we will store
        k = self.settings.crops_per_segment * 3
        if len(seg.crops) > k:
            seg.crops.sort(key=lambda c: -c.quality)
            del seg.crops[k:]

    def _close(self, tid: int) -> TrackSegment:
        seg = self._open.pop(tid)
        seg.crops = select_crops(seg.crops, self.settings.crops_per_segment, min_gap_s=1.0, kept=seg.sent)
        return seg


def select_crops(crops: list[Crop], k: int, min_gap_s: float, kept: Sequence[Crop] = ()) -> list[Crop]:
    """The k best crops by quality, preferring ones at least `min_gap_s` apart (different poses), in time order;
    `kept` (crops already stored) are kept and count among the k."""
    ranked = sorted(crops, key=lambda c: -c.quality)
    chosen = list(kept)
    for c in ranked:
        if len(chosen) >= k:
            break
        if all(abs(c.pts_s - o.pts_s) >= min_gap_s for o in chosen):
            chosen.append(c)
    for c in ranked:  # top up when the segment is too short for spaced crops
        if len(chosen) >= k:
            break
        if not any(c is o for o in chosen):
            chosen.append(c)
    return sorted(chosen, key=lambda c: c.pts_s)
