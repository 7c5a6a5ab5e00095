"""Live recording: a stream becomes H.264 segment files with absolute start times."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.errors import VideoError
from vsearch.record import record_stream
from vsearch.video import probe

from .conftest import SAMPLE_VIDEO


def test_a_stream_is_recorded_into_playable_timed_segments(tmp_path: Path) -> None:
    """OpenCV opens the sample file like a stream; 25 s of it become three H.264 segments of <= 10 s."""
    import time

    import av

    t0 = time.time()
    segs = list(record_stream(str(SAMPLE_VIDEO), tmp_path / "rec", segment_s=10.0, max_s=25.0))
    assert [round(s.duration_s) for s in segs] == [10, 10, 5]
    assert segs[0].start_ts_s == pytest.approx(t0, abs=5.0)
    assert segs[1].start_ts_s - segs[0].start_ts_s == pytest.approx(10.0, abs=0.2)
    for s in segs:
        with av.open(str(s.path)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
        assert probe(s.path).frame_count == round(s.duration_s * 10)
    assert not list((tmp_path / "rec").glob(".rec.*")), "no partial files left behind"


def test_an_unopenable_stream_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="cannot open the stream"):
        list(record_stream(str(tmp_path / "no-camera-here.mp4"), tmp_path / "rec"))
