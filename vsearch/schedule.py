"""When to run the detector, and where: the detection schedule of one file's sampled frames.

The ingest hands each batch of sampled frames to `DetectionSchedule.detect`, its one entry point. Frames unchanged
since the last detected one keep its persons (StaticSceneGate); with the OpenVINO backend each other frame is
detected only around what moved and who is tracked (MotionRegions), planned from the frame just before. The
detector itself (model, backends, export) is detect.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vsearch.config import Settings
from vsearch.detect import TRACKER_MIN_CONF, PersonDetector, Region
from vsearch.types import Detections, Frame


class DetectionSchedule:
    """The detections of each sampled frame of one file, running the detector only where and when it must.

    `sample_fps` is the file's sampling rate (how far a walker gets between two frames); `reset()` at each
    checkpoint, so that a resumed ingest detects exactly as this one goes on.
    """

    def __init__(self, detector: PersonDetector, settings: Settings, sample_fps: float) -> None:
        self.detector = detector
        self.gate = StaticSceneGate() if settings.skip_static_frames else None
        self.regions = (
            MotionRegions(detector.imgsz_for, settings.detector_full_every,
                          reach=min(1.0, MotionRegions.WALK_HEIGHTS_PER_S / sample_fps))  # fmt: skip
            # with tiles, every frame is detected whole (a region crop is detected at the downscaled frame's scale)
            if settings.detector_regions and settings.detector_backend == "openvino" and not settings.detector_tiles
            else None
        )

    @property
    def skipped(self) -> int:
        """Frames that kept the detections of an unchanged frame before them."""
        return self.gate.skipped if self.gate else 0

    def reset(self) -> None:
        if self.gate is not None:
            self.gate.reset()
        if self.regions is not None:
            self.regions.reset()

    def detect(self, batch: Sequence[Frame], timer: Callable[[str], AbstractContextManager[object]]) -> list[Detections]:
        """One Detections per frame of `batch`, in order; `timer(stage)` times the "motion" and "detect" stages."""
        gate, regions = self.gate, self.regions
        with timer("motion"):
            # one thumbnail per frame serves both the static-scene gate and the region planner
            smalls = [small_gray(f.image_bgr) for f in batch] if gate or regions else []
        if regions is None:
            with timer("motion"):
                run = gate.needs_detection([f.image_bgr for f in batch], smalls) if gate else [True] * len(batch)
            with timer("detect"):
                found = iter(self.detector.detect([f.image_bgr for f, r in zip(batch, run) if r]))
                dets = [next(found) if r else gate.reused() for r in run] if gate else list(found)
            if gate and run[-1]:
                gate.observe(batch[-1].image_bgr, dets[-1], smalls[-1])
            return dets
        # frame by frame: a frame unchanged since the last detected one keeps its persons; each other frame's
        # region is planned from the persons found in the frame just before (half a second ago, not a batch ago:
        # a person crossing a near camera stays inside a small crop); in a crowd, where every frame is detected
        # whole, the rest of the batch goes with it (one frame is prepared while another is in inference)
        by_frame: dict[int, Detections] = {}
        pending = list(range(len(batch)))
        while pending:
            with timer("motion"):
                group = [pending.pop(0)]
                if gate is not None and gate.unchanged(smalls[group[0]]):
                    by_frame[group[0]] = gate.reused()
                    continue
                plans = [regions.plan(batch[group[0]].image_bgr, smalls[group[0]])]
                while plans[0] is None and regions.crowded and pending:
                    group.append(pending.pop(0))
                    plans.append(regions.plan(batch[group[-1]].image_bgr, smalls[group[-1]]))
            with timer("detect"):
                for k, d in zip(group, self.detector.detect([batch[k].image_bgr for k in group], regions=plans)):
                    regions.observe(d)
                    by_frame[k] = d
            if gate is not None:
                gate.observe(batch[group[-1]].image_bgr, by_frame[group[-1]], smalls[group[-1]])
        return [by_frame[k] for k in range(len(batch))]


MOTION_WIDTH = 160  # motion checks compare frames shrunk to about this width


def small_gray(image_bgr: NDArray[np.uint8], width: int = MOTION_WIDTH) -> NDArray[np.uint8]:
    """The frame shrunk by a whole factor to `width` pixels wide or a little more, grey and blurred: what motion
    checks compare. A whole factor is OpenCV's fast area average, several times faster than an arbitrary one
    (benchmarks/README.md, bench_ingest)."""
    import cv2

    h, w = image_bgr.shape[:2]
    k = max(1, w // width)
    small = cv2.resize(image_bgr, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0), np.uint8)


class StaticSceneGate:
    """Skips the detector on sampled frames that have not changed since the last detected one: they keep its
    detections.

    The reference is the last detected frame, compared on the motion thumbnails. An empty scene counts as unchanged
    while a later frame differs from it in less than `min_changed` of the pixels (nobody can have entered); a scene
    with persons in it only while no pixel differs by more than `pixel_delta` (the same picture: nobody moved, so the
    same persons stand in the same boxes). A person standing still in a changing scene (someone else walking) is
    detected as before: only whole unchanged frames are skipped.
    """

    def __init__(self, min_changed: float = 0.002, pixel_delta: int = 25) -> None:
        self.min_changed = min_changed
        self.pixel_delta = pixel_delta
        self._ref: NDArray[np.uint8] | None = None
        self._dets = Detections.empty()
        self.skipped = 0

    def needs_detection(self, images_bgr: Sequence[NDArray[np.uint8]], smalls: Sequence[NDArray[np.uint8]] | None = None) -> list[bool]:
        """Which frames of a batch must go through the detector: all from the first one that changed (the others
        take `reused()`). `smalls` are the frames' `small_gray` thumbnails when the caller has them already."""
        thumbs = smalls if smalls is not None else (small_gray(img) for img in images_bgr)
        first = next((i for i, small in enumerate(thumbs) if not self.unchanged(small)), len(images_bgr))
        return [j >= first for j in range(len(images_bgr))]

    def unchanged(self, small: NDArray[np.uint8]) -> bool:
        """Whether the frame of this thumbnail is unchanged since the last observed frame (then counted as skipped:
        its detections are `reused()`)."""
        if self._ref is None or small.shape != self._ref.shape:
            return False
        changed = np.abs(small.astype(np.int16) - self._ref) > self.pixel_delta
        same = not changed.any() if len(self._dets) else float(np.mean(changed)) < self.min_changed
        self.skipped += same
        return same

    def reused(self) -> Detections:
        """A copy of the last observed frame's detections, for a frame found unchanged."""
        return _fresh_copy(self._dets)

    def reset(self) -> None:
        """Forget the reference frame: the next frame is detected."""
        self._ref, self._dets = None, Detections.empty()

    def observe(self, image_bgr: NDArray[np.uint8], dets: Detections, small: NDArray[np.uint8] | None = None) -> None:
        """Tell the gate what the detector found in the last detected frame (`small`: its thumbnail, if known)."""
        self._ref = small if small is not None else small_gray(image_bgr)
        self._dets = _fresh_copy(dets)


def _fresh_copy(d: Detections) -> Detections:
    """Boxes, scores and keypoints copied, with no tracker ids: a frame's detections as the detector gave them."""
    return Detections(d.xyxy.copy(), d.confidence.copy(), d.keypoints.copy())


def _within_reach(box: NDArray[np.float32], boxes: NDArray[np.float32], reach: float, margin: float) -> bool:
    """True when `box` lies within the union bounding box of `boxes`, each grown by `reach` times its own height
    (and at least `margin` pixels): how far that person can have walked since it was seen."""
    grow = np.maximum(margin, reach * (boxes[:, 3] - boxes[:, 1]))[:, None]
    lo, hi = (boxes[:, :2] - grow).min(axis=0), (boxes[:, 2:] + grow).max(axis=0)
    return bool(np.all(box[:2] >= lo) and np.all(box[2:] <= hi))


class MotionRegions:
    """Where to run the detector in each sampled frame: a crop around what moved and who is tracked, or the whole
    frame.

    Surveillance frames are mostly unchanged background (NVRs such as Frigate detect only in motion regions). The
    region is the bounding box of pixels that changed since the previous sampled frame, joined with the boxes of
    persons detected in the previous frame (a person standing still makes no motion), padded, and widened to
    one of a few square input sizes at the full frame's pixel scale; when only already-detected persons moved
    (motion within `reach` times a known person's height of them: how far a walker gets between two samples,
    half a height at 2 samples a second), the crop is shrunk so that the smallest of them is still
    `min_person_px` tall in the input. The whole frame is detected every `full_every` frames (so still people who
    were missed are found), whenever the crop would be neither a small part of the frame nor, shrunk, of its
    input, and while more than `max_persons` people are in view: in a crowd, most people stand or move slowly and
    a person the detector missed once would fall outside the crop (benchmarks/README.md, bench_recall).
    Persons found in either of the last two detected frames count as known, so one missed detection does not cut
    a person out. `plan()` returns None for "detect the whole frame".
    """

    # input sizes a region may use (two compiled shapes each: inside the frame, and at its border with the margin).
    # 192 fits a known person shrunk to min_person_px: most crops of a quiet scene (benchmarks/README.md)
    SIZES = Region.SIZES
    # how far a walker gets in a second, in body heights (1.4 m/s for 1.7 m is 0.8): `reach` between two samples
    WALK_HEIGHTS_PER_S = 1.0

    def __init__(self, imgsz_for: Any, full_every: int = 8, max_fill: float = 0.45, pixel_delta: int = 25,
                 pad_px: int = 48, min_person_px: int = 160, max_persons: int = 4, reach: float = 0.5) -> None:  # fmt: skip
        self.imgsz_for = imgsz_for
        self.full_every = full_every
        self.max_persons = max_persons
        self.reach = reach
        self._last: NDArray[np.float32] = np.zeros((0, 4), np.float32)  # the last detected frame's persons
        self._observed = False  # whether observe() was called since the start or the last reset()
        self.max_fill = max_fill
        self.pixel_delta = pixel_delta
        self.pad_px = pad_px
        self.min_person_px = min_person_px
        self._prev: NDArray[np.uint8] | None = None
        self._boxes: NDArray[np.float32] = np.zeros((0, 4), np.float32)
        self._since_full = 0
        self.full = self.cropped = 0

    def plan(self, image_bgr: NDArray[np.uint8], small: NDArray[np.uint8] | None = None) -> Region | None:
        """The region to detect in this frame (None: the whole frame); `small` is its `small_gray` thumbnail when
        the caller has it already. Call `observe()` with what was found."""
        h, w = image_bgr.shape[:2]
        small = small if small is not None else small_gray(image_bgr)
        prev, self._prev = self._prev, small
        self._since_full += 1
        if prev is None or prev.shape != small.shape or self._since_full >= self.full_every:
            return self._whole()
        if not self._observed or self.crowded:
            return self._whole()  # nothing known yet (the first frame after a reset), or a crowd
        boxes = [b for b in self._boxes]
        ys, xs = np.nonzero(np.abs(small.astype(np.int16) - prev) > self.pixel_delta)
        moved = None
        if len(xs):
            k = w / small.shape[1]
            moved = np.array([xs.min() * k, ys.min() * k, (xs.max() + 1) * k, (ys.max() + 1) * k], np.float32)
            boxes.append(moved)
        if not boxes:
            return self._whole()  # nothing moved and nobody was seen: cheap to check the whole frame now and then
        b = np.stack(boxes)
        x0, y0 = b[:, :2].min(axis=0) - self.pad_px
        x1, y1 = b[:, 2:].max(axis=0) + self.pad_px
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        scale = full = self.imgsz_for((w, h)) / max(w, h)  # input pixels per frame pixel in a whole-frame pass
        if len(self._boxes) and (moved is None or _within_reach(moved, self._boxes, self.reach, self.pad_px)):
            # only known persons moved: they need not be seen larger than min_person_px in the input
            scale = min(scale, self.min_person_px / float((self._boxes[:, 3] - self._boxes[:, 1]).min()))
        need = max(x1 - x0, y1 - y0) * scale
        size = next((s for s in self.SIZES if s >= need), None)
        # a crop pays when the region is a small part of the frame, or (known persons at their own, smaller
        # scale) when its input is a small part of the whole frame's
        small_region = (x1 - x0) * (y1 - y0) <= self.max_fill * w * h
        if size is None or not (small_region or size * size <= self.max_fill * w * h * full * full):
            return self._whole()
        side = int(size / scale)  # the crop grows around the region to fill the input at the same scale
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx0 = int(min(max(0, cx - side / 2), max(0, w - side)))
        ry0 = int(min(max(0, cy - side / 2), max(0, h - side)))
        self.cropped += 1
        return Region(rx0, ry0, min(w, rx0 + side), min(h, ry0 + side), size)

    @property
    def crowded(self) -> bool:
        """Whether more than `max_persons` persons were found in the last detected frame: until a frame with
        fewer is observed, every plan is the whole frame."""
        return self._observed and len(self._last) > self.max_persons

    def _whole(self) -> Region | None:
        self._since_full = 0
        self.full += 1
        return None

    def observe(self, dets: Detections) -> None:
        """Tell the planner which persons the detector found in the frame it last planned."""
        found = dets.xyxy[dets.confidence >= TRACKER_MIN_CONF].copy()
        self._boxes = np.concatenate([self._last, found]) if len(self._last) else found
        self._last, self._observed = found, True

    def reset(self) -> None:
        self._prev, self._since_full, self._observed = None, 0, False
        self._boxes = self._last = np.zeros((0, 4), np.float32)
