"""Grouping search hits into clips, over a real (small) catalog holding the tracks' sampled boxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vsearch.catalog import Catalog, Checkpoint, SqliteCatalog
from vsearch.config import Settings
from vsearch.search import group_clips, spread_cameras
from vsearch.types import SearchHit, Sighting

START_TS_S = 1_772_373_600.0  # 2026-03-01T14:00:00Z
BOX = (10.0, 20.0, 50.0, 120.0)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = SqliteCatalog(tmp_path / "catalog.sqlite")
    yield cat
    cat.close()


def add_video(catalog: Catalog, name: str, tracks: dict[int, np.ndarray]) -> int:
    """A video whose tracks were sampled at the given times (seconds into the video)."""
    v = catalog.begin_video(
        "lobby", f"/footage/{name}.mp4", name, START_TS_S, 25.0, 25 * 60, (640, 480), "test-embedder"
    )
    boxes = [(tid, float(t), BOX, 0.9) for tid, times in tracks.items() for t in times]
    catalog.commit_chunk(v.id, Checkpoint([], boxes, processed_until_s=60.0, frames_sampled=len(boxes), done=True))
    return v.id


def hit(video_id: int, track_id: int, pts_s: float, score: float, sighting_id: int) -> SearchHit:
    s = Sighting(
        sighting_id, "lobby", video_id, "/footage/v.mp4", track_id, START_TS_S + pts_s, pts_s, BOX, 0.9, ""
    )
    return SearchHit(s, score)


def test_hits_group_into_clips_of_continuous_presence_best_first(catalog: Catalog) -> None:
    # track 1 is present 0..5 s and again 20..25 s; track 2 is present 2..6 s; the other video's track 1 0..2 s
    v1 = add_video(
        catalog, "a", {1: np.r_[np.arange(0, 5.5, 0.5), np.arange(20, 25.5, 0.5)], 2: np.arange(2, 6.5, 0.5)}
    )
    v2 = add_video(catalog, "b", {1: np.arange(0, 2.5, 0.5)})
    hits = [
        hit(v1, 1, 1.0, 0.60, 11),
        hit(v1, 1, 4.0, 0.80, 12),  # same presence as sighting 11: one clip
        hit(v1, 1, 22.0, 0.90, 13),  # same track, 16 s later (> clip_gap_s): a clip of its own
        hit(v1, 2, 3.0, 0.70, 14),  # another track at the same time: a clip of its own
        hit(v2, 1, 1.0, 0.50, 15),  # the same track id in another video: a clip of its own
    ]
    clips = group_clips(hits, catalog, Settings(clip_gap_s=4.0))
    assert [c.id for c in clips] == [
        f"{v1}-1-20000-25000",
        f"{v1}-1-0-5000",
        f"{v1}-2-2000-6000",
        f"{v2}-1-0-2000",
    ]
    assert [c.score for c in clips] == [0.90, 0.80, 0.70, 0.50]
    merged = clips[1]
    assert [h.sighting.id for h in merged.sightings] == [12, 11] and merged.best.id == 12  # best first
    assert (merged.start_pts_s, merged.end_pts_s) == (0.0, 5.0)
    assert (merged.start_ts_s, merged.end_ts_s, merged.duration_s) == (START_TS_S, START_TS_S + 5.0, 5.0)
    assert (merged.video_id, merged.track_id, merged.camera_id) == (v1, 1, "lobby")


def test_no_hits_no_clips(catalog: Catalog) -> None:
    assert group_clips([], catalog, Settings()) == []


def test_each_camera_close_to_the_top_is_listed_before_second_clips(catalog: Catalog) -> None:
    """Seven clips on camera A at 0.95..0.81 and one on B at 0.79: B comes second with a 0.2 margin; a camera
    further than the margin below the top keeps its place; margin 0 is pure score order."""
    from dataclasses import replace

    v = add_video(catalog, "a", {t: np.arange(0, 2.5, 0.5) for t in range(1, 10)})
    hits = [hit(v, t, 1.0, 0.95 - 0.02 * t, 100 + t) for t in range(1, 8)] + [hit(v, 8, 1.0, 0.79, 108), hit(v, 9, 1.0, 0.5, 109)]
    clips = group_clips(hits, catalog, Settings())
    clips = [replace(c, camera_id="B" if c.track_id == 8 else "C" if c.track_id == 9 else "A") for c in clips]
    order = [(c.camera_id, round(c.score, 2)) for c in spread_cameras(clips, 0.2)]
    assert order[:3] == [("A", 0.93), ("B", 0.79), ("A", 0.91)] and order[-1] == ("C", 0.5)
    assert [c.score for c in spread_cameras(clips, 0.0)] == sorted((c.score for c in clips), reverse=True)
    assert len(spread_cameras(clips, 0.2)) == len(clips)
