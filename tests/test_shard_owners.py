"""The index partitioned across shard owners on a real local Ray cluster, over a real PostgreSQL catalog: the fan-out
answers what the in-process index answers; a window asks only the owners it touches; an owner killed mid-load is
restarted by Ray from its saved shards, and until then every answer names the time ranges it did not search."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_store import T0, populate
from vsearch.config import ApiKey, Settings
from vsearch.partitions import PartitionedStore
from vsearch.store import IndexFilter

pytestmark = pytest.mark.slow
DAY = 86_400.0
DAYS = 4
N = 2_000  # 2 cameras over 4 days: one day (time shard) per owner


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    from vsearch.cluster import connect

    return connect(num_cpus=2)


@pytest.fixture(scope="module")
def world(postgres_server: str, tmp_path_factory: pytest.TempPathFactory, ray_cluster: Any) -> Any:
    """A PostgreSQL catalog of N synthetic sightings over 4 days, the in-process store over it, and a partitioned
    store of 4 owners (a day each) over the same catalog."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    settings = Settings(data_dir=tmp_path_factory.mktemp("part") / "data", catalog_url=f"{postgres_server}/{name}")
    inproc, ids, ts, cams, x, _ = populate(settings, N, cameras=2, hours=24 * DAYS)
    parted = Settings(**{**settings.model_dump(), "partition_owners": 4, "partition_timeout_s": 2.0})
    store = PartitionedStore(parted, inproc.catalog, "synthetic", 256)
    assert store.ntotal == inproc.ntotal == N
    yield store, inproc, ids, ts, x
    store.owners.kill()


def _queries(x: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x), n)] + 0.05 * rng.standard_normal((n, x.shape[1])).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


WINDOWS = {
    "everything": None,
    "one hour of day 2": IndexFilter(T0 + DAY + 12 * 3600, T0 + DAY + 13 * 3600),
    "day 2 to mid day 4, odd seconds": IndexFilter(T0 + DAY + 17.5, T0 + 3.5 * DAY + 31.25),
    "one camera over days 1-3": IndexFilter(T0, T0 + 3 * DAY, ("cam-01",)),
    "the last 20 minutes": IndexFilter(T0 + DAYS * DAY - 1200, None),
}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_the_fan_out_returns_the_top_k_of_the_in_process_index(world: Any, window: str) -> None:
    store, inproc, _, _, x = world
    for q in _queries(x, 10):
        got, want = store.search(q, 20, WINDOWS[window]), inproc.search(q, 20, WINDOWS[window])
        assert got.unsearched == ()
        assert len(want.ids) > 0 and got.ids.tolist() == want.ids.tolist()
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        assert got.candidates == want.candidates


def test_a_window_inside_one_day_asks_only_that_days_owner(world: Any) -> None:
    store = world[0]
    owner = int((T0 + DAY) // 60 // 1440) % 4  # the owner of day 2
    before = [s["searches"] for s in store.owners.states()]
    for q in _queries(world[4], 5):
        assert len(store.search(q, 10, WINDOWS["one hour of day 2"]).ids)
    after = [s["searches"] for s in store.owners.states()]
    assert [a - b for a, b in zip(after, before)] == [5 if i == owner else 0 for i in range(4)]


def test_an_owner_killed_mid_load_is_flagged_until_ray_restarts_it_from_its_saved_shards(world: Any) -> None:
    store, inproc, ids, ts, x = world
    store.save()  # what a node does at the end of each file: the owners' shards are on disk
    victim = int((T0 + DAY) // 60 // 1440) % 4
    day2 = (T0 + DAY, T0 + 2 * DAY)
    q = _queries(x, 1, seed=7)[0]
    full = inproc.search(q, 10).ids.tolist()
    outside = (ts < day2[0]) | (ts >= day2[1])  # brute force over the other owners' days
    partial = ids[outside][np.argsort(-(x[outside] @ q))[:10]].tolist()
    assert full != partial  # the killed owner holds some of this query's answer
    answers: list[tuple[float, tuple, list[int]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                m = store.search(q, 10)
                answers.append((time.monotonic(), m.unsearched, m.ids.tolist()))
            except BaseException as e:  # noqa: BLE001 - any error is a failure of the test
                errors.append(e)
                return

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    store.owners.ray.kill(store.owners.handles[victim], no_restart=False)
    recovered = None
    while time.monotonic() - killed_at < 180 and recovered is None:
        time.sleep(0.2)
        flagged = [a for a in answers if a[0] > killed_at and a[1]]
        if flagged and answers[-1][1] == () and answers[-1][0] > flagged[-1][0]:
            recovered = answers[-1][0] - killed_at
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert recovered is not None, "the killed owner did not come back within 180 s"
    during = [a for a in answers if a[0] > killed_at and a[1]]
    assert during and all(a[1] == (day2,) and a[2] == partial for a in during)  # flagged, and right elsewhere
    # never silently partial: every unflagged answer is the whole answer
    assert all(a[2] == full for a in answers if not a[1])
    state = store.owners.states()[victim]
    assert state is not None and state["built"] == 0  # loaded from its saved shards, not rebuilt
    assert store.search(q, 10).ids.tolist() == full


def test_sightings_committed_while_an_owner_is_down_are_found_when_it_is_back(world: Any) -> None:
    """The restarted owner replays the catalog's log from its saved sequence."""
    from vsearch.catalog import Checkpoint, NewSighting

    store, inproc = world[0], world[1]
    victim = int((T0 + 2 * DAY) // 60 // 1440) % 4  # the owner of day 3
    store.save()
    pid = store.owners.ray.get(store.owners.handles[victim].pid.remote())
    os.kill(pid, signal.SIGKILL)
    q = _queries(world[4], 1, seed=11)[0]
    cat = inproc.catalog
    v = cat.begin_video("cam-00", "/late.mp4", "sha-late", T0 + 2 * DAY + 600, 10.0, 100, (1920, 1080), "synthetic")
    rows = [NewSighting("cam-00", 1, T0 + 2 * DAY + 600 + i, float(i), (0, 0, 10, 20), 0.9, 0.5, "s.jpg", q) for i in range(3)]
    new = inproc.commit_chunk(v.id, Checkpoint(rows, [], 3.0, 3, True))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        m = store.search(q, 3, IndexFilter(T0 + 2 * DAY, T0 + 3 * DAY))
        if m.unsearched == ():
            break
        assert m.unsearched == ((T0 + 2 * DAY, T0 + 3 * DAY),) and len(m.ids) == 0
        time.sleep(0.5)
    assert sorted(m.ids.tolist()) == sorted(new)


def test_a_stalled_owner_is_flagged_in_the_api_response_and_the_cli_output(tmp_path: Path, ray_cluster: Any) -> None:
    """An owner that does not answer (its process stopped) is waited for partition_timeout_s, then its day is
    reported as not searched: in the API's JSON, the CLI's table and --json; once it answers, the result is whole."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from vsearch.service import VSearch

    from .conftest import SAMPLE_VIDEO, cli_here, small_service

    small_service(tmp_path / "data").close()
    env = {"VSEARCH_DATA_DIR": str(tmp_path / "data"), "VSEARCH_EMBEDDER": "hsv-parts", "VSEARCH_PARTITION_OWNERS": "2",
           "VSEARCH_PARTITION_TIMEOUT_S": "1"}  # fmt: skip
    key = "investigator-key-0123456789"
    settings = Settings(data_dir=tmp_path / "data", embedder="hsv-parts", partition_owners=2, partition_timeout_s=1.0,
                        api_keys=[ApiKey(name="ivan", key=key, role="investigator")])  # fmt: skip
    svc = VSearch(settings)
    store = svc.store
    assert isinstance(store, PartitionedStore)
    states = store.owners.states()
    (victim,) = [i for i, s in enumerate(states) if s and s["ntotal"]]  # the sample clip is one day: one owner
    day = states[victim]["keys"][0] * DAY  # type: ignore[index]
    image = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
    pid = store.owners.ray.get(store.owners.handles[victim].pid.remote())
    os.kill(pid, signal.SIGSTOP)
    try:
        with TestClient(create_app(settings, svc)) as c:
            r = c.post("/search", files={"image": ("q.jpg", image.read_bytes(), "image/jpeg")},
                       data={"box": "0,0,60,150"}, headers={"X-API-Key": key})  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["unsearched"] == [{"from": "2026-03-01T00:00:00.000+00:00", "to": "2026-03-02T00:00:00.000+00:00",
                                       "from_ts_s": day, "to_ts_s": day + DAY}]  # fmt: skip
        assert body["clips"] == []
        out = cli_here("search", str(image), "--box", "0,0,60,150", env=env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert "WARNING: not searched (a shard owner is down): 2026-03-01T00:00:00.000+00:00 to 2026-03-02T00:00:00.000+00:00" in out.stdout
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while store.owners.states()[victim] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    # the resumed owner works off the searches queued while it was stopped: give it time to answer
    out = cli_here("search", str(image), "--box", "0,0,60,150", env={**env, "VSEARCH_PARTITION_TIMEOUT_S": "60"})
    assert out.returncode == 0 and "WARNING" not in out.stdout and "no matching sightings" not in out.stdout
    store.owners.kill()
    svc.close()
