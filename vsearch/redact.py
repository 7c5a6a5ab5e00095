"""Redaction of exported evidence: everyone but the subject covered, the original footage untouched.

Modes: `bystanders` (the default) pixelates the whole body of every person but the subject; `faces` only their
heads; `none` leaves the frames as they are (an admin's export with a stated reason: vsearch.casework).

Who is a person in a frame: the boxes the catalog stored for the other tracks of the video (interpolated between
their samples, padded for the interpolation's error) and, besides them, the detector run on the exported frame
itself (people the tracker never stored are covered too). Who is the subject: the detection that best overlaps
the subject's own stored box (interpolated likewise), else that stored box. The subject is never covered where
it stands in front: a bystander behind the subject (whose box ends higher in the frame: further from a camera
looking down) is covered outside the subject's box only; a bystander in front is covered whole, over the part of
the subject it hides. Heads come from the pose keypoints (nose, eyes, ears) when the detector saw them, else
from the top of the box.

Pixelation is coarse on purpose: a body box becomes about `BODY_BLOCKS` blocks tall (a face is about one block),
a head `HEAD_BLOCKS` blocks; tests/test_redact.py checks that dlib's face recogniser no longer matches a covered
face, benchmarks/bench_redact.py measures the share of people covered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.errors import InputError
from vsearch.types import Detections

if TYPE_CHECKING:
    from vsearch.detect import PersonDetector

MODES = ("bystanders", "faces", "none")
DEFAULT_MODE = "bystanders"
DETECT_CONF = 0.25  # lower than ingest's: a missed bystander is worse than a covered patch of wall
MIN_PERSON_PX = 12  # detections this tall and up are covered (ingest keeps only people it can re-identify)
STORED_PAD = 0.10  # of a stored box's width and height, on each side: interpolation between 0.5 s samples drifts
DETECTED_PAD = 0.04
SUBJECT_IOU = 0.4  # a detection overlapping the subject's stored box this much is the subject
SAME_PERSON_IOU = 0.7  # a second detection this close to the subject's is the same person (a duplicate box)
FRONT_MARGIN = 0.1  # of the subject's height: a bystander whose box ends this much lower stands in front
BODY_BLOCKS = 8
HEAD_BLOCKS = 3
HEAD_KPT_CONF = 0.5
BATCH = 8

Box = tuple[float, float, float, float]


def check_mode(mode: str) -> str:
    """The redaction mode, or InputError naming the three there are."""
    if mode not in MODES:
        raise InputError(f"expected a redaction mode of {', '.join(MODES)}; got {mode!r}")
    return mode


@dataclass(frozen=True)
class Cover:
    """One region to pixelate: `xyxy` in frame pixels, `blocks` across its height; `keep` is a box inside which
    nothing is covered (the subject's, for a bystander standing behind it)."""

    xyxy: Box
    blocks: int
    keep: Box | None = None


@dataclass
class RedactionStats:
    """What a redaction covered: frames, and covers from stored boxes and from detections."""

    frames: int = 0
    from_stored: int = 0
    from_detections: int = 0
    subject_found: int = 0  # frames where a detection was matched to the subject

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "covers_from_stored_boxes": self.from_stored,
                "covers_from_detections": self.from_detections, "frames_subject_detected": self.subject_found}  # fmt: skip


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _pad(b: Box, share: float) -> Box:
    dx, dy = share * (b[2] - b[0]), share * (b[3] - b[1])
    return (b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy)


def head_box(xyxy: Box, keypoints: NDArray[np.float32] | None) -> Box:
    """The head of a person: around the visible nose, eyes and ears (COCO keypoints 0-4), at least a fifth of the
    box tall; without them, the box's top quarter, its whole width."""
    x1, y1, x2, y2 = xyxy
    h = y2 - y1
    if keypoints is not None and len(keypoints) >= 5:
        k = keypoints[:5]
        seen = k[k[:, 2] >= HEAD_KPT_CONF, :2]
        if len(seen):
            cx, cy = seen.mean(axis=0)
            spread = float(np.ptp(seen, axis=0).max()) if len(seen) > 1 else 0.0
            s = max(2.2 * spread, 0.2 * h, 6.0)
            return (cx - s / 2, cy - 0.6 * s, cx + s / 2, cy + 0.5 * s)
    return (x1, y1 - 0.03 * h, x2, y1 + 0.25 * h)


def plan_frame(
    subject: Box | None, stored_others: Sequence[Box], dets: Detections, mode: str
) -> tuple[list[Cover], Box | None, int, int]:
    """The covers of one frame: (covers, the subject's box in this frame, covers from stored boxes, from
    detections). `subject` is the subject's stored box at this frame (None: not in it)."""
    subj_box: Box | None = subject
    subj_det = -1
    if subject is not None and len(dets):
        overlaps = [iou(subject, tuple(d)) for d in dets.xyxy.tolist()]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= SUBJECT_IOU:
            subj_det, subj_box = best, tuple(dets.xyxy[best].tolist())  # type: ignore[assignment]
    people: list[tuple[Box, NDArray[np.float32] | None]] = [(_pad(b, STORED_PAD), None) for b in stored_others]
    for i, d in enumerate(dets.xyxy.tolist()):
        if i == subj_det or (subj_box is not None and subj_det >= 0 and iou(subj_box, tuple(d)) >= SAME_PERSON_IOU):
            continue
        kp = dets.keypoints[i] if dets.keypoints.shape[1] else None
        people.append((_pad(tuple(d), DETECTED_PAD), kp))  # type: ignore[arg-type]
    covers = []
    for box, kp in people:
        region = box if mode == "bystanders" else head_box(box, kp)
        keep = None
        if subj_box is not None:
            in_front = box[3] > subj_box[3] + FRONT_MARGIN * (subj_box[3] - subj_box[1])
            keep = None if in_front else subj_box
        covers.append(Cover(region, BODY_BLOCKS if mode == "bystanders" else HEAD_BLOCKS, keep))
    n_stored = len(stored_others)
    return covers, subj_box, n_stored, len(covers) - n_stored


def apply_covers(img_bgr: NDArray[np.uint8], covers: Iterable[Cover]) -> None:
    """Pixelate each cover's region of `img_bgr` in place (outside its `keep` box)."""
    fh, fw = img_bgr.shape[:2]
    for c in covers:
        x1, y1 = max(0, math.floor(c.xyxy[0])), max(0, math.floor(c.xyxy[1]))
        x2, y2 = min(fw, math.ceil(c.xyxy[2])), min(fh, math.ceil(c.xyxy[3]))
        if x2 <= x1 or y2 <= y1:
            continue
        patch = img_bgr[y1:y2, x1:x2]
        h, w = patch.shape[:2]
        block = max(4, math.ceil(h / c.blocks))
        small = cv2.resize(patch, (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        if c.keep is not None:
            kx1, ky1 = max(x1, math.floor(c.keep[0])), max(y1, math.floor(c.keep[1]))
            kx2, ky2 = min(x2, math.ceil(c.keep[2])), min(y2, math.ceil(c.keep[3]))
            if kx2 > kx1 and ky2 > ky1:
                big[ky1 - y1 : ky2 - y1, kx1 - x1 : kx2 - x1] = patch[ky1 - y1 : ky2 - y1, kx1 - x1 : kx2 - x1]
        patch[:] = big


class Redactor:
    """Covers everyone but the subject in frames about to be exported, with `detect` (a batch of BGR frames in,
    Detections out: vsearch.detect.PersonDetector.detect) besides the stored boxes."""

    def __init__(self, detect: Callable[[Sequence[NDArray[np.uint8]]], list[Detections]], mode: str) -> None:
        if check_mode(mode) == "none":
            raise InputError("mode 'none' redacts nothing: export the frames as they are")
        self.detect = detect
        self.mode = mode
        self.stats = RedactionStats()
        self.plans: dict[int, list[Cover]] = {}  # each redacted frame's covers, by index: replay() applies them again

    def frames(
        self, frames: Iterable[tuple[int, NDArray[np.uint8]]], subject_at: Callable[[int], Box | None],
        others_at: Callable[[int], Sequence[Box]],
    ) -> Iterator[tuple[int, NDArray[np.uint8]]]:  # fmt: skip
        """The (index, BGR frame) pairs, redacted (copies: the frames given are not changed); `subject_at(index)`
        is the subject's stored box there (None: absent), `others_at(index)` the other tracks' stored boxes."""
        batch: list[tuple[int, NDArray[np.uint8]]] = []
        for item in frames:
            batch.append(item)
            if len(batch) == BATCH:
                yield from self._batch(batch, subject_at, others_at)
                batch = []
        if batch:
            yield from self._batch(batch, subject_at, others_at)

    def _batch(
        self, batch: list[tuple[int, NDArray[np.uint8]]], subject_at: Callable[[int], Box | None],
        others_at: Callable[[int], Sequence[Box]],
    ) -> Iterator[tuple[int, NDArray[np.uint8]]]:  # fmt: skip
        found = self.detect([img for _, img in batch])
        for (idx, img), dets in zip(batch, found):
            yield idx, self.redact(img, subject_at(idx), others_at(idx), dets, idx)

    def replay(self, frames: Iterable[tuple[int, NDArray[np.uint8]]]) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        """The same frames redacted again with the covers planned when they were redacted first (no detection)."""
        for idx, img in frames:
            out = img.copy()
            apply_covers(out, self.plans[idx])
            yield idx, out

    def redact(
        self, img_bgr: NDArray[np.uint8], subject: Box | None, others: Sequence[Box], dets: Detections, idx: int = -1
    ) -> NDArray[np.uint8]:
        """A redacted copy of one frame, given its detections (its covers kept under `idx`)."""
        covers, subj_box, n_stored, n_det = plan_frame(subject, others, dets, self.mode)
        self.plans[idx] = covers
        out = img_bgr.copy()
        apply_covers(out, covers)
        s = self.stats
        s.frames += 1
        s.from_stored += n_stored
        s.from_detections += n_det
        s.subject_found += int(subject is not None and subj_box is not subject)
        return out


def person_detect(detector: PersonDetector) -> Callable[[Sequence[NDArray[np.uint8]]], list[Detections]]:
    """`detector.detect` at the redaction's score, keeping people down to MIN_PERSON_PX tall."""
    return lambda images: detector.detect(images, conf=DETECT_CONF, min_height_px=MIN_PERSON_PX)
