"""Training crops decoded once and kept at the network's input size in a numpy memmap, so the 2-core CPU spends
its time in the network, not in JPEG decoding and resizing (CUHK03 alone is 6,666 JPEGs of ~96x286)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.config import PROJECT_ROOT

CACHE_DIR = PROJECT_ROOT / "training" / "cache"  # git-ignored; delete it when a dataset changes


def cached_crops(
    name: str, load: Callable[[], list[tuple[np.ndarray, int, int]]], size_hw: tuple[int, int]
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64]]:
    """(crops_rgb (n, h, w, 3) uint8 memmap, pids, cams) of the crops `load` returns, resized to `size_hw`;
    decoded by `load` on the first call, read from CACHE_DIR/<name>-<h>x<w>.npy afterwards."""
    h, w = size_hw
    images, meta = CACHE_DIR / f"{name}-{h}x{w}.npy", CACHE_DIR / f"{name}-{h}x{w}.json"
    if not (images.exists() and meta.exists()):
        crops = load()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        # each process writes its own temporary files and renames them into place: two trainings started together
        # must not truncate each other's memmap, nor rename the other's file away
        fd, tmp_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".tmp.npy", dir=CACHE_DIR)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(crops), h, w, 3))
            for i, (crop, _, _) in enumerate(crops):
                out[i] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
            out.flush()
            del out
            tmp_meta = tmp.with_suffix(".json")
            tmp_meta.write_text(json.dumps({"pids": [int(c[1]) for c in crops], "cams": [int(c[2]) for c in crops]}))
            tmp.replace(images)
            tmp_meta.replace(meta)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_suffix(".json").unlink(missing_ok=True)
    m = json.loads(meta.read_text())
    return np.load(images, mmap_mode="r"), np.array(m["pids"], np.int64), np.array(m["cams"], np.int64)
