"""`watch` never loses its ingest worker's errors: a segment that cannot be ingested stops the recording and
surfaces, instead of a thread dying silently while recording goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.config import Settings
from vsearch.embed import OnnxEmbedder
from vsearch.errors import VSearchError
from vsearch.service import VSearch

from .conftest import SAMPLE_VIDEO

pytestmark = pytest.mark.slow


def test_an_ingest_failure_stops_the_watch_and_is_raised(tmp_path: Path) -> None:
    """The embedder's weights are missing (a real ModelError, raised on the first crop of visitor 1 at 6-20 s):
    the watch must end with that error soon after, not record the whole stream and return as if all was well."""
    broken = OnnxEmbedder("broken-reid", 512, lambda: tmp_path / "missing.onnx", (256, 128))
    svc = VSearch(Settings(data_dir=tmp_path / "d"), embedder=broken)
    with pytest.raises(VSearchError, match=r"ingest of .*\.mp4 failed.*missing\.onnx"):
        svc.watch(str(SAMPLE_VIDEO), "cam-broken", segment_s=10.0, max_s=120.0)
    recorded = sorted((tmp_path / "d" / "recordings" / "cam-broken").glob("*.mp4"))
    assert 1 <= len(recorded) < 12, "recording stops once a segment cannot be ingested"
    svc.close()
