"""Clothing colour names on real crops of the sample clip, whose visitors' clothes are described in
sample_videos/visits_approx.csv."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vsearch.colors import COLOR_NAMES, crop_keypoints, name_colors, pixel_color_names
from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.errors import InputError
from vsearch.search import SearchFilters
from vsearch.video import probe, sample_frames

from .conftest import SAMPLE_VIDEO, visits


@pytest.fixture(scope="module")
def frames_1fps() -> dict[int, np.ndarray]:
    """The sample clip's frames, one per second, by whole second."""
    return {round(f.pts_s): f.image_bgr for f in sample_frames(probe(SAMPLE_VIDEO), "c", 0.0, 1.0)}


def visit_colours(
    frames: dict[int, np.ndarray], start_s: float, end_s: float, n: int = 7
) -> list[tuple[str, str]]:
    """(upper, lower) names of the largest detected person in n frames spread over the middle of a visit (2 s in
    from each approximate end, so the visitor is fully in view whatever the +-1 s of the visit table)."""
    times = np.linspace(start_s + 2, end_s - 2, n).round().astype(int)
    images = [frames[int(t)] for t in times]
    names = []
    for img, d in zip(images, PersonDetector(Settings()).detect(images, conf=0.35)):
        if len(d):
            i = int(np.argmax(d.area))
            box = tuple(float(v) for v in d.xyxy[i])
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            names.append(
                name_colors(
                    np.ascontiguousarray(img[y1:y2, x1:x2, ::-1]), crop_keypoints(d.keypoints[i], box)
                )
            )  # type: ignore[arg-type]
    return names


@pytest.mark.slow
@pytest.mark.parametrize(
    "visit, upper, lower",
    [
        (1, "grey", None),  # long grey cardigan (it hides the trousers)
        (2, "black", "black"),  # black hooded top and black trousers
        (3, "black", "black"),  # black top and black trousers
        (4, "black", "black"),  # black t-shirt, dark trousers
        (5, "grey", "black"),  # grey knitted cardigan, dark trousers
        (6, "grey", "blue"),  # light grey shirt, blue jeans
    ],
)
def test_named_colours_of_real_visitors(
    frames_1fps: dict[int, np.ndarray], visit: int, upper: str, lower: str | None
) -> None:
    """The names most frames of a visit agree on (a majority, not one chosen frame) are the clothes' colours."""
    start_s, end_s = next((a, b) for v, a, b in visits() if v == visit)
    names = visit_colours(frames_1fps, start_s, end_s)
    assert len(names) >= 5, f"the visitor was detected in only {len(names)} of 7 frames"
    for part, expected in ((0, upper), (1, lower)):
        if expected is not None:
            (top, votes), *_ = Counter(n[part] for n in names).most_common()
            assert top == expected and votes > len(names) / 2, names


def test_pixel_names_of_pure_colours() -> None:
    import cv2

    rgb = np.array(
        [[[220, 30, 30], [30, 60, 200], [20, 20, 20], [240, 240, 240], [128, 128, 128], [40, 180, 40]]],
        np.uint8,
    )
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
