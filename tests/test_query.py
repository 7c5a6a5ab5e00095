"""Query selection: which part of an uploaded image is the person to search for."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from vsearch.config import Settings
from vsearch.detect import PersonDetector
from vsearch.search import query_crop
from vsearch.types import Detections

from .conftest import dataset


class FixedDetector:
    """A detector that finds the given boxes in every image."""

    def __init__(self, boxes: Sequence[tuple[float, float, float, float]]) -> None:
        self.boxes = np.array(boxes, np.float32).reshape(-1, 4)

    def detect(self, images: Sequence[np.ndarray], conf: float | None = None) -> list[Detections]:
        return [Detections(self.boxes, np.full(len(self.boxes), 0.9, np.float32)) for _ in images]


@pytest.mark.parametrize(
    "size_wh, boxes, expected_source, expected_xyxy",
    [
        # a Market-style 64x128 person crop where the detector sees only part of the body: the whole crop
        ((64, 128), [(5, 25, 56, 84)], "whole image", (0, 0, 64, 128)),
        # a person crop with no detection at all: the whole crop
        ((48, 128), [], "whole image", (0, 0, 48, 128)),
        # a loosely cut, not person-shaped crop whose person spans most of its height and width: the whole image
        ((200, 300), [(30, 20, 180, 290)], "whole image", (0, 0, 200, 300)),
        # a wide camera frame with a tall person near the camera (81 % of the height, 18 % of the width): that person
        ((768, 432), [(362, 32, 498, 380)], "detected person", (362, 32, 498, 380)),
        # a wide photo with a small person: that person
        ((1280, 720), [(100, 200, 180, 420), (600, 300, 640, 380)], "detected person", (100, 200, 180, 420)),
        # a tall but large image (a phone photo of a street) with a small person: that person, not the whole photo
        ((1080, 1920), [(400, 900, 520, 1200)], "detected person", (400, 900, 520, 1200)),
    ],
)
def test_query_crop_keeps_person_crops_whole(
    size_wh: tuple[int, int], boxes: list[tuple[float, float, float, float]], expected_source: str,
    expected_xyxy: tuple[int, int, int, int],
) -> None:  # fmt: skip
    image = np.zeros((size_wh[1], size_wh[0], 3), np.uint8)
    q = query_crop(image, FixedDetector(boxes), Settings())  # type: ignore[arg-type]
    assert q.source == expected_source
    assert tuple(int(v) for v in q.xyxy) == expected_xyxy
    assert q.crop_rgb.shape[:2] == (expected_xyxy[3] - expected_xyxy[1], expected_xyxy[2] - expected_xyxy[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["0001_c6s1_009601_00.jpg", "0001_c1s1_001051_00.jpg"])
def test_market_query_crops_are_searched_whole(name: str) -> None:
    """Issue 13: the real detector finds a partial box (5,25,56,84) in the camera-6 crop; the crop is the person."""
    path = dataset("market1501-fullframe-demo") / "query" / name
    image = np.asarray(cv2.imread(str(path)), np.uint8)
    settings = Settings()
    q = query_crop(image, PersonDetector(settings), settings)
    assert q.source == "whole image"
    assert tuple(int(v) for v in q.xyxy) == (0, 0, 64, 128)
