"""Colour attributes: the dominant upper-body and lower-body colour of a person crop, by name.

A first step towards "find a man in a red jacket". The pose keypoints locate the torso (shoulders to hips) and
the legs (hips to knees to ankles); without them fixed body proportions are used. Each region's pixels are
named in HSV and the most frequent name wins.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

COLOR_NAMES = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")

# COCO-17 keypoint indices
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 5, 6, 11, 12, 13, 14, 15, 16
KP_MIN_CONF = 0.5


def pixel_color_names(hsv: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Index into COLOR_NAMES for each HSV pixel (OpenCV ranges: H 0..179, S and V 0..255)."""
    h, s, v = (hsv[..., i].astype(np.int32) for i in range(3))
    out = np.full(h.shape, COLOR_NAMES.index("grey"), np.int64)
    # dark but strongly saturated pixels keep their hue (navy jeans), dark dull ones are black
    chromatic = (s >= 50) & ((v >= 60) | ((v >= 30) & (s >= 120)))
    hue_bins = [(0, 8, "red"), (8, 20, "orange"), (20, 33, "yellow"), (33, 85, "green"), (85, 130, "blue"),
                (130, 150, "purple"), (150, 170, "pink"), (170, 180, "red")]  # fmt: skip
    for lo, hi, name in hue_bins:
        out[chromatic & (h >= lo) & (h < hi)] = COLOR_NAMES.index(name)
    brownish = chromatic & (h < 20) & (v < 150) & (s < 200)
    out[brownish] = COLOR_NAMES.index("brown")
    out[~chromatic & (v >= 190) & (s < 40)] = COLOR_NAMES.index("white")
    out[(v < 30) | ((v < 60) & ~chromatic)] = COLOR_NAMES.index("black")
    return out


def _region_masks(shape_hw: tuple[int, int], kpts: NDArray[np.float32] | None) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Masks of torso and legs; keypoints (17, 3) are in crop coordinates."""
    h, w = shape_hw
    upper = np.zeros((h, w), np.uint8)
    lower = np.zeros((h, w), np.uint8)
    ok = kpts is not None and len(kpts) == 17 and all(kpts[i, 2] >= KP_MIN_CONF for i in (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP))
    if ok:
        assert kpts is not None
        pts = kpts[[L_SHOULDER, R_SHOULDER, R_HIP, L_HIP], :2]
        # the lower 70% of the torso: long hair covers the upper back
        top = pts[:2] + 0.3 * (pts[[3, 2]] - pts[:2])
        quad = np.array([top[0], top[1], pts[2], pts[3]])
        quad = quad.mean(axis=0) + 0.8 * (quad - quad.mean(axis=0))
        cv2.fillPoly(upper, [np.round(quad).astype(np.int32)], 1)
        width = max(3, int(0.2 * np.linalg.norm(pts[2] - pts[3])))
        for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
            chain = [kpts[hip]] + [kpts[j] for j in (knee, ankle) if kpts[j, 2] >= KP_MIN_CONF]
            for a, b in zip(chain, chain[1:]):
                a2 = a[:2] + 0.15 * (b[:2] - a[:2])  # start below the hip joint, at the thigh
                cv2.line(lower, tuple(np.round(a2).astype(int)), tuple(np.round(b[:2]).astype(int)), 1, width)
    if not ok or upper.sum() < 20:
        upper[:] = 0
        upper[int(0.25 * h) : int(0.5 * h), int(0.25 * w) : int(0.75 * w)] = 1
    if lower.sum() < 20:
        lower[:] = 0
        lower[int(0.6 * h) : int(0.9 * h), int(0.3 * w) : int(0.7 * w)] = 1
    return upper, lower


def name_colors(crop_rgb: NDArray[np.uint8], keypoints: NDArray[np.float32] | None = None) -> tuple[str, str]:
    """(upper, lower) dominant colour names of a person crop; keypoints (17, 3) in crop coordinates."""
    hsv = np.asarray(cv2.cvtColor(cv2.GaussianBlur(crop_rgb, (3, 3), 0), cv2.COLOR_RGB2HSV), np.uint8)
    names = pixel_color_names(hsv)
    out = []
    for mask in _region_masks(crop_rgb.shape[:2], keypoints):
        counts = np.bincount(names[mask.astype(bool)], minlength=len(COLOR_NAMES))
        out.append(COLOR_NAMES[int(np.argmax(counts))])
    return out[0], out[1]


def crop_keypoints(keypoints: NDArray[np.float32], xyxy: tuple[float, float, float, float]) -> NDArray[np.float32] | None:
    """Frame-coordinate keypoints (17, 3) shifted into the crop cut at `xyxy` (None when there are none)."""
    if keypoints is None or len(keypoints) != 17:
        return None
    k = keypoints.astype(np.float32).copy()
    k[:, 0] -= int(round(max(0.0, xyxy[0])))
    k[:, 1] -= int(round(max(0.0, xyxy[1])))
    return k

