"""vsearch.substream: pairing a camera's substream frames with its main stream's by time, mapping boxes between
their resolutions, refusing a substream of another picture shape. The RTSP end-to-end tests are
tests/test_substream_rtsp.py."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from vsearch.errors import VideoError
from vsearch.substream import FramePairer, Paired, check_same_shape, scale_detections
from vsearch.types import Detections


def _frame(ts_s: float, wh: tuple[int, int]) -> np.ndarray:
    """A frame that carries its own time (in its first pixels), so a pair can be checked by content."""
    img = np.zeros((wh[1], wh[0], 3), np.uint8)
    img[0, :8] = np.frombuffer(np.float64(ts_s).tobytes(), np.uint8)[:, None]
    return img


def _ts_of(img: np.ndarray) -> float:
    return float(np.frombuffer(img[0, :8, 0].tobytes(), np.float64)[0])


def _play(pairer: FramePairer, main: list[float], sub: list[float]) -> None:
    """Feed both streams in order of arrival (main frames a little late: encoding), as their threads would."""
    events = sorted([(t + 0.3, 0, t) for t in main] + [(t, 1, t) for t in sub])
    for _, kind, t in events:
        (pairer.main if kind == 0 else pairer.detect)(t, _frame(t, (64, 36) if kind == 0 else (32, 18)))


@pytest.mark.parametrize(
    "main_fps, sub_fps, offset_s",
    [(25, 25, 0.0), (25, 10, 0.013), (10, 25, -0.031), (25, 5, 0.37), (30, 15, 0.234)],
)
def test_each_substream_frame_is_paired_with_the_main_frame_of_its_instant(main_fps, sub_fps, offset_s) -> None:  # type: ignore[no-untyped-def]
    """Different frame rates and a start offset between the streams: every substream frame is paired, with the
    main-stream frame nearest it (at most half a main frame interval away), in order, and none is dropped."""
    out: list[Paired] = []
    pairer = FramePairer(out.append)
    main = [100.0 + offset_s + k / main_fps for k in range(10 * main_fps)]
    sub = [100.5 + k / sub_fps for k in range(8 * sub_fps)]
    _play(pairer, main, sub)
    assert len(out) == len(sub) and pairer.dropped == 0
    for p, t in zip(out, sub):
        nearest = min(main, key=lambda m: abs(m - t))
        assert p.detect_ts_s == t and p.ts_s == nearest == _ts_of(p.main_bgr) and _ts_of(p.detect_bgr) == t
        assert abs(p.ts_s - t) <= 0.5 / main_fps + 1e-9
        assert p.main_bgr.shape[1] == 64 and p.detect_bgr.shape[1] == 32


def test_substream_frames_while_the_main_stream_drops_out_are_not_detected(caplog) -> None:  # type: ignore[no-untyped-def]
    """The main stream has no frames from 103 to 108 s (a dropout, reconnected): the substream frames of that
    stretch are dropped, logged once, and counted; pairing resumes after it. No pair is ever further apart than
    the tolerance."""
    out: list[Paired] = []
    pairer = FramePairer(out.append)
    main = [100 + k / 25 for k in range(10 * 25) if not 103 <= 100 + k / 25 < 108]
    sub = [100 + k / 2 for k in range(20)]
    with caplog.at_level(logging.WARNING, "vsearch.substream"):
        _play(pairer, main, sub)
    lost = [t for t in sub if 103 + 0.1 < t < 108 - 0.1]
    assert pairer.dropped == len(lost) == 9 and len(out) == len(sub) - len(lost)
    assert all(abs(p.ts_s - p.detect_ts_s) <= pairer.tolerance() for p in out)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("detect frame at 103.500 not detected: no main-stream frame within 0.100 s")
    assert warnings[1] == "detect frames paired with the main stream again (9 dropped so far)"


def test_a_main_stream_that_delivers_nothing_drops_what_waits(caplog) -> None:  # type: ignore[no-untyped-def]
    """The main stream stalls (nothing arrives for `stall_s`): waiting substream frames are dropped, not kept
    until it returns, and a substream running ahead by more than `max_pending` frames loses its oldest."""
    out: list[Paired] = []
    pairer = FramePairer(out.append, stall_s=0.2, max_pending=5)
    for k in range(8):
        pairer.detect(100 + k / 2, _frame(100 + k / 2, (32, 18)))
    assert pairer.dropped == 3 and not out  # more than 5 waiting
    time.sleep(0.3)
    with caplog.at_level(logging.WARNING, "vsearch.substream"):
        pairer.detect(104, _frame(104, (32, 18)))
    assert pairer.dropped == 9 and not out
    pairer.main(104.01, _frame(104.01, (64, 36)))
    pairer.detect(104.5, _frame(104.5, (32, 18)))
    pairer.main(104.51, _frame(104.51, (64, 36)))
    assert [p.ts_s for p in out] == [104.51]


@pytest.mark.parametrize(
    "detect_wh, main_wh, refused",
    [((640, 360), (1920, 1080), False), ((704, 396), (1920, 1080), False), ((320, 180), (768, 432), False),
     ((640, 352), (1920, 1080), False), ((640, 480), (1920, 1080), True), ((704, 576), (1920, 1080), True),
     ((360, 640), (1920, 1080), True)],
)  # fmt: skip
def test_a_substream_of_another_shape_is_refused(detect_wh, main_wh, refused) -> None:  # type: ignore[no-untyped-def]
    if refused:
        with pytest.raises(VideoError, match=r"the detect stream is \d+x\d+ \(aspect .*\) but the main stream is"):
            check_same_shape(detect_wh, main_wh)
    else:
        check_same_shape(detect_wh, main_wh)


def test_boxes_and_keypoints_are_mapped_to_the_main_streams_pixels() -> None:
    kpts = np.zeros((2, 17, 3), np.float32)
    kpts[:, :, 0], kpts[:, :, 1], kpts[:, :, 2] = 10, 20, 0.9
    dets = Detections(np.array([[10, 20, 30, 90], [0, 0, 640, 360]], np.float32), np.array([0.9, 0.5], np.float32), kpts)
    out = scale_detections(dets, (640, 360), (1920, 1080))
    np.testing.assert_allclose(out.xyxy, [[30, 60, 90, 270], [0, 0, 1920, 1080]])
    np.testing.assert_allclose(out.keypoints[:, :, :2], np.broadcast_to([30, 60], (2, 17, 2)))
    np.testing.assert_allclose(out.keypoints[:, :, 2], 0.9)
    np.testing.assert_array_equal(out.confidence, dets.confidence)
    assert dets.xyxy[0, 2] == 30, "the substream's detections are left as they were"
