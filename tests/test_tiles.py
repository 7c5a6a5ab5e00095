"""Tiles and the far band for small people in HD (issue 29): the grid covers the frame with overlap, and on real MOT17 1080p frames
the merged detections hold each person once, in frame coordinates, with every whole-frame person kept."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.footage import iou
from vsearch.config import Settings
from vsearch.detect import PersonDetector, far_band, tile_grid
from vsearch.types import Detections

from .conftest import dataset


@pytest.mark.parametrize(
    "frame_wh, tile_px, n_tiles",
    [((1920, 1080), 640, 8), ((1280, 720), 640, 6), ((640, 360), 640, 1), ((1920, 1080), 320, 32)],
)
def test_tiles_cover_the_frame_and_overlap(frame_wh: tuple[int, int], tile_px: int, n_tiles: int) -> None:
    tiles = tile_grid(frame_wh, tile_px, tile_px)
    assert len(tiles) == n_tiles
    covered = np.zeros(frame_wh[::-1], np.int32)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= frame_wh[0] and 0 <= t.y0 < t.y1 <= frame_wh[1]
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert covered.min() >= 1
    xs = sorted({t.x0 for t in tiles})
    # neighbours overlap by at least a fifth of a tile: a person that short lies whole in some tile
    assert all(b - a <= tile_px - tile_px // 5 for a, b in zip(xs, xs[1:]))


@pytest.fixture(scope="module")
def mot17_frame() -> np.ndarray:
    return cv2.imread(str(dataset("mot17-mini") / "train" / "MOT17-04-FRCNN" / "img1" / "000001.jpg"))


def test_tiles_merge_into_one_box_per_person_on_a_real_frame(mot17_frame: np.ndarray, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, detector_tiles=True)
    det = PersonDetector(settings)
    h, w = mot17_frame.shape[:2]
    whole = PersonDetector(Settings(data_dir=tmp_path)).detect([mot17_frame], conf=0.35)[0]
    merged = det.detect([mot17_frame], conf=0.35)[0]
    tiles = det.tiles_for((w, h))
    assert len(tiles) == 8
    # the tiles add people (MOT17-04 is a crowd seen from high up: many are under 100 px)
    assert len(merged) > len(whole)
    # one box per person: no two merged boxes overlap as much as the NMS allows
    m = iou(merged.xyxy, merged.xyxy)
    np.fill_diagonal(m, 0)
    assert m.max() <= 0.7  # the whole pass's own NMS; tile boxes join only below 0.5
    # in frame coordinates: inside the frame, and every whole-frame person is still there (or a better box of him)
    assert (merged.xyxy[:, [0, 1]] >= 0).all() and (merged.xyxy[:, 2] <= w).all() and (merged.xyxy[:, 3] <= h).all()
    assert (iou(whole.xyxy, merged.xyxy).max(axis=1) > 0.7).all()
    # against MOT17's ground truth: no annotated person carries two merged boxes (one whole, one cut by a tile)
    from benchmarks.bench_recall import ground_truth

    gt = ground_truth(dataset("mot17-mini") / "train" / "MOT17-04-FRCNN", 1.0)[1][0]
    assert ((iou(gt, merged.xyxy) >= 0.5).sum(axis=1) <= 1).all()
    # and it finds more of them than the whole frame alone
    assert (iou(gt, merged.xyxy).max(axis=1) >= 0.5).sum() > (iou(gt, whole.xyxy).max(axis=1) >= 0.5).sum()


def _boxes(rows: list[tuple[float, float, float]]) -> Detections:
    """Detections of persons given as (head row, height, confidence), side by side."""
    xyxy = np.array([[100 * i, y, 100 * i + h / 2.5, y + h] for i, (y, h, _) in enumerate(rows)], np.float32).reshape(-1, 4)
    conf = np.array([c for *_, c in rows], np.float32)
    return Detections(xyxy, conf, np.zeros((len(rows), 17, 3), np.float32))


@pytest.mark.parametrize(
    "persons, band_rows",
    [
        ([], None),  # nobody found: no band
        ([(300, 600, 0.9)], None),  # only near people (the whole-frame pass sees them well)
        ([(450, 120, 0.2)], None),  # too unsure to place a band on
        # around the median head row (460) of the three smallest, 0.35 of the band above it
        ([(450, 120, 0.9), (460, 110, 0.8), (470, 130, 0.9), (600, 250, 0.9)], (392, 392 + 192)),
        ([(20, 100, 0.9)], (0, 192)),  # held inside the frame
        ([(1050, 40, 0.9)], (1080 - 192, 1080)),
    ],
)
def test_far_band_lies_around_the_heads_of_the_smallest_persons(persons, band_rows) -> None:  # type: ignore[no-untyped-def]
    band = far_band(_boxes(persons), (1920, 1080), 192, 1.5)
    assert (None if band is None else (band.y0, band.y1)) == band_rows
    if band is not None:
        assert (band.x0, band.x1, band.imgsz) == (0, 1920, 2880)  # the whole width, 1.5x the frame's pixels


def test_far_band_finds_small_people_the_whole_frame_misses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MOT17-10's first frame (1080p, a street at dusk): people 50-100 px tall stand near the horizon; the
    whole-frame pass at 1280 px finds none of them, the far band finds them, and every whole-frame person stays."""
    from benchmarks.bench_recall import ground_truth, matched

    seq = dataset("mot17-mini") / "train" / "MOT17-10-FRCNN"
    frame = cv2.imread(str(seq / "img1" / "000001.jpg"))
    gt = ground_truth(seq, 1.0)[1][0]
    small = gt[(gt[:, 3] - gt[:, 1] >= 50) & (gt[:, 3] - gt[:, 1] < 100)]
    assert len(small) >= 5
    whole = PersonDetector(Settings(data_dir=tmp_path)).detect([frame], conf=0.1)[0]
    banded = PersonDetector(Settings(data_dir=tmp_path, detector_far_band=True)).detect([frame], conf=0.1)[0]
    assert matched(small, whole.xyxy).sum() == 0
    assert matched(small, banded.xyxy).sum() >= 3
    assert (iou(whole.xyxy, banded.xyxy).max(axis=1) > 0.7).all()
    assert ((iou(gt, banded.xyxy) >= 0.5).sum(axis=1) <= 1).all()  # one box per person


def test_far_band_leaves_frames_detected_at_their_own_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An SD frame is detected at its own scale or larger: the band adds nothing and costs nothing there."""
    frame = cv2.resize(cv2.imread(str(dataset("mot17-mini") / "train" / "MOT17-10-FRCNN" / "img1" / "000001.jpg")), (640, 360))
    whole = PersonDetector(Settings(data_dir=tmp_path)).detect([frame], conf=0.1)[0]
    banded = PersonDetector(Settings(data_dir=tmp_path, detector_far_band=True)).detect([frame], conf=0.1)[0]
    assert np.array_equal(whole.xyxy, banded.xyxy)
