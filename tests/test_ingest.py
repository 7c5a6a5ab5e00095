"""Ingest planning: which sources a path names, which camera each belongs to, and when each recording started."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.errors import InputError
from vsearch.ingest import IngestItem, plan_ingest
from vsearch.video import write_mp4

T0 = 1_772_373_600.0  # 2026-03-01T14:00:00Z


def video(path: Path, seconds: float, fps: float = 10.0) -> Path:
    """A real, small H.264 file of `seconds` (a whole number of frames at `fps`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, ((i, np.full((48, 64, 3), i % 255, np.uint8)) for i in range(round(seconds * fps))), fps)
    return path


def frames(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), np.full((48, 64, 3), 40 * i, np.uint8))
    return folder


def plan(
    paths: list[Path], root: Path, camera: str | None = None, start: float | None = T0
) -> list[tuple[str, str, float]]:
    """(path relative to root, camera, start seconds after T0) of each planned item."""
    return [
        (str(i.path.relative_to(root)), i.camera_id, round(i.start_ts_s - T0, 3))
        for i in plan_ingest(paths, camera, start)
    ]


def test_a_file_takes_the_given_camera_else_its_folder_name(tmp_path: Path) -> None:
    f = video(tmp_path / "cam-7" / "a.mp4", 1.0)
    assert plan([f], tmp_path, "door") == [("cam-7/a.mp4", "door", 0.0)]
    assert plan([f], tmp_path) == [("cam-7/a.mp4", "cam-7", 0.0)]
    assert plan_ingest([f], None, T0) == [IngestItem(f, "cam-7", T0)]


def test_a_folder_of_frames_is_one_source(tmp_path: Path) -> None:
    seq = frames(tmp_path / "cam-2" / "seq01")
    assert plan([seq], tmp_path) == [("cam-2/seq01", "cam-2", 0.0)]


def test_a_camera_folder_holds_consecutive_recordings_in_name_order(tmp_path: Path) -> None:
    cam = tmp_path / "cam-1"
    video(cam / "0002.mp4", 2.0)
    video(cam / "0001.mp4", 1.5)
    video(cam / "0003.mkv", 1.0)
    (cam / "notes.txt").write_text("not footage")  # ignored inside a folder
    assert plan([cam], tmp_path) == [
        ("cam-1/0001.mp4", "cam-1", 0.0),
        ("cam-1/0002.mp4", "cam-1", 1.5),
        ("cam-1/0003.mkv", "cam-1", 3.5),
    ]


def test_a_folder_of_camera_folders_plans_each_camera_from_the_start(tmp_path: Path) -> None:
    root = tmp_path / "site"
    video(root / "north" / "b.mp4", 1.0)
    video(root / "north" / "a.mp4", 2.5)
    video(root / "south" / "x.mp4", 1.0)
    frames(root / "west" / "seq")
    assert plan([root], root) == [
        ("north/a.mp4", "north", 0.0),
        ("north/b.mp4", "north", 2.5),
        ("south/x.mp4", "south", 0.0),
        ("west/seq", "west", 0.0),
    ]


def test_without_a_start_a_file_ends_at_its_modification_time(tmp_path: Path) -> None:
    a = video(tmp_path / "cam" / "a.mp4", 2.0)
    b = video(tmp_path / "cam" / "b.mp4", 1.5)
    os.utime(a, (T0 + 100, T0 + 100))
    os.utime(b, (T0 + 50, T0 + 50))  # not consecutive: each file keeps its own time
    assert plan([tmp_path / "cam"], tmp_path, start=None) == [
        ("cam/a.mp4", "cam", 98.0),
        ("cam/b.mp4", "cam", 48.5),
    ]


def test_an_unreadable_video_is_planned_and_left_to_the_ingest_to_report(tmp_path: Path) -> None:
    bad = tmp_path / "cam" / "0001.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"not a video")
    video(tmp_path / "cam" / "0002.mp4", 1.0)
    assert plan([tmp_path / "cam"], tmp_path) == [("cam/0001.mp4", "cam", 0.0), ("cam/0002.mp4", "cam", 0.0)]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "no such file or folder"),
        (lambda d: (d / "notes.txt", (d / "notes.txt").write_text("x"))[0], r"not a video file \(\.txt\) nor a folder"),
        (lambda d: (d / "README", (d / "README").write_text("x"))[0], r"not a video file \(no extension\)"),
        (lambda d: (d / "empty", (d / "empty").mkdir())[0], "holds no video files or frame folders"),
        (lambda d: (d / "docs", (d / "docs" / "cam").mkdir(parents=True), (d / "docs" / "cam" / "a.txt").write_text("x"))[0],
         "holds no video files or frame folders"),
    ],
)  # fmt: skip
def test_paths_without_footage_are_refused_naming_the_path(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as e:
        plan_ingest([path], None, T0)
    assert str(path) in str(e.value)
