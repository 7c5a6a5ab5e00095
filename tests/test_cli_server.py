"""`vsearch search --server URL`: the search runs in a running `vsearch serve` (models warm), the CLI only sends it.

A real server over the small catalog (conftest.small_service, the weight-free hsv-parts embedder), started as a
subprocess as an operator would."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SAMPLE_VIDEO, small_service
from .test_cli_conventions import one_error_line, run
from .test_cli_startup import imports_of
from .test_web import free_port, start_serve, stop

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
KEY = "cli-server-test-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("serve") / "data"
    small_service(data).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSEARCH_")}
    env.update(VSEARCH_EMBEDDER="hsv-parts", VSEARCH_API_KEYS=json.dumps([{"name": "cli", "key": KEY, "role": "investigator"}]))
    proc, base = start_serve(data, env)
    yield base, data
    stop(proc)


def test_a_search_through_the_server_answers_as_a_local_one(server: tuple[str, Path]) -> None:
    base, data = server
    remote = run("search", str(QUERY), "--top", "3", "--json", "--server", base, env={"VSEARCH_API_KEY": KEY})
    assert remote.returncode == 0, remote.stderr
    local = run("search", str(QUERY), "--top", "3", "--json", "--data-dir", str(data),
                env={"VSEARCH_EMBEDDER": "hsv-parts"})  # fmt: skip
    assert local.returncode == 0, local.stderr
    clips = [c["id"] for c in json.loads(remote.stdout)["clips"]]
    assert clips and clips == [c["id"] for c in json.loads(local.stdout)["clips"]]
    table = run("search", str(QUERY), "--top", "3", "--camera", "lobby", "--server", base, env={"VSEARCH_API_KEY": KEY})
    assert table.returncode == 0 and "rank" in table.stdout and clips[0] in table.stdout, table.stderr


def test_a_search_through_the_server_loads_no_model_library(server: tuple[str, Path]) -> None:
    r, names = imports_of("search", str(QUERY), "--server", server[0], env={"VSEARCH_API_KEY": KEY})
    assert r.returncode == 0, r.stderr[-2000:]
    assert not names & {"torch", "ultralytics", "openvino", "onnxruntime", "faiss", "cv2", "fastapi"}, names


@pytest.mark.parametrize(
    "args, env, says",
    [
        (["--camera", "cam-99"], {"VSEARCH_API_KEY": KEY}, "unknown camera 'cam-99'"),  # the server's 404, as one line
        ([], {"VSEARCH_API_KEY": "not-a-key-0123456789"}, "VSEARCH_API_KEY"),  # 401: which variable to fix
        ([], {}, "VSEARCH_API_KEY"),  # no key at all
        (["--data-dir", "somewhere"], {"VSEARCH_API_KEY": KEY}, "--data-dir"),  # the server has its own catalog
    ],
)
def test_server_errors_are_one_line(server: tuple[str, Path], args: list[str], env: dict[str, str], says: str) -> None:
    line = one_error_line(run("search", str(QUERY), "--server", server[0], *args, env=env))
    assert says in line, line


def test_an_unreachable_server_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(run("search", str(QUERY), "--server", url, env={"VSEARCH_API_KEY": KEY}))
    assert url in line and "vsearch serve" in line, line
