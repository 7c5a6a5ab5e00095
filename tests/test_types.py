"""Detections keep one aligned array per field: a field of the wrong length is a bug in the caller, refused."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.types import Detections

BOXES = np.array([[0, 0, 10, 20], [5, 5, 30, 60], [1, 2, 3, 4]], np.float32)
CONF = np.array([0.9, 0.5, 0.3], np.float32)


@pytest.mark.parametrize(
    "fields, error",
    [
        ({}, None),  # defaults: no keypoints, no tracker ids yet
        ({"keypoints": np.zeros((0, 0, 3), np.float32), "tracker_id": np.zeros(0, np.int64)}, None),
        ({"keypoints": np.ones((3, 17, 3), np.float32), "tracker_id": np.array([4, 5, 6])}, None),
        ({"keypoints": np.ones((2, 17, 3), np.float32)}, "keypoints has 2 rows, expected 3"),
        ({"keypoints": np.ones((4, 17, 3), np.float32)}, "keypoints has 4 rows, expected 3"),
        ({"tracker_id": np.array([1, 2])}, "tracker_id has 2 rows, expected 3"),
        ({"confidence": np.array([0.9, 0.5], np.float32)}, "confidence has 2 rows, expected 3"),
    ],
)
def test_fields_must_align_with_the_boxes(fields: dict, error: str | None) -> None:
    kwargs = {"xyxy": BOXES, "confidence": CONF, **fields}
    if error is not None:
        with pytest.raises(ValueError, match=error):
            Detections(**kwargs)
        return
    d = Detections(**kwargs)
    assert len(d) == 3 and d.xyxy.shape == (3, 4) and d.confidence.shape == (3,)
    assert d.keypoints.shape[0] == 3 and d.keypoints.shape[2] == 3 and d.tracker_id.shape == (3,)
    expected_ids = fields.get("tracker_id", np.zeros(0))
    assert d.tracker_id.tolist() == (expected_ids.tolist() if len(expected_ids) else [-1, -1, -1])


def test_missing_keypoints_become_an_empty_keypoint_axis() -> None:
    assert Detections(BOXES, CONF).keypoints.shape == (3, 0, 3)


def test_a_mask_selects_the_same_rows_of_every_field() -> None:
    d = Detections(
        BOXES, CONF, np.arange(3 * 17 * 3, dtype=np.float32).reshape(3, 17, 3), np.array([7, 8, 9])
    )
    kept = d[d.confidence > 0.4]
    assert kept.tracker_id.tolist() == [7, 8]
    assert kept.keypoints[1, 0, 0] == d.keypoints[1, 0, 0] and kept.xyxy.tolist() == BOXES[:2].tolist()
    assert len(Detections.empty()) == 0 and Detections.empty()[np.zeros(0, bool)].keypoints.shape == (0, 0, 3)
