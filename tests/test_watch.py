"""`watch` never loses its ingest worker's errors: frames that cannot be ingested stop the recording and surface,
instead of a thread dying silently while recording goes on; models that cannot load stop it before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.config import Settings
from vsearch.embed import OnnxEmbedder
from vsearch.errors import ModelError, VSearchError
from vsearch.service import VSearch

from .conftest import SAMPLE_VIDEO

pytestmark = pytest.mark.slow


def test_an_ingest_failure_stops_the_watch_and_is_raised(tmp_path: Path) -> None:
    """The thumbnails folder is a file (a real OSError, raised when the first crops of visitor 1, at 6-20 s, are
    stored): the watch must end with that error soon after, not record the whole stream and return as if all was
    well."""
    svc = VSearch(Settings(data_dir=tmp_path / "d"))
    svc.settings.thumbs_dir.parent.mkdir(parents=True, exist_ok=True)
    svc.settings.thumbs_dir.write_text("not a folder")
    with pytest.raises(VSearchError, match=r"ingest of .*\.mp4 failed \((FileExistsError|NotADirectoryError)"):
        svc.watch(str(SAMPLE_VIDEO), "cam-broken", segment_s=10.0, max_s=120.0)
    recorded = sorted((tmp_path / "d" / "recordings" / "cam-broken").glob("*.mp4"))
    assert 1 <= len(recorded) < 12, "recording stops once the frames cannot be ingested"
    svc.close()


def test_models_that_cannot_load_stop_the_watch_before_it_records(tmp_path: Path) -> None:
    """The embedder's weights are missing: a clear error before the stream is opened (models load first, so that
    the first person in view is not kept waiting for them), and nothing recorded."""
    broken = OnnxEmbedder("broken-reid", 512, lambda: tmp_path / "missing.onnx", (256, 128))
    svc = VSearch(Settings(data_dir=tmp_path / "d"), embedder=broken)
    with pytest.raises(ModelError, match=r"missing\.onnx"):
        svc.watch(str(SAMPLE_VIDEO), "cam-broken", segment_s=10.0, max_s=120.0)
    assert not list((tmp_path / "d").glob("recordings/cam-broken/*.mp4"))
    svc.close()
