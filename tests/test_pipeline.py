"""End to end on the bundled sample clip with the real detector and embedder: ingest, search, filters, clips."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vsearch.errors import IndexStateError, InputError, NotFoundError
from vsearch.ingest import IngestItem
from vsearch.search import SearchFilters
from vsearch.service import VSearch
from vsearch.types import parse_time
from vsearch.video import probe, read_frame_at

from .conftest import DEMO_START, SAMPLE_VIDEO, visits

T0 = parse_time(DEMO_START)
pytestmark = pytest.mark.slow


def visitor_crop(svc: VSearch, pts_s: float) -> bytes:
    """JPEG of the largest person in the frame at pts_s, cut at a time that is not on the 2 fps sampling grid."""
    import cv2

    img = read_frame_at(SAMPLE_VIDEO, pts_s)
    d = svc.detector.detect([img], conf=0.35)[0]
    x1, y1, x2, y2 = d.xyxy[int(np.argmax(d.area))].astype(int)
    return cv2.imencode(".jpg", img[y1:y2, x1:x2])[1].tobytes()


def test_ingest_stores_people_not_frames(demo_service: VSearch) -> None:
    v = demo_service.catalog.videos()[0]
    assert (v.status, v.frames_sampled, v.camera_id) == ("done", 279, "lobby")
    n = demo_service.store.ntotal
    # six visitors over 139 s, a few crops per 10 s track segment: far fewer sightings than sampled frames
    assert 18 <= n <= 100
    for s in demo_service.catalog.sightings(demo_service.store.index.ids().tolist()).values():
        in_visit = any(a - 1.5 <= s.pts_s <= b + 1.5 for _, a, b in visits())
        assert in_visit, f"sighting at {s.pts_s}s lies outside every visit (the room is empty then)"
        assert s.ts_s == pytest.approx(T0 + s.pts_s)


@pytest.mark.parametrize("visit, start_s, end_s", visits())
def test_a_visitor_crop_finds_that_visit_first(demo_service: VSearch, visit: int, start_s: float, end_s: float) -> None:
    query = visitor_crop(demo_service, (start_s + end_s) / 2 + 0.3)
    result = demo_service.search(query, SearchFilters(top_k=5))
    best = result.clips[0]
    assert start_s - 1.5 <= best.start_pts_s and best.end_pts_s <= end_s + 1.5, (
        f"visit {visit} ({start_s}-{end_s}s): best clip {best.start_pts_s}-{best.end_pts_s}s"
    )
    assert best.score > result.clips[1].score


def test_time_filter_is_applied_before_ranking(demo_service: VSearch) -> None:
    """A window around visit 5 returns visit 5's sightings for a visit-3 query, although they rank low globally."""
    query = visitor_crop(demo_service, 57.3)
    v5 = [v for v in visits() if v[0] == 5][0]
    window = SearchFilters(from_ts_s=T0 + v5[1] - 1, to_ts_s=T0 + v5[2] + 1, top_k=3)
    result = demo_service.search(query, window)
    assert result.clips, "a narrow window must still return its matches"
    all_hits = [h for c in result.clips for h in c.sightings]
    assert all(window.from_ts_s <= h.sighting.ts_s <= window.to_ts_s for h in all_hits)
    # brute force over the catalog: the same best sighting inside the window
    inside = [s for s in demo_service.catalog.sightings(demo_service.store.index.ids().tolist()).values() if window.from_ts_s <= s.ts_s <= window.to_ts_s]
    assert result.candidates == len(inside)


def test_camera_filter_includes_and_excludes(demo_service: VSearch) -> None:
    query = visitor_crop(demo_service, 57.3)
    assert demo_service.search(query, SearchFilters(cameras=("lobby",))).clips
    with pytest.raises(NotFoundError, match="unknown camera 'elsewhere'"):  # a typo is never "not seen"
        demo_service.search(query, SearchFilters(cameras=("elsewhere",)))
    before = SearchFilters(to_ts_s=T0 - 1)
    assert demo_service.search(query, before).clips == []


def test_whole_photo_query_uses_the_largest_person(demo_service: VSearch) -> None:
    import cv2

    frame = read_frame_at(SAMPLE_VIDEO, 80.3)  # visit 4, whole 768x432 frame
    result = demo_service.search(cv2.imencode(".jpg", frame)[1].tobytes(), SearchFilters(top_k=3))
    assert result.query.source == "detected person"
    assert 75 - 1.5 <= result.clips[0].start_pts_s <= 87 + 1.5


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty upload"), (b"name,camera\nbob,1\n", "do not decode"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "do not decode")],
)
def test_non_images_are_refused(demo_service: VSearch, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        demo_service.search(data, SearchFilters())


def test_bad_filters_are_refused() -> None:
    with pytest.raises(InputError, match="ends before it starts"):
        SearchFilters(from_ts_s=10.0, to_ts_s=5.0)
    with pytest.raises(InputError, match="top_k"):
        SearchFilters(top_k=0)
    with pytest.raises(InputError, match="ISO 8601"):
        parse_time("yesterday afternoon")


def test_reingesting_the_same_file_adds_nothing(demo_service: VSearch) -> None:
    n = demo_service.store.ntotal
    again = demo_service.ingest([IngestItem(SAMPLE_VIDEO, "lobby", T0)])
    assert again[0].status == "already ingested" and again[0].sightings_added == 0
    assert demo_service.store.ntotal == n == demo_service.catalog.count_sightings()


def test_a_clip_is_browser_playable_h264_with_the_person_in_it(demo_service: VSearch) -> None:
    query = visitor_crop(demo_service, 57.3)
    best = demo_service.search(query, SearchFilters(top_k=1)).clips[0]
    path = demo_service.clip_file(best.id)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.pix_fmt) == ("h264", "yuv420p")
        duration_s = float(c.duration / 1e6)
    assert duration_s == pytest.approx(best.end_pts_s - best.start_pts_s + 2 * demo_service.settings.clip_pad_s, abs=1.0)
    head = path.read_bytes()[:64]
    assert head.find(b"moov") > 0, "moov atom first (+faststart) so a browser can seek before the file arrives"
    thumb = demo_service.frame_file(best.best.id)
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff"


def _stored(svc: VSearch) -> tuple[list[tuple], list[tuple]]:
    """Everything an ingest stored, in comparable form: sightings (track, time, box) and track boxes."""
    sightings = sorted(svc.catalog._q("SELECT track_id, round(pts, 3), round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1) FROM sightings"))  # type: ignore[attr-defined]
    boxes = sorted(svc.catalog._q("SELECT track_id, round(pts, 3), round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1) FROM track_boxes"))  # type: ignore[attr-defined]
    return sightings, boxes


def test_an_interrupted_ingest_resumes_exactly_as_an_uninterrupted_one(tmp_path: Path, demo_service: VSearch) -> None:
    """Kill the ingest right after its first checkpoint, run it again in a new process: the same sightings, the
    same track ids and every track box, as the uninterrupted run (no track split at the checkpoint)."""
    s = demo_service.settings.model_copy(update={"data_dir": tmp_path / "d"})
    svc = VSearch(s, detector=demo_service.detector, embedder=demo_service.embedder)

    class Crash(Exception):
        pass

    def crash_after_first_checkpoint(done_s: float, total_s: float) -> None:
        if svc.catalog.videos()[0].processed_until_s > 0:
            raise Crash

    with pytest.raises(Crash):
        svc.ingest([IngestItem(SAMPLE_VIDEO, "lobby", T0)], crash_after_first_checkpoint)
    partial = svc.catalog.videos()[0]
    assert partial.status == "ingesting" and 0 < partial.processed_until_s < 130
    svc.close()

    svc = VSearch(s, detector=demo_service.detector, embedder=demo_service.embedder)  # a new process
    report = svc.ingest([IngestItem(SAMPLE_VIDEO, "lobby", T0)])[0]
    assert report.status == "resumed"
    v = svc.catalog.videos()[0]
    assert (v.status, v.frames_sampled) == ("done", 279), "every sampled frame processed exactly once"
    assert _stored(svc) == _stored(demo_service)
    assert svc.store.ntotal == svc.catalog.count_sightings() == demo_service.catalog.count_sightings()
    svc.close()


def test_embedder_mismatch_is_reported_not_silently_empty(demo_service: VSearch) -> None:
    from vsearch.embed import OnnxEmbedder

    other = OnnxEmbedder("another-model", 1280, lambda: Path("/nonexistent.onnx"), (224, 224))
    svc = VSearch(demo_service.settings, detector=demo_service.detector, embedder=other)
    with pytest.raises(IndexStateError, match="holds embeddings of"):
        svc.search(visitor_crop(demo_service, 57.3), SearchFilters())


def test_probe_of_sample_is_consistent_with_catalog(demo_service: VSearch) -> None:
    v = demo_service.catalog.videos()[0]
    assert v.frame_count == probe(SAMPLE_VIDEO).frame_count


def test_watching_a_stream_ingests_each_segment(tmp_path: Path, shared_settings) -> None:  # type: ignore[no-untyped-def]
    """The first 30 s of the sample played as a live stream: two 15 s segments, visitor 1 (6-20 s) found in them,
    at wall-clock times, and searchable."""
    import time

    svc = VSearch(shared_settings.model_copy(update={"data_dir": tmp_path / "d"}))
    t0 = time.time()
    reports = svc.watch(str(SAMPLE_VIDEO), "live-01", segment_s=15.0, max_s=30.0).reports
    assert [r.status for r in reports] == ["ingested", "ingested"]
    assert sum(r.sightings_added for r in reports) > 0
    first = min(svc.catalog.sightings(svc.store.index.ids().tolist()).values(), key=lambda x: x.ts_s)
    # the stream opens once the models are loaded, at a wall-clock time; a file is read faster than real time, so
    # its stream clock (open time + position) runs ahead of the wall
    stream_start = svc.catalog.videos()[0].start_ts_s
    assert t0 <= stream_start <= time.time()
    assert first.camera_id == "live-01" and 6 - 1.5 <= first.ts_s - stream_start <= 30 + 1
    result = svc.search(visitor_crop(svc, 13.3), SearchFilters(cameras=("live-01",)))
    best = result.clips[0]
    assert 6 - 1.5 <= best.start_ts_s - stream_start and best.end_ts_s - stream_start <= 20 + 1.5
    svc.close()
