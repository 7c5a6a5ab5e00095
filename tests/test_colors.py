"""Clothing colour names on real crops of the sample clip, whose visitors' clothes are described in
sample_videos/visits_approx.csv."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.colors import COLOR_NAMES, crop_keypoints, name_colors, pixel_color_names
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.errors import InputError
from vsearch.search import SearchFilters
from vsearch.video import read_frame_at

from .conftest import SAMPLE_VIDEO


@pytest.mark.parametrize(
    "pts_s, upper, lower",
    [
        (13.3, "grey", None),  # visit 1: long grey cardigan
        (34.3, "black", "black"),  # visit 2: black hooded top and black trousers
        (60.3, "black", "black"),  # visit 3: black top and black trousers
        (105.3, "grey", "black"),  # visit 5: grey knitted cardigan, dark trousers
        (130.3, "grey", "blue"),  # visit 6: light grey shirt, blue jeans
    ],
)
def test_named_colours_of_real_visitors(pts_s: float, upper: str, lower: str | None) -> None:
    img = read_frame_at(SAMPLE_VIDEO, pts_s)
    d = PersonDetector(Settings()).detect([img], conf=0.35)[0]
    i = int(np.argmax(d.area))
    box = tuple(float(v) for v in d.xyxy[i])
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    crop = np.ascontiguousarray(img[y1:y2, x1:x2, ::-1])
    got = name_colors(crop, crop_keypoints(d.keypoints[i], box))  # type: ignore[arg-type]
    assert got[0] == upper and (lower is None or got[1] == lower)


def test_pixel_names_of_pure_colours() -> None:
    import cv2

    rgb = np.array([[[220, 30, 30], [30, 60, 200], [20, 20, 20], [240, 240, 240], [128, 128, 128], [40, 180, 40]]], np.uint8)
    names = [COLOR_NAMES[i] for i in pixel_color_names(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))[0]]
    assert names == ["red", "blue", "black", "white", "grey", "green"]


def test_unknown_colour_filter_is_refused() -> None:
    with pytest.raises(InputError, match="unknown upper-body colour"):
        SearchFilters(upper_color="tartan")


@pytest.mark.slow
def test_search_filters_by_lower_body_colour(demo_service) -> None:  # type: ignore[no-untyped-def]
    """Only visitor 6 wears blue jeans: a blue lower-body filter returns only visit 6 (124-135 s), for any query."""
    query = (SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg").read_bytes()
    result = demo_service.search(query, SearchFilters(lower_color="blue", top_k=10))
    assert result.clips
    for c in result.clips:
        assert 124 - 1.5 <= c.start_pts_s and c.end_pts_s <= 135 + 1.5
        assert all(h.sighting.lower_color == "blue" for h in c.sightings)
