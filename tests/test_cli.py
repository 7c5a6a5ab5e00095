"""The operator's CLI: clear one-line errors and non-zero exits, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLE_VIDEO


def vsearch(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsearch.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_search_with_a_text_file_is_refused(tmp_path: Path) -> None:
    txt = tmp_path / "notes.jpg"
    txt.write_text("suspect: tall, red jacket\n")
    r = vsearch("search", str(txt), data_dir=tmp_path / "d")
    assert r.returncode == 2
    assert "error: expected an image" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "{query}", "--from", "noon"], "expected an ISO 8601 time"),
        (["search", "{query}", "--from", "2026-03-01T18:00", "--to", "2026-03-01T14:00"], "ends before it starts"),
        (["search", "{tmp}/missing.jpg"], "no such image file"),
        (["search", "{query}", "--box", "1,2,3"], "expected a box as x1,y1,x2,y2"),
        (["search", "{query}", "--box", "nan,10,100,200"], "finite numbers"),
        (["search", "{query}", "--box", "10,10,1e400,200"], "finite numbers"),
        (["search", "{query}", "--min-score", "nan"], "finite number"),
        (["search", "{query}", "--min-score", "-inf"], "finite number"),
        (["ingest", "{query}", "--sample-fps", "nan"], "finite number"),
        (["ingest", "{query}", "--sample-fps", "1e400"], "finite number"),
        (["clip", "424242"], "no catalog in"),  # a mistyped --data-dir: nothing is created
        (["ingest", "{tmp}/nothing-here"], "no such file or folder"),
    ],
)
def test_bad_arguments_give_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    query = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
    args = [a.format(query=query, tmp=tmp_path) for a in args]
    r = vsearch(*args, data_dir=tmp_path / "d")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ingest_goes_on_past_a_corrupt_file(tmp_path: Path) -> None:
    cam = tmp_path / "cam-07"
    cam.mkdir()
    (cam / "a-broken.mp4").write_bytes(SAMPLE_VIDEO.read_bytes()[:200_000])
    frames = tmp_path / "cam-08"
    frames.mkdir()
    import cv2

    from vsearch.video import read_frame_at

    for i, t in enumerate((57.0, 57.5, 58.0, 58.5)):
        cv2.imwrite(str(frames / f"{i:06d}.jpg"), read_frame_at(SAMPLE_VIDEO, t))
    r = vsearch("ingest", str(tmp_path), "--start", "2026-03-01T14:00:00", data_dir=tmp_path / "d")
    assert r.returncode == 1
    assert "FAILED" in r.stderr and "a-broken.mp4" in r.stderr and "truncated" in r.stderr
    assert "ingested" in r.stdout and "camera=cam-08" in r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_two_ingests_of_one_file_at_once_store_it_once(tmp_path: Path) -> None:
    """Two operators (or the API and the CLI) start the same file on one data dir: one ingests, the other says
    it is busy; nothing is stored twice."""
    args = [sys.executable, "-m", "vsearch.cli", "ingest", str(SAMPLE_VIDEO), "--camera", "lobby",
            "--start", "2026-03-01T14:00:00", "--data-dir", str(tmp_path / "d")]  # fmt: skip
    from vsearch.catalog import SqliteCatalog

    SqliteCatalog(tmp_path / "d" / "catalog.sqlite")  # the catalog exists before both start
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 75], outs
    busy = next(err for (_, err), p in zip(outs, procs) if p.returncode == 75)
    assert "BUSY" in busy and "being ingested by another process" in busy and "Traceback" not in busy

    cat = SqliteCatalog(tmp_path / "d" / "catalog.sqlite")
    (v,) = cat.videos()
    assert (v.status, v.frames_sampled) == ("done", 279)
    n = cat.count_sightings()
    assert n == len(set(cat._q("SELECT track_id, pts FROM sightings"))) and 40 <= n <= 50
    again = vsearch("ingest", str(SAMPLE_VIDEO), "--camera", "lobby", "--start", "2026-03-01T14:00:00", data_dir=tmp_path / "d")
    assert again.returncode == 0 and "already ingested" in again.stdout
