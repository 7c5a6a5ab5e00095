"""End to end across cameras on real Market-1501 frames: two frame folders of sparse stills (cameras 1 and 3), the
real detector and embedder, and both Market query crops of person 0001 (issue 13 item 6)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import InputError
from vsearch.ingest import plan_ingest
from vsearch.search import SearchFilters
from vsearch.service import VSearch

from .conftest import dataset

INTERVAL_S = 10.0  # the stills are 1 s to minutes apart in their recordings: not video
# Person 0001's box in every frame (she is in all 16), read by eye from a contact sheet of the detector's crops.
HER_XYXY = {k: tuple(v) for k, v in json.loads((PROJECT_ROOT / "benchmarks" / "data" / "market1501_0001_boxes.json").read_text())["xyxy"].items()}


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VSearch, dict[str, list[str]]]]:
    """The 16 frames as two camera folders (c1, c3), ingested as stills; also each camera's frame names in order."""
    src = dataset("market1501-fullframe-demo") / "frames"
    root = tmp_path_factory.mktemp("market")
    frames: dict[str, list[str]] = {}
    for f in sorted(src.glob("*.jpg")):
        cam = f.name[:2]
        (root / "footage" / cam).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / "footage" / cam / f.name)
        frames.setdefault(cam, []).append(f.stem)
    svc = VSearch(Settings(data_dir=root / "data"))
    items = plan_ingest([root / "footage"], None, 1_772_359_200.0, frame_interval_s=INTERVAL_S)
    assert [(it.camera_id, it.frame_interval_s) for it in items] == [("c1", INTERVAL_S), ("c3", INTERVAL_S)]
    for r in svc.ingest(items):
        assert r.status == "ingested", r.error
    yield svc, frames
    svc.close()


def is_her(svc: VSearch, frames: dict[str, list[str]], sighting_id: int) -> bool:
    s = svc.sighting(sighting_id)
    name = frames[s.camera_id][round(s.pts_s / INTERVAL_S)]
    return iou(s.xyxy, HER_XYXY[name]) >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("query", ["0001_c1s1_001051_00.jpg", "0001_c6s1_009601_00.jpg"])
def test_both_query_crops_find_her_on_both_cameras_in_the_top_3(
    market: tuple[VSearch, dict[str, list[str]]], query: str
) -> None:
    svc, frames = market
    data = (dataset("market1501-fullframe-demo") / "query" / query).read_bytes()
    result = svc.search(data, SearchFilters(top_k=3))
    assert result.query.source == "whole image"
    found = {c.camera_id for c in result.clips if is_her(svc, frames, c.best.id)}
    assert found == {"c1", "c3"}, [(c.camera_id, c.best.id, round(c.score, 3)) for c in result.clips]


@pytest.mark.slow
def test_stills_are_never_tracked_into_each_other(market: tuple[VSearch, dict[str, list[str]]]) -> None:
    svc, frames = market
    ids = svc.store.index.ids().tolist()
    sightings = svc.catalog.sightings(ids).values()
    # every person of every still was stored (1-8 per frame), each track holds the boxes of exactly one still
    assert len({(s.video_id, s.track_id) for s in sightings}) == len(ids) >= 2 * 16
    for s in sightings:
        times = {round(t, 3) for t, _, _ in svc.catalog.track_boxes(s.video_id, s.track_id)}
        assert times == {round(s.pts_s, 3)}
    # and she is stored in every one of the 16 stills
    assert sum(is_her(svc, frames, i) for i in ids) == 16
    assert np.isclose(max(s.pts_s for s in sightings if s.camera_id == "c1"), 12 * INTERVAL_S)


def test_stills_folders_are_planned_at_their_interval(tmp_path: Path) -> None:
    src = dataset("market1501-fullframe-demo") / "frames"
    for name in ("a", "b"):  # one camera, two folders of stills in name order
        (tmp_path / "cam" / name).mkdir(parents=True)
        for f in sorted(src.glob("c3*.jpg")):
            shutil.copyfile(f, tmp_path / "cam" / name / f.name)
    items = plan_ingest([tmp_path / "cam"], "c3", 1000.0, frame_interval_s=20.0)
    assert [(it.start_ts_s, it.frame_interval_s) for it in items] == [(1000.0, 20.0), (1060.0, 20.0)]
    assert [it.frame_interval_s for it in plan_ingest([tmp_path / "cam"], "c3", 1000.0)] == [None, None]
    with pytest.raises(InputError, match="must be positive"):
        plan_ingest([tmp_path / "cam"], "c3", 1000.0, frame_interval_s=0.0)
