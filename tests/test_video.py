from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vsearch.errors import VideoError
from vsearch.video import probe, read_frame_at, read_range, sample_frames

from .conftest import SAMPLE_VIDEO, dataset


def test_probe_reads_the_sample_clip() -> None:
    info = probe(SAMPLE_VIDEO)
    assert (info.kind, info.fps, info.frame_count, info.resolution_wh) == ("file", 10.0, 1394, (768, 432))
    assert info.duration_s == pytest.approx(139.4)


def test_sampling_by_time_gives_absolute_timestamps() -> None:
    info = probe(SAMPLE_VIDEO)
    frames = list(sample_frames(info, "cam-01", 1_000.0, sample_fps=2.0))
    assert len(frames) == 279  # 139.4 s at 2 per second, first frame of each half second
    pts = np.array([f.pts_s for f in frames])
    assert np.allclose(np.diff(pts), 0.5)
    assert all(f.ts_s == pytest.approx(1_000.0 + f.pts_s) and f.camera_id == "cam-01" for f in frames)
    assert frames[10].image_bgr.shape == (432, 768, 3)


def test_resumed_sampling_continues_the_same_grid() -> None:
    info = probe(SAMPLE_VIDEO)
    full = [f.index for f in sample_frames(info, "c", 0.0, 2.0)]
    resumed = [f.index for f in sample_frames(info, "c", 0.0, 2.0, from_pts_s=60.0)]
    assert resumed == [i for i in full if i / 10.0 >= 60.0]


def test_folder_of_frames_uses_seqinfo_frame_rate() -> None:
    seq = dataset("mot17-mini") / "train" / "MOT17-09-FRCNN" / "img1"
    info = probe(seq)
    assert (info.kind, info.fps, info.frame_count, info.resolution_wh) == ("frames", 30.0, 4, (1920, 1080))
    frames = list(sample_frames(info, "mot", 0.0, sample_fps=30.0))
    assert [f.index for f in frames] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a video\n" * 50), "not a readable video"),
        (lambda p: p.write_bytes(SAMPLE_VIDEO.read_bytes()[: SAMPLE_VIDEO.stat().st_size // 2]), "truncated"),
    ],
)
def test_bad_videos_are_refused_naming_the_file(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "cam-01" / "bad.mp4"
    bad.parent.mkdir()
    make(bad)
    with pytest.raises(VideoError, match=reason) as e:
        probe(bad)
    assert str(bad) in str(e.value)


def test_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    empty_dir = tmp_path / "frames"
    empty_dir.mkdir()
    shutil.copy(SAMPLE_VIDEO, empty_dir / "not-a-frame.mp4")
    with pytest.raises(VideoError, match="no image frames"):
        probe(empty_dir)


def test_ranges_of_a_file_are_read_back_frame_exact() -> None:
    """read_range seeks to a frame index and gives the same pixels as decoding the whole file in order; a range
    past the end stops at the last frame."""
    info = probe(SAMPLE_VIDEO)
    ranges = [(0, 2), (600, 603), (1390, 1400)]
    wanted = {i for a, b in ranges for i in range(a, b + 1)}
    in_order = {f.index: f.image_bgr for f in sample_frames(info, "c", 0.0, info.fps) if f.index in wanted}
    for first, last in ranges:
        got = list(read_range(SAMPLE_VIDEO, first, last))
        assert [i for i, _ in got] == list(range(first, min(last, info.frame_count - 1) + 1))
        assert all(np.array_equal(img, in_order[i]) for i, img in got)


def test_a_range_of_a_frame_folder_and_single_frames_are_read() -> None:
    seq = dataset("mot17-mini") / "train" / "MOT17-09-FRCNN" / "img1"
    info = probe(seq)
    got = list(read_range(seq, 1, 2))
    want = [f for f in sample_frames(info, "mot", 0.0, info.fps) if f.index in (1, 2)]
    assert [i for i, _ in got] == [1, 2]
    assert all(np.array_equal(img, f.image_bgr) for (_, img), f in zip(got, want))
    assert np.array_equal(read_frame_at(seq, 2 / info.fps), want[1].image_bgr)
