"""probe() counts frames by demuxing, not from the header: an MPEG-1 program stream (.mpg, as older CCTV
recorders write) whose clock restarts part-way through has a header duration of its last stretch only."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from vsearch.ingest import plan_ingest
from vsearch.video import probe

from .conftest import SAMPLE_VIDEO


def _mpeg1_piece(out: Path, from_s: float, to_s: float, bit_rate: int) -> None:
    """The sample clip's frames from_s..to_s as MPEG-1 video in an MPEG program stream (played at 25 fps)."""
    with av.open(str(SAMPLE_VIDEO)) as src, av.open(str(out), "w", format="mpeg") as dst:
        s = dst.add_stream("mpeg1video", rate=25)  # MPEG-1 allows 23.976..60 fps only, not the sample's 10
        s.width, s.height, s.pix_fmt, s.bit_rate = 768, 432, "yuv420p", bit_rate
        for f in src.decode(video=0):
            if f.time is not None and from_s <= f.time < to_s:
                dst.mux(s.encode(av.VideoFrame.from_ndarray(f.to_ndarray(format="bgr24"), format="bgr24")))
        dst.mux(s.encode(None))


@pytest.fixture(scope="module")
def cctv_mpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recordings appended into one .mpg, as a DVR that restarts its clock leaves them: 300 + 100 frames.
    The second piece is over FFmpeg's 250 KB end-of-file window, so the header sees its 4 s only."""
    d = tmp_path_factory.mktemp("mpg")
    _mpeg1_piece(d / "a.mpg", 0.0, 30.0, 1_000_000)
    _mpeg1_piece(d / "b.mpg", 30.0, 40.0, 4_000_000)
    out = d / "cam-old" / "20240101-1200.mpg"
    out.parent.mkdir()
    out.write_bytes((d / "a.mpg").read_bytes() + (d / "b.mpg").read_bytes())
    return out


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_an_mpeg1_file_counts_every_frame_that_decodes(cctv_mpg: Path) -> None:
    decoded = _decoded_frames(cctv_mpg)
    assert decoded == 400
    info = probe(cctv_mpg)
    assert (info.fps, info.frame_count) == (25.0, decoded)
    assert info.duration_s == pytest.approx(16.0)


def test_the_next_file_of_the_camera_starts_where_the_mpeg1_file_ends(cctv_mpg: Path, tmp_path: Path) -> None:
    nxt = cctv_mpg.parent / "20240101-1300.mp4"
    nxt.symlink_to(SAMPLE_VIDEO)
    try:
        items = plan_ingest([cctv_mpg.parent], None, 1_000.0)
    finally:
        nxt.unlink()
    assert [(i.path.name, i.start_ts_s) for i in items] == [("20240101-1200.mpg", 1_000.0), ("20240101-1300.mp4", 1_016.0)]


def test_a_truncated_mp4_is_still_refused(tmp_path: Path) -> None:
    """Counting by demuxing keeps the header as the promise a truncated file breaks."""
    from vsearch.errors import VideoError

    bad = tmp_path / "cut.mp4"
    data = SAMPLE_VIDEO.read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoError, match="truncated"):
        probe(bad)
