"""Decoding only what the sampled frames need (issue 29): the same frames, pixel for pixel, as decoding every
frame, on the sample clip (B-frames, 1 s GOPs) and on a file encoded as an IP camera encodes (no B-frames, a
fixed 2 s GOP), at sampling rates below, at and above the GOP rate, and when an ingest resumes mid-file (at a bucket boundary, as it does); and the
same sightings from an ingest either way."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.config import Settings
from vsearch.ingest import IngestItem
from vsearch.service import VSearch
from vsearch.video import probe, sample_frames

from .conftest import SAMPLE_VIDEO, sample_excerpt


def every_frame(path: Path) -> list[np.ndarray]:
    """Every frame of a file, decoded in order by OpenCV (the reference)."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of the sample clip at 25 fps, 384x216, encoded as a camera does (bench_hd.make_camera_file)."""
    from benchmarks.bench_hd import make_camera_file

    out = tmp_path_factory.mktemp("cam") / "camera.mp4"
    return make_camera_file(SAMPLE_VIDEO, 30.0, 12.0, (384, 216), 300_000, 2.0, out)


@pytest.mark.parametrize("sample_fps, from_pts_s", [(2.0, 0.0), (0.5, 0.0), (0.3, 0.0), (0.1, 0.0), (2.0, 5.5), (25.0, 0.0)])
@pytest.mark.parametrize("which", ["sample clip", "camera file"])
def test_planned_decoding_gives_the_frames_of_decoding_every_frame(
    which: str, sample_fps: float, from_pts_s: float, camera_file: Path, tmp_path: Path
) -> None:
    path = sample_excerpt(tmp_path / "clip.mp4", 25.0) if which == "sample clip" else camera_file
    info = probe(path)
    reference = every_frame(path)
    got = list(sample_frames(info, "c", 0.0, sample_fps, from_pts_s=from_pts_s))
    # the sampling grid: the first frame of each 1/sample_fps bucket, from from_pts_s on
    buckets = [int(i / info.fps * sample_fps + 1e-6) for i in range(len(reference))]
    want = [i for i in range(len(reference)) if (i == 0 or buckets[i] != buckets[i - 1]) and i / info.fps >= from_pts_s - 1e-6]
    assert [f.index for f in got] == want
    for f in got:
        assert np.array_equal(f.image_bgr, reference[f.index]), f"frame {f.index} differs"


def test_an_ingest_stores_the_same_sightings_with_planned_decoding(tmp_path: Path) -> None:
    """The same bytes as .mp4 (planned decoding, PyAV) and as .avi (OpenCV decodes every frame)."""
    clip = sample_excerpt(tmp_path / "clip.mp4", 40.0)
    as_avi = tmp_path / "clip.avi"
    shutil.copyfile(clip, as_avi)
    rows = []
    for path in (clip, as_avi):
        svc = VSearch(Settings(data_dir=tmp_path / f"data-{path.suffix[1:]}"))
        r = svc.ingest([IngestItem(path, "cam", 0.0)])[0]
        assert r.status == "ingested", r.error
        rows.append(sorted(svc.catalog._q("SELECT track_id, pts, x1, y1, x2, y2, confidence FROM sightings")))  # type: ignore[attr-defined]
        svc.close()
    assert rows[0] and rows[0] == rows[1]
