"""Shared fixtures: real weights, the bundled sample clip, and the public datasets beside the project."""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vsearch.catalog import Catalog
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.types import parse_time

SAMPLE_VIDEO = PROJECT_ROOT / "sample_videos" / "one-by-one-person-detection.mp4"
DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
DEMO_START = "2026-03-01T14:00:00+00:00"


def visits() -> list[tuple[int, float, float]]:
    """(visit, start_s, end_s) of the six visitors of the sample clip, read by eye to about +-1 s."""
    with open(PROJECT_ROOT / "sample_videos" / "visits_approx.csv") as f:
        return [(int(r["visit"]), float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]


def missing(reason: str) -> None:
    """A component the test needs is not here: skip on a developer's machine, fail in CI, where .ci/run installs
    every component and shared/datasets lies beside the clone (a skip there would hide a broken install)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must have this: {reason}")
    pytest.skip(reason)


def dataset(name: str) -> Path:
    p = DATASETS / name
    if not p.exists():
        missing(f"dataset {name} not found at {p}")
    return p


def sample_excerpt(out: Path, seconds: float) -> Path:
    """The sample clip's first `seconds`, written to `out` at its 10 fps (a file of its own: another video)."""
    import av

    from vsearch.video import write_mp4

    with av.open(str(SAMPLE_VIDEO)) as c:
        frames = ((i, f.to_ndarray(format="bgr24")) for i, f in enumerate(c.decode(video=0)) if f.time < seconds)
        write_mp4(out, frames, 10.0)
    return out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data dir; the exported-model cache is shared (it is keyed by the weights' hash)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("demo") / "data")


_SMALL: list[Path] = []  # the small catalog's data dir, written once per session (_write_small), copied for each use


def small_service(data_dir: Path):  # type: ignore[no-untyped-def]
    """A service over a tiny catalog written through the real store, with no model loaded: the sample clip as
    camera 'lobby' from DEMO_START, one track per visit (visits_approx.csv) boxed by a fixed rectangle in the
    middle of the room, sampled every 2 s, and embedded with the weight-free `hsv-parts` embedder. For API and
    CLI contract tests (keys, roles, 4xx, limits, audit): a search given a box never loads the detector.
    `data_dir` gets its own copy of a data dir written once for the session."""
    import atexit
    import shutil
    import tempfile

    from vsearch.service import VSearch

    if not _SMALL:
        root = Path(tempfile.mkdtemp(prefix="vsearch-small-"))
        atexit.register(shutil.rmtree, root, True)
        _write_small(root / "data").close()
        _SMALL.append(root / "data")
    shutil.copytree(_SMALL[0], data_dir)
    return VSearch(Settings(data_dir=data_dir, embedder="hsv-parts"))


def _write_small(data_dir: Path):  # type: ignore[no-untyped-def]
    import hashlib

    import cv2
    import numpy as np

    from vsearch.catalog import Checkpoint, NewSighting
    from vsearch.service import VSearch
    from vsearch.video import probe, read_range

    svc = VSearch(Settings(data_dir=data_dir, embedder="hsv-parts"))
    info, start = probe(SAMPLE_VIDEO), parse_time(DEMO_START)
    sha = hashlib.sha256(SAMPLE_VIDEO.read_bytes()).hexdigest()
    rec = svc.catalog.begin_video("lobby", str(SAMPLE_VIDEO), sha, start, info.fps, info.frame_count, info.resolution_wh, svc.embedder.name)
    box = (300.0, 100.0, 420.0, 400.0)
    frames = {i: img for i, img in read_range(SAMPLE_VIDEO, 0, info.frame_count - 1) if i % round(2 * info.fps) == 0}
    (svc.settings.thumbs_dir / "small").mkdir(parents=True, exist_ok=True)
    rows, boxes = [], []
    for visit, t0, t1 in visits():
        for i in sorted(i for i in frames if t0 <= i / info.fps <= t1):
            pts = i / info.fps
            crop_rgb = np.ascontiguousarray(frames[i][100:400, 300:420, ::-1])
            thumb = svc.settings.thumbs_dir / "small" / f"t{visit}_{i}.jpg"
            cv2.imwrite(str(thumb), crop_rgb[:, :, ::-1])
            vec = svc.embedder.embed([crop_rgb])[0]
            rows.append(NewSighting("lobby", visit, start + pts, pts, box, 0.9, 0.5, str(thumb.relative_to(data_dir)), vec))
            boxes.append((visit, pts, box, 0.9))
    svc.store.commit_chunk(rec.id, Checkpoint(rows, boxes, info.frame_count / info.fps, len(frames), True))
    return svc


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


# -- a real PostgreSQL server for the shared-catalog tests ----------------------------------------------------------
def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_server():  # type: ignore[no-untyped-def]
    """A PostgreSQL server of Debian's package on a free loopback port, in a temp dir, for the session (run as the
    `postgres` user when we are root: the server refuses to run as root). Yields its base URL."""
    import os
    import shutil
    import socket
    import subprocess

    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")
    import tempfile

    # pytest's temp dirs are private to root; in memory when /dev/shm is there: removing a session's databases
    # (thousands of files) from a disk mounted with `discard` took up to 46 s of the quick loop's teardown
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="vsearch-pg-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, text=True)  # noqa: E731
    run(bin_dir / "initdb", "-D", data, "-U", "vsearch", "--auth=trust", "--no-sync")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(bin_dir / "pg_ctl", "-D", data, "-o", opts, "-l", root / "server.log", "-w", "start")
    try:
        yield f"postgresql://vsearch@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Catalog]:
    """Each catalog implementation: opens another connection to one catalog (as another process would): SQLite file or PostgreSQL database."""
    if request.param == "postgres":
        from vsearch.catalog import PostgresCatalog

        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresCatalog(url)
    from vsearch.catalog import SqliteCatalog

    return lambda: SqliteCatalog(tmp_path / "c.sqlite")


@pytest.fixture
def cat(reopen: Callable[[], Catalog]) -> Catalog:
    return reopen()

def private_copy(svc, folder: Path):  # type: ignore[no-untyped-def]
    """A service over a copy of `svc`'s data dir in `folder` (for tests that write), sharing its loaded models."""
    import shutil

    from vsearch.service import VSearch

    shutil.copytree(svc.settings.data_dir, folder / "data")
    return VSearch(svc.settings.model_copy(update={"data_dir": folder / "data"}), svc.detector, svc.embedder)


def cli_here(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """`vsearch ARGS` run in this process through the CLI's own entry point (vsearch.cli.main: its one error
    handler and exit code; stdout and stderr captured), with `env` set (None: unset) for the call: for
    tests of what commands answer, without a Python start-up (about a second of CPU) each. A test of the entry
    point itself or of a process's fate (start-up imports, kills) runs a real process."""
    import contextlib
    import io
    import sys

    from vsearch.cli import main

    saved = {k: os.environ.get(k) for k in env or {}}
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["vsearch", *args]
    for k, v in (env or {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv = argv
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["vsearch", *args], code, out.getvalue(), err.getvalue())


@contextmanager
def traced_queries(cat: Catalog) -> Iterator[list[tuple[str, tuple]]]:
    """The statements (and arguments) the catalog runs alone (`_q`) inside the block, in order."""
    statements: list[tuple[str, tuple]] = []
    real_q = cat._q

    def traced(sql: str, args=()):  # type: ignore[no-untyped-def]
        statements.append((sql, tuple(args)))
        return real_q(sql, args)

    cat._q = traced  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        cat._q = real_q  # type: ignore[method-assign]
