"""Track segmenting on synthetic frames (ByteTrack, real, over boxes we place, so every expectation is exact),
and on a real street (PETS 2009 through the real detector)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vsearch.config import Settings
from vsearch.track import Crop, SegmentTracker, TrackSegment, crop_quality, select_crops
from vsearch.types import Detections, Frame

W, H = 320, 240
STEP_S = 0.5  # the settings' sample_fps below is 2


def frame(i: int) -> Frame:
    """Sampled frame i of a textured scene (texture gives the crops a sharpness to score)."""
    img = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return Frame("cam", i * 4, i * STEP_S, 1_000.0 + i * STEP_S, img)


def person(i: int, x0: float = 40.0) -> Detections:
    """One confident person box, walking right 2 px per sampled frame."""
    x = x0 + 2 * i
    return Detections(np.array([[x, 60, x + 40, 180]], np.float32), np.array([0.9], np.float32))


def track(
    settings: Settings, visible: list[bool]
) -> tuple[list[tuple[int, list[TrackSegment]]], list[TrackSegment]]:
    """Run the tracker over len(visible) frames; (frame index, segments it closed) per update, then the flush."""
    tracker = SegmentTracker(settings)
    closed = []
    for i, seen in enumerate(visible):
        _, segs = tracker.update(frame(i), person(i) if seen else Detections.empty())
        closed.append((i, segs))
    return closed, tracker.flush()


def test_a_long_track_is_cut_into_segments_of_at_most_segment_max_s() -> None:
    settings = Settings(sample_fps=2.0, segment_max_s=10.0, crops_per_segment=3)
    closed, flushed = track(settings, [True] * 50)  # 25 s of one person
    segs = [s for _, ss in closed for s in ss] + flushed
    assert [(s.start_pts_s, s.end_pts_s) for s in segs] == [(0.0, 9.5), (10.0, 19.5), (20.0, 24.5)]
    assert [i for i, ss in closed if ss] == [20, 40]  # each cut at the first frame past segment_max_s
    assert len({s.track_id for s in segs}) == 1
    # every sampled box is kept exactly once (including the frame before ByteTrack confirmed the track)
    assert [b.pts_s for s in segs for b in s.boxes] == [i * STEP_S for i in range(50)]
    for s in segs:
        assert len(s.crops) == 3
        pts = [c.pts_s for c in s.crops]
        assert pts == sorted(pts) and min(np.diff(pts)) >= 1.0
        assert all(s.start_pts_s <= p <= s.end_pts_s for p in pts)


def test_live_early_crops_come_at_their_ages_and_count_among_the_segments_crops() -> None:
    """Live (vsearch.live): a track's best crop so far is sent 1 s and 3 s after it was first seen, while it is
    still open; when its segment closes it holds crops_per_segment crops in all, the early ones among them."""
    settings = Settings(sample_fps=2.0, segment_max_s=10.0, crops_per_segment=3, live_crop_ages_s=(1.0, 3.0))
    tracker = SegmentTracker(settings)
    sent_at = []
    closed: list[TrackSegment] = []
    for i in range(16):  # 8 s of one person, then gone past the track buffer
        closed += tracker.update(frame(i), person(i) if i < 10 else Detections.empty())[1]
        sent_at += [(i, c.pts_s) for _, c in tracker.early_crops(settings.live_crop_ages_s)]
    closed += tracker.flush()
    assert [i for i, _ in sent_at] == [2, 6], "1 s and 3 s after the first box (at 0 s), two samples a second"
    assert all(p <= i * STEP_S for i, p in sent_at), "a crop already seen, never a later one"
    (seg,) = closed
    assert len(seg.crops) == 3 and len(seg.sent) == 2
    assert all(any(c is s for c in seg.crops) for s in seg.sent)


@pytest.mark.parametrize("buffer_s, closes_at", [(1.0, 12), (3.0, 16)])
def test_a_track_lost_longer_than_the_buffer_closes(buffer_s: float, closes_at: int) -> None:
    """Seen in frames 0..9 (last at 4.5 s): closed at the first frame more than `buffer_s` later, not before."""
    settings = Settings(sample_fps=2.0, track_buffer_s=buffer_s, segment_max_s=60.0)
    closed, flushed = track(settings, [True] * 10 + [False] * 20)
    assert [i for i, ss in closed if ss] == [closes_at]
    (seg,) = dict(closed)[closes_at]
    assert (seg.start_pts_s, seg.end_pts_s, len(seg.boxes)) == (0.0, 4.5, 10)
    assert flushed == []


def test_track_ids_start_at_the_given_offset_and_differ_between_people() -> None:
    tracker = SegmentTracker(Settings(sample_fps=2.0), first_track_id=100)
    for i in range(6):
        two = Detections(
            np.concatenate([person(i).xyxy, person(i, x0=220).xyxy]), np.array([0.9, 0.8], np.float32)
        )
        tracked, _ = tracker.update(frame(i), two)
    assert sorted(tracked.tracker_id.tolist()) == [100, 101]
    assert sorted(s.track_id for s in tracker.flush()) == [100, 101]


def crop(pts_s: float, quality: float) -> Crop:
    return Crop(
        pts_s, pts_s, (0, 0, 1, 1), 0.9, quality, np.zeros((2, 1, 3), np.uint8), np.zeros((0, 3), np.float32)
    )


QUALITY = {0.0: 0.1, 0.5: 0.9, 1.0: 0.8, 1.5: 0.2, 2.0: 0.7}


@pytest.mark.parametrize(
    "k, min_gap_s, expected_pts",
    [
        (1, 1.0, [0.5]),  # the best
        (2, 1.0, [0.5, 2.0]),  # 1.0 is second best but too close to 0.5
        (3, 1.0, [0.5, 1.0, 2.0]),  # no third crop 1 s from both: topped up with the best remaining
        (3, 0.0, [0.5, 1.0, 2.0]),  # no spacing asked: the top three
        (2, 0.5, [0.5, 1.0]),  # exactly min_gap apart is far enough
        (9, 1.0, [0.0, 0.5, 1.0, 1.5, 2.0]),  # fewer crops than k: all, in time order
    ],
)
def test_select_crops_takes_the_best_spaced_crops_in_time_order(
    k: int, min_gap_s: float, expected_pts: list[float]
) -> None:
    chosen = select_crops([crop(p, q) for p, q in QUALITY.items()], k, min_gap_s)
    assert [c.pts_s for c in chosen] == expected_pts


def test_select_crops_of_nothing_is_nothing() -> None:
    assert select_crops([], 3, 1.0) == []


def test_crop_quality_prefers_sharp_uncut_crops() -> None:
    sharp = frame(0).image_bgr[60:180, 40:80]
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    inside = np.array([40, 60, 80, 180], np.float32)
    at_edge = np.array([0, 60, 40, 180], np.float32)
    q = crop_quality(sharp, inside, 0.9, (W, H))
    assert q > crop_quality(blurred, inside, 0.9, (W, H))
    assert q > crop_quality(sharp, at_edge, 0.9, (W, H))
    assert q > crop_quality(sharp, inside, 0.5, (W, H))


def test_a_person_crossing_the_view_fast_is_one_track_at_two_frames_a_second() -> None:
    """At 2 sampled frames a second a person walking across a near camera moves most of a body width between
    samples (here 28 px of 40: IoU 0.18). Each sample must still join the track (the sample clip lost two such
    half-seconds at 86 s to unconfirmed one-box tracks), and every box is kept."""
    tracker = SegmentTracker(Settings(sample_fps=2.0))
    segs = []
    for i in range(6):
        x = 20.0 + 28 * i
        dets = Detections(np.array([[x, 60, x + 40, 180]], np.float32), np.array([0.9], np.float32))
        segs += tracker.update(frame(i), dets)[1]
    segs += tracker.flush()
    assert len(segs) == 1 and [b.pts_s for b in segs[0].boxes] == [i * STEP_S for i in range(6)]


@pytest.mark.parametrize(
    "conf, score, step_px",
    [
        (0.2, 0.25, 4.0),  # SD footage (tracked from 0.2): a small, faint person standing nearly still
        (0.35, 0.5, 16.0),  # HD: a person walking in at 2 samples a second, box IoU 0.43 between samples
    ],
)
def test_a_person_entering_mid_video_is_tracked_from_the_start_score(conf: float, score: float, step_px: float) -> None:
    """A person who enters after the first frame is detected in every sample at `score` (>= the start score
    `conf`) and moves `step_px` of a 40-px-wide box per sample. ByteTrack confirms a new track only when its
    second detection matches, and ultralytics matches it at 1 - IoU x score <= 0.7 whatever the settings: a
    score of 0.25 could never confirm (SD people 40-100 px tall detected at 0.2-0.3 were dropped), nor a 0.5
    walker at 2 samples a second. The same gate as every other match (track_match_thresh) applies."""
    tracker = SegmentTracker(Settings(sample_fps=2.0, detector_conf=conf))
    segs = []
    for i in range(8):
        x = 20.0 + step_px * i
        dets = Detections(np.array([[x, 60, x + 40, 180]], np.float32), np.array([score], np.float32))
        segs += tracker.update(frame(i), dets if i >= 2 else Detections.empty())[1]
    segs += tracker.flush()
    assert len(segs) == 1, [len(s.boxes) for s in segs]
    assert [b.pts_s for b in segs[0].boxes] == [i * STEP_S for i in range(2, 8)]


def walk(tracker: SegmentTracker, starts: list[float], step_px: float, n: int, width: float = 24.0) -> list[TrackSegment]:
    """People of width `width` x 60 px starting at x = `starts`, walking right `step_px` per sample, all detected
    at 0.85 in every one of `n` samples; the segments the tracker made of them."""
    segs = []
    for i in range(n):
        xs = [x + step_px * i for x in starts]
        boxes = np.array([[x, 100, x + width, 160] for x in xs], np.float32)
        segs += tracker.update(frame(i), Detections(boxes, np.full(len(xs), 0.85, np.float32)))[1]
    return segs + tracker.flush()


def test_a_small_walker_whose_boxes_never_overlap_between_samples_is_one_track() -> None:
    """A person 60 px tall (24 px wide) in SD footage walks 26 px between samples at 2 a second, the PETS 2009
    street's pace: consecutive boxes do not overlap at all, so a plain IoU gate starts a new, never-confirmed
    track at every sample and the person is never stored (PETS at 2 samples a second: 0.70 of its confident
    detections were tracked). Boxes are matched with a buffer of half a box per side at 2 samples a second."""
    segs = walk(SegmentTracker(Settings(sample_fps=2.0, detector_conf=0.2)), [10.0], 26.0, 8)
    assert len(segs) == 1, [[b.pts_s for b in s.boxes] for s in segs]
    assert [b.pts_s for b in segs[0].boxes] == [i * STEP_S for i in range(8)]


def test_two_small_walkers_side_by_side_keep_their_own_tracks() -> None:
    """Two such people 30 px apart walking together: the buffer must not swap or merge them."""
    segs = walk(SegmentTracker(Settings(sample_fps=2.0, detector_conf=0.2)), [10.0, 40.0], 20.0, 8)
    assert len(segs) == 2
    for s in segs:
        xs = [b.xyxy[0] for b in s.boxes]
        assert len(xs) == 8 and np.allclose(np.diff(xs), 20.0), xs


@pytest.mark.slow
def test_people_on_a_real_street_at_two_samples_a_second_are_tracked() -> None:
    """PETS 2009 (480x360, people 45-75 px tall walking across), its first 40 s sampled at 2 frames a second
    through the real detector: nearly every confident detection is part of a track (stored as a track box), and
    no track jumps between people (no box of a track is far from where the track's last box was). With plain
    IoU 0.70 of the whole clip's confident detections were tracked."""
    from tests.conftest import dataset
    from vsearch.detect import PersonDetector
    from vsearch.video import probe, sample_frames

    settings = Settings()
    det = PersonDetector(settings)
    info = probe(dataset("pets2009-s2l1-vtest") / "vtest.mp4")
    conf = det.conf_for(info.resolution_wh)
    tracker = SegmentTracker(settings.model_copy(update={"detector_conf": conf}))
    segs: list[TrackSegment] = []
    confident = 0
    for f in sample_frames(info, "street", 0.0, 2.0):
        if f.pts_s >= 40.0:
            break
        d = det.detect([f.image_bgr])[0]
        confident += int((d.confidence >= conf).sum())
        segs += tracker.update(f, d)[1]
    segs += tracker.flush()
    tracked = sum(1 for s in segs for b in s.boxes if b.confidence >= conf)
    assert confident >= 150 and tracked / confident >= 0.85, (tracked, confident)
    for s in segs:
        for a, b in zip(s.boxes, s.boxes[1:]):
            h = a.xyxy[3] - a.xyxy[1]
            centre = np.hypot((a.xyxy[0] + a.xyxy[2] - b.xyxy[0] - b.xyxy[2]) / 2, (a.xyxy[1] + a.xyxy[3] - b.xyxy[1] - b.xyxy[3]) / 2)
            assert centre <= 1.5 * h * max(1.0, (b.pts_s - a.pts_s) / 0.5), (s.track_id, a, b)
