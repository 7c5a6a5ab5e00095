"""The CLI starts fast: a command imports only what it runs (issue 27: a search cost 4.4-4.9 s every call).

Read from `python -X importtime`, so every import counts, wherever it happens (a package's own `__init__`
importing torch included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT

from .conftest import SAMPLE_VIDEO, small_service

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"  # a person crop
HEAVY = {"torch", "ultralytics", "openvino", "onnxruntime", "faiss", "cv2", "fastapi", "uvicorn"}


def imports_of(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `vsearch ARGS`; its result and the top-level packages it imported."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VSEARCH_")}
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vsearch.cli", *args], capture_output=True, text=True,
        timeout=600, env={**clean, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}, cwd=PROJECT_ROOT,
    )  # fmt: skip
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")}
    return r, names


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["search", "--help"]])
def test_help_and_version_import_no_heavy_library(args: list[str]) -> None:
    r, names = imports_of(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not names & HEAVY, sorted(names & HEAVY)


def test_a_search_with_a_person_crop_runs_no_detector(tmp_path: Path) -> None:
    """A query that is already a person crop needs no detector: neither it nor torch is loaded for it."""
    small_service(tmp_path / "d").close()
    r, names = imports_of("search", str(QUERY), "--json", "--data-dir", str(tmp_path / "d"), env={"VSEARCH_EMBEDDER": "hsv-parts"})
    assert r.returncode == 0, r.stderr[-2000:]
    found = json.loads(r.stdout)
    assert found["clips"] and found["query"]["source"] == "whole image"
    assert not names & {"torch", "ultralytics", "openvino"}, sorted(names & HEAVY)


@pytest.mark.slow
def test_a_search_with_a_photo_loads_the_detector_without_torch(demo_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A whole photo runs the exported detector (OpenVINO), which needs neither torch nor ultralytics."""
    import cv2

    from vsearch.video import read_frame_at

    photo = tmp_path / "frame.jpg"
    cv2.imwrite(str(photo), read_frame_at(SAMPLE_VIDEO, 57.0))  # the third visitor, in the whole room
    r, names = imports_of("search", str(photo), "--json", "--data-dir", str(demo_service.settings.data_dir))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["query"]["source"] == "detected person"
    assert "openvino" in names and not names & {"torch", "ultralytics"}, sorted(names & HEAVY)


@pytest.mark.slow
def test_the_first_run_exports_the_detector_quietly(tmp_path: Path) -> None:
    """The first run (an empty model cache) exports the detector: no torch.jit FutureWarnings, no export log."""
    import cv2

    from vsearch.video import read_frame_at

    small_service(tmp_path / "d").close()
    photo = tmp_path / "frame.jpg"
    cv2.imwrite(str(photo), read_frame_at(SAMPLE_VIDEO, 57.0))
    env = {"VSEARCH_EMBEDDER": "hsv-parts", "VSEARCH_MODEL_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-m", "vsearch.cli", "search", str(photo), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("VSEARCH_")}, "PYTHONPATH": str(PROJECT_ROOT), **env},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert any((tmp_path / "cache").glob("yolo11n-pose-*/openvino-dynamic"))  # it did export
    assert "Warning" not in r.stderr and "torch.jit" not in r.stderr, r.stderr
    assert r.stderr.strip() == "", r.stderr
