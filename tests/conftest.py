"""Shared fixtures: real weights, the bundled sample clip, and the public datasets beside the project."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.types import parse_time

SAMPLE_VIDEO = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
DEMO_START = "2026-03-01T14:00:00+00:00"


def visits() -> list[tuple[int, float, float]]:
    """(visit, start_s, end_s) of the six visitors of the sample clip, read by eye to about +-1 s."""
    with open(PROJECT_ROOT / "sample_videos" / "visits_approx.csv") as f:
        return [(int(r["visit"]), float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]


def dataset(name: str) -> Path:
    p = DATASETS / name
    if not p.exists():
        pytest.skip(f"dataset {name} not found at {p}")
    return p


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data dir; the exported-model cache is shared (it is keyed by the weights' hash)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="session")
def demo_service(shared_settings: Settings):  # type: ignore[no-untyped-def]
    """The sample clip ingested once for the session, as camera 'lobby' starting at DEMO_START."""
    from vsearch.ingest import IngestItem
    from vsearch.service import VSearch

    svc = VSearch(shared_settings)
    reports = svc.ingest([IngestItem(SAMPLE_VIDEO, "lobby", parse_time(DEMO_START))])
    assert reports[0].status == "ingested", reports[0].error
    yield svc
    svc.close()


def private_copy(svc, folder: Path):  # type: ignore[no-untyped-def]
    """A service over a copy of `svc`'s data dir in `folder` (for tests that write), sharing its loaded models."""
    import shutil

    from vsearch.service import VSearch

    shutil.copytree(svc.settings.data_dir, folder / "data")
    return VSearch(svc.settings.model_copy(update={"data_dir": folder / "data"}), svc.detector, svc.embedder)
