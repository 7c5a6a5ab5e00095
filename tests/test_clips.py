"""A clip's span: the run of a track's sampled boxes around a sighting with no gap over clip_gap_s."""

from __future__ import annotations

import pytest

from vsearch.clips import CLIP_MAX_S, clip_span, parse_clip_id
from vsearch.config import Settings
from vsearch.errors import InputError

SETTINGS = Settings(clip_gap_s=4.0)


def boxes_at(*times: float) -> list[tuple[float, tuple[float, float, float, float], float]]:
    return [(t, (0.0, 0.0, 10.0, 20.0), 0.9) for t in times]


@pytest.mark.parametrize(
    "times, pts_s, span",
    [
        ((0, 1, 2, 3, 10, 11), 1.0, (0, 3)),  # the run around the sighting, not the later one
        ((0, 1, 2, 3, 10, 11), 10.5, (10, 11)),
        ((0, 1, 2, 3, 10, 11), 3.0, (0, 3)),  # a sighting on the last box of a run
        ((0, 4), 0.0, (0, 4)),  # a gap of exactly clip_gap_s still joins
        ((0, 4.01), 0.0, (0, 0)),  # a longer one does not
        ((5, 6), 4.0, (4, 6)),  # a sighting before the first box stretches the span to include it
        ((), 7.0, (7, 7)),  # a track without boxes: the instant itself
        (tuple(range(301)), 150.0, (150 - CLIP_MAX_S / 2, 150 + CLIP_MAX_S / 2)),  # at most CLIP_MAX_S
    ],
)
def test_clip_span(times: tuple[float, ...], pts_s: float, span: tuple[float, float]) -> None:
    assert clip_span(boxes_at(*times), pts_s, SETTINGS) == span


@pytest.mark.parametrize(
    "clip_id, parsed, error",
    [
        ("3-12-45000-61500", (3, 12, 45.0, 61.5), None),
        ("3-12-0-0", (3, 12, 0.0, 0.0), None),
        ("3-12-61500-45000", None, "invalid time range"),  # ends before it starts
        (f"3-12-0-{int((CLIP_MAX_S + 2) * 1000)}", None, "invalid time range"),  # longer than a clip can be
        ("3-12-45000", None, "expected a clip id"),
        ("../../etc/passwd", None, "expected a clip id"),
        ("3-12-1e3-2e3", None, "expected a clip id"),
    ],
)
def test_parse_clip_id(clip_id: str, parsed: tuple | None, error: str | None) -> None:
    if error is not None:
        with pytest.raises(InputError, match=error):
            parse_clip_id(clip_id)
    else:
        assert parse_clip_id(clip_id) == parsed
