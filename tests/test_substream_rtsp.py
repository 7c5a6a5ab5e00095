"""`vsearch watch --detect-url` against a real RTSP camera on loopback serving two resolutions of one picture
(Debian's GStreamer RTSP server, tests/rtsp_server.py): the sample clip at its own 768x432 as the main stream and
scaled to 320x180 as the substream (issue 29, "Camera substreams for live cameras"). People are detected on the
substream; the stored boxes, crops and clips are the main stream's. Each test runs the real CLI in its own process."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.catalog import SqliteCatalog
from vsearch.video import probe, read_range

from .conftest import SAMPLE_VIDEO, missing
from .test_live_rtsp import Camera, Watch, _each_segment_ingested_once, _gst_missing, free_port

pytestmark = pytest.mark.slow
SUB_S = 40  # seconds of the clip served as substreams: visitor 1 (6-20 s) and the start of visitor 2 (23-45 s)


def _scaled(src: Path, size_wh: tuple[int, int], seconds: float, out: Path) -> Path:
    """The first `seconds` of `src` scaled to `size_wh`, encoded as a camera's substream (H.264, 2 s GOPs)."""
    import av

    info = probe(src)
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=round(info.fps))
        s.width, s.height = size_wh
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "veryfast", "g": str(round(2 * info.fps)), "bf": "0"}
        for _, img in read_range(src, 0, round(seconds * info.fps) - 1):
            small = cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)
            c.mux(s.encode(av.VideoFrame.from_ndarray(small, format="bgr24")))
        c.mux(s.encode(None))
    return out


@pytest.fixture(scope="module")
def substreams(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("substreams")
    return {"sub": _scaled(SAMPLE_VIDEO, (320, 180), SUB_S, d / "sub.mp4"),
            "sub43": _scaled(SAMPLE_VIDEO, (320, 240), 8, d / "sub43.mp4")}  # fmt: skip


@pytest.fixture
def two_stream_camera(substreams):  # type: ignore[no-untyped-def]
    if reason := _gst_missing():
        missing(reason)
    cam = Camera(free_port(), substreams)
    cam.start()
    yield cam
    cam.kill()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box `a` with each row of `b` (xyxy)."""
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return np.asarray(inter / (area(a) + area(b) - inter), np.float64)


def _recorded_frame_at(cat: SqliteCatalog, ts_s: float) -> np.ndarray:
    """The recorded frame at absolute time `ts_s` (a track's sightings may lie in the segment after its own)."""
    v = next(v for v in cat.videos() if v.start_ts_s - 1e-3 <= ts_s < v.start_ts_s + v.frame_count / v.fps)
    return next(read_range(Path(v.path), round((ts_s - v.start_ts_s) * v.fps), 10**9))[1]


def test_people_detected_on_the_substream_are_stored_cropped_and_clipped_from_the_main_stream(  # type: ignore[no-untyped-def]
    two_stream_camera: Camera, tmp_path: Path
) -> None:
    """24 s of the camera: every sampled substream frame is paired with a main-stream frame (but at the ends); each
    stored sighting's box is in the main stream's 768x432 pixels and matches the person there (IoU with the
    detector's own box on the recorded main-stream frame at that instant), its thumbnail is cut from the main
    stream at that size, and its clip plays from the main stream's recording."""
    from vsearch.clips import clip_id_for_sighting, render_clip
    from vsearch.config import Settings
    from vsearch.detect import PersonDetector

    d = tmp_path / "d"
    cam = two_stream_camera
    sub_url = cam.url.rsplit("/", 1)[0] + "/sub"
    # one frame a second: the detector's pace on a loaded machine (the pairing is tested at every rate in test_substream.py)
    w = Watch(cam.url, d, "--detect-url", sub_url, "--segment-s", "12", "--duration-s", "24", VSEARCH_SAMPLE_FPS="1")
    code, err = w.finish(1200)
    assert code == 0, err
    _each_segment_ingested_once(w)
    summary = next(line for line in w.lines if line.startswith("detect stream: "))
    detected, dropped = (int(summary.split()[i]) for i in (2, 5))
    print("\n".join(line for line in err.splitlines() if "detect frame" in line))
    # a frame a second sampled from 24 s; one dropped at most at each end, where one stream began or ended first
    assert detected >= 20 and dropped <= 2, (summary, err)
    assert all(probe(p).resolution_wh == (768, 432) for p in w.segments()), "the main stream is what is recorded"

    cat = SqliteCatalog(d / "catalog.sqlite")
    try:
        ids = [r[0] for r in cat._q("SELECT id FROM sightings ORDER BY ts")]
        sightings = list(cat.sightings(ids).values())
        assert len(sightings) >= 3, sightings
        ious = []
        detector = PersonDetector(Settings(data_dir=d))
        for s in sightings:
            box = np.array(s.xyxy, np.float32)
            assert box[2] <= 768 + 1 and box[3] <= 432 + 1
            # the recorded main-stream frame at the sighting's instant, detected at full size by the same detector
            frame = _recorded_frame_at(cat, s.ts_s)
            found = detector.detect([frame])[0]
            ious.append(float(_iou(box, found.xyxy).max()) if len(found) else 0.0)
            thumb = cv2.imread(str(d / s.thumb_path))
            assert abs(thumb.shape[0] - (round(box[3]) - round(box[1]))) <= 2, "the crop is the main stream's pixels"
        print(f"IoU of stored boxes with the main-stream detection: {[round(x, 2) for x in ious]}")
        assert max(s.xyxy[3] - s.xyxy[1] for s in sightings) > 180, "boxes taller than the whole substream: scaled"
        assert float(np.median(ious)) >= 0.75 and min(ious) >= 0.5, ious
        settings = Settings(data_dir=d)
        clip = render_clip(cat, clip_id_for_sighting(cat, sightings[0], settings), settings)
        assert probe(clip).resolution_wh == (768, 432) and probe(clip).duration_s > 1
    finally:
        cat.close()


def test_an_unreachable_detect_stream_ends_the_watch_with_a_clear_error(two_stream_camera: Camera, tmp_path: Path) -> None:
    bad = f"rtsp://127.0.0.1:{free_port()}/sub"  # nothing listens there
    w = Watch(two_stream_camera.url, tmp_path / "d", "--detect-url", bad, VSEARCH_STREAM_RETRIES="1",
              VSEARCH_STREAM_BACKOFF_S="0.3")  # fmt: skip
    code, err = w.finish(600)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [f"error: detect stream {bad}: cannot connect to the stream after 2 attempts: [Errno 111] Connection"
                     f" refused: '{bad}'"], err  # fmt: skip
    assert "Traceback" not in err


def test_a_substream_of_another_aspect_ratio_is_refused(two_stream_camera: Camera, tmp_path: Path) -> None:
    sub = two_stream_camera.url.rsplit("/", 1)[0] + "/sub43"
    w = Watch(two_stream_camera.url, tmp_path / "d", "--detect-url", sub)
    code, err = w.finish(600)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == ["error: the detect stream is 320x240 (aspect 1.333) but the main stream is 768x432 (aspect 1.778):"
                     " boxes cannot be mapped from one to the other; use a substream with the main stream's aspect"
                     " ratio"], err  # fmt: skip
    assert "Traceback" not in err
    cat = SqliteCatalog(tmp_path / "d" / "catalog.sqlite")
    try:
        assert cat.count_sightings() == 0
    finally:
        cat.close()
