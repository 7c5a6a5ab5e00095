"""The CLI as an investigator meets it (issue 27): no silent empty answers, one line per error naming the input,
exit code 2 for bad input or configuration, and the same conventions (--json, --help examples) everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT

from .conftest import SAMPLE_VIDEO, cli_here

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`vsearch ARGS` without the caller's VSEARCH_ settings, plus `env`: in this process (conftest.cli_here), or
    as `python -m vsearch.cli` in `cwd` when one is given."""
    if cwd is None:
        return cli_here(*args, env={**{k: None for k in os.environ if k.startswith("VSEARCH_")}, **(env or {})})
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VSEARCH_")}
    return subprocess.run(
        [sys.executable, "-m", "vsearch.cli", *args], capture_output=True, text=True, timeout=600,
        env={**full_env, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}, cwd=cwd or PROJECT_ROOT,
    )  # fmt: skip


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- a mistyped --data-dir is an error, and creates nothing -------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["search", str(QUERY)], ["cameras"], ["cameras", "--json"], ["case", "list"], ["case", "show", "1"],
     ["identities", "--from", "2026-03-01T14:00", "--to", "2026-03-01T15:00"], ["clip", "1-8-51000-69000"],
     ["find", "woman with a backpack"], ["reindex-attributes"]],
)  # fmt: skip
def test_a_missing_data_dir_is_named_not_created(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "vsearch_dta"
    line = one_error_line(run(*args, "--data-dir", str(typo)))
    assert str(typo) in line and "no catalog" in line
    assert not typo.exists()


# -- configuration: one line naming the variable ------------------------------------------------------------------


@pytest.mark.parametrize(
    "var, value, says",
    [
        ("VSEARCH_API_KEYS", "[{'name': 'x'}", "not valid JSON"),
        ("VSEARCH_API_KEYS", '[{"name": "a", "key": "short", "role": "admin"}]', "at least 16 characters"),
        ("VSEARCH_API_KEYS", '[{"name": "a", "key": "0123456789abcdefgh", "role": "boss"}]', "'investigator' or 'admin'"),
        ("VSEARCH_MAX_IMAGE_BYTES", "abc", "valid integer"),
        ("VSEARCH_SAMPLE_FPS", "-1", "greater than 0"),
    ],
)
@pytest.mark.parametrize("command", [["cameras"], ["serve", "--port", "1"], ["search", str(QUERY)]])
def test_bad_configuration_is_one_line_naming_the_variable(
    tmp_path: Path, var: str, value: str, says: str, command: list[str]
) -> None:
    line = one_error_line(run(*command, "--data-dir", str(tmp_path), env={var: value}))
    assert var in line and says in line, line


# -- options ------------------------------------------------------------------------------------------------------


def test_version() -> None:
    from vsearch import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"vsearch {__version__}"


@pytest.mark.parametrize("top", ["0", "-3", "100000"])
def test_top_out_of_range_names_the_option(tmp_path: Path, top: str) -> None:
    line = one_error_line(run("search", str(QUERY), "--top", top, "--data-dir", str(tmp_path)))
    assert "--top" in line and "top_k" not in line


def test_search_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    line = one_error_line(run("search", str(QUERY.parent), "--data-dir", str(tmp_path)))
    assert "is a folder" in line


def test_verify_of_a_missing_zip_is_bad_input_not_tampering(tmp_path: Path) -> None:
    line = one_error_line(run("case", "verify", str(tmp_path / "missing.zip")))
    assert "missing.zip" in line


def test_every_command_help_shows_an_example_and_data_dir_reads_well() -> None:
    from typer.testing import CliRunner

    from vsearch.cli import app

    for args in (["ingest"], ["search"], ["clip"], ["cameras"], ["case", "export"], ["case", "list"], ["serve"]):
        r = CliRunner().invoke(app, [*args, "--help"])  # the help text is the app's: no process needed for each
        assert r.exit_code == 0 and "Example" in r.stdout, (args, r.stdout)
        assert "vsearch " + args[0] in r.stdout.split("Example")[-1], (args, r.stdout)
        if args == ["search"]:
            assert "Catalog/index folder ." not in r.stdout
    assert "Example" in run("search", "--help").stdout  # and so it is through `python -m vsearch.cli`


def test_readme_states_the_cli_convention() -> None:
    text = (PROJECT_ROOT / "README.md").read_text()
    assert "Exit codes" in text and "--json" in text


# -- ingest of a folder: a rule for stills and stray files --------------------------------------------------------


def test_ingest_plan_skips_query_folders_and_stray_files_and_says_so(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from vsearch.ingest import plan_ingest

    root = tmp_path / "footage"
    (root / "queries").mkdir(parents=True)
    (root / "cam-08").mkdir()
    (root / "notes.txt").write_text("shift log")
    (root / "clip.mp4").write_bytes(SAMPLE_VIDEO.read_bytes())
    cv2.imwrite(str(root / "queries" / "a.jpg"), np.zeros((300, 120, 3), np.uint8))
    cv2.imwrite(str(root / "queries" / "b.jpg"), np.zeros((200, 90, 3), np.uint8))
    for i in range(3):
        cv2.imwrite(str(root / "cam-08" / f"{i:04d}.jpg"), np.zeros((240, 320, 3), np.uint8))
    (root / "lone-photo.jpg").write_bytes((root / "queries" / "a.jpg").read_bytes())
    skipped: list[str] = []
    items = plan_ingest([root], None, 0.0, on_skip=lambda p, why: skipped.append(f"{p.name}: {why}"))
    assert sorted((it.camera_id, it.path.name) for it in items) == [("cam-08", "cam-08"), ("footage", "clip.mp4")]
    assert sorted(s.split(":")[0] for s in skipped) == ["lone-photo.jpg", "notes.txt", "queries"]
    # the query folder, named explicitly, is the user's choice: ingested as given
    assert [it.path.name for it in plan_ingest([root / "queries"], "q", 0.0)] == ["queries"]


def test_ingest_help_states_the_rule() -> None:
    out = " ".join(run("ingest", "--help").stdout.split())
    assert "one size" in out and "skipped" in out


@pytest.mark.slow
def test_ingest_of_the_sample_folder_does_not_make_queries_a_camera(tmp_path: Path) -> None:
    r = run("ingest", str(SAMPLE_VIDEO.parent), "--start", "2026-03-01T14:00:00", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stderr and "queries" in r.stderr
    cams = json.loads(run("cameras", "--json", "--data-dir", str(tmp_path / "d")).stdout)
    assert [c["id"] for c in cams] == ["sample_videos"]
    assert "progress" in r.stderr  # not a terminal: periodic progress lines instead of a bar


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small catalog (conftest.small_service), written once for the module's read-only commands."""
    from .conftest import small_service

    small_service(d := tmp_path_factory.mktemp("small") / "d").close()
    return d


@pytest.mark.parametrize("cameras, unknown", [(["cam-99"], "cam-99"), (["lobby,cam-02"], "cam-02"), (["lobby", "x"], "x")])
def test_identities_of_unknown_cameras_are_named_not_answered_with_nobody(
    small_dir: Path, cameras: list[str], unknown: str
) -> None:
    window = ["--from", "2026-03-01T14:00", "--to", "2026-03-01T15:00", "--data-dir", str(small_dir)]
    args = [a for c in cameras for a in ("--camera", c)]
    line = one_error_line(run("identities", *window, *args, env={"VSEARCH_EMBEDDER": "hsv-parts"}))
    assert f"unknown camera {unknown!r}" in line and "lobby" in line


def test_identities_of_a_camera_named_twice_answer(small_dir: Path) -> None:
    window = ["--from", "2026-03-01T14:00", "--to", "2026-03-01T15:00", "--data-dir", str(small_dir)]
    r = run("identities", *window, "--camera", "lobby,lobby", "--json", env={"VSEARCH_EMBEDDER": "hsv-parts"})
    assert r.returncode == 0 and json.loads(r.stdout), r.stderr


# -- over the ingested sample clip (camera 'lobby') ---------------------------------------------------------------


@pytest.fixture(scope="module")
def data(demo_service, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A private copy of the session's ingested sample (these tests write cases and audit records)."""
    import shutil

    folder = tmp_path_factory.mktemp("cli") / "data"
    shutil.copytree(demo_service.settings.data_dir, folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("cameras, unknown", [(["cam-99"], "cam-99"), (["lobby,cam-02"], "cam-02"), (["lobby", "x"], "x")])
def test_unknown_cameras_are_named_not_answered_with_nothing(data: Path, cameras: list[str], unknown: str) -> None:
    args = [a for c in cameras for a in ("--camera", c)]
    line = one_error_line(run("search", str(QUERY), *args, "--data-dir", str(data)))
    assert f"unknown camera {unknown!r}" in line and "lobby" in line  # and which cameras there are


@pytest.mark.slow
def test_a_comma_list_of_cameras_is_several_cameras(data: Path) -> None:
    r = run("search", str(QUERY), "--camera", "lobby,lobby", "--json", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["clips"]


@pytest.mark.slow
def test_an_empty_catalog_is_an_error_not_no_matches(tmp_path: Path) -> None:
    from vsearch.catalog import SqliteCatalog

    SqliteCatalog(tmp_path / "d" / "catalog.sqlite")
    line = one_error_line(run("search", str(QUERY), "--data-dir", str(tmp_path / "d")))
    assert "holds no footage" in line


@pytest.mark.slow
def test_clip_takes_the_clip_id_the_table_prints_and_never_overwrites(data: Path, tmp_path: Path) -> None:
    found = json.loads(run("search", str(QUERY), "--top", "1", "--json", "--data-dir", str(data)).stdout)
    clip_id = found["clips"][0]["id"]
    out = tmp_path / "ev.mp4"
    r = run("clip", clip_id, "-o", str(out), "--data-dir", str(data))
    assert r.returncode == 0 and out.stat().st_size > 10_000 and out.with_suffix(".jpg").is_file(), r.stderr
    out.write_bytes(b"an earlier export")
    line = one_error_line(run("clip", clip_id, "-o", str(out), "--data-dir", str(data)))
    assert "exists" in line and "--force" in line and out.read_bytes() == b"an earlier export"
    assert run("clip", clip_id, "-o", str(out), "--force", "--data-dir", str(data)).returncode == 0
    assert out.stat().st_size > 10_000
    sighting = str(found["clips"][0]["best"]["id"])
    assert run("clip", sighting, "-o", str(tmp_path / "s.mp4"), "--data-dir", str(data)).returncode == 0
    assert "not a clip" in one_error_line(run("clip", "1-8-0-0", "-o", str(tmp_path / "z.mp4"), "--data-dir", str(data)))


@pytest.mark.slow
def test_json_everywhere_and_empty_lists_say_so(data: Path, tmp_path: Path) -> None:
    cams = json.loads(run("cameras", "--json", "--data-dir", str(data)).stdout)
    assert cams[0]["id"] == "lobby" and cams[0]["first"].startswith("2026-03-01T14:00:00")
    empty = tmp_path / "e"
    from vsearch.catalog import SqliteCatalog

    SqliteCatalog(empty / "catalog.sqlite")
    assert "no cases" in run("case", "list", "--data-dir", str(empty)).stdout
    assert json.loads(run("case", "list", "--json", "--data-dir", str(empty)).stdout) == []
    assert "no cameras" in run("cameras", "--data-dir", str(empty)).stdout
    new = run("case", "new", "empty case", "--data-dir", str(data))
    case_id = new.stdout.split()[-1]
    listed = json.loads(run("case", "list", "--json", "--data-dir", str(data)).stdout)
    assert any(c["id"] == int(case_id) and c["name"] == "empty case" for c in listed)
    comp = run("case", "companions", case_id, "--data-dir", str(data))
    assert comp.returncode == 0 and "no confirmed items" in comp.stdout and "nobody was seen" not in comp.stdout
    line = one_error_line(run("cameras", "set", "cam-77", "--name", "Typo", "--data-dir", str(data)))
    assert "unknown camera 'cam-77'" in line
    assert "cam-77" not in run("cameras", "--data-dir", str(data)).stdout


@pytest.mark.slow
def test_case_export_counts_cli_searches_as_searches(data: Path, tmp_path: Path) -> None:
    found = json.loads(run("search", str(QUERY), "--top", "1", "--json", "--data-dir", str(data)).stdout)
    case_id = run("case", "new", "export", "--data-dir", str(data)).stdout.split()[-1]
    assert run("case", "add", case_id, found["clips"][0]["id"], "--query", str(QUERY), "--data-dir", str(data)).returncode == 0
    r = run("case", "export", case_id, "-o", str(tmp_path / "c.zip"), "--no-render-check", "--redact", "none", "--reason", "t",
            "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert "no search with this image" not in r.stdout
    import zipfile

    with zipfile.ZipFile(tmp_path / "c.zip") as z:
        manifest = json.loads(z.read("manifest.json"))
    assert "no search with this image" not in json.dumps(manifest)


@pytest.mark.slow
def test_results_table_stays_aligned_with_long_camera_names(demo_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vsearch.cli.search import print_result
    from vsearch.search import SearchFilters, result_to_dict

    result = demo_service.search(QUERY.read_bytes(), SearchFilters(top_k=3))
    import dataclasses

    result.clips = [dataclasses.replace(c, camera_id="entrance-north-parking-level-2") for c in result.clips]
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(lambda: print_result(result_to_dict(result)))
    lines = CliRunner().invoke(app, []).output.splitlines()
    table = lines[lines.index(next(line for line in lines if line.strip().startswith("rank"))):]
    assert len({line.index("clip id") if "clip id" in line else len(line.rsplit(" ", 1)[0]) + 1 for line in table}) == 1, table


@pytest.mark.slow
def test_api_unknown_cameras_are_404_and_cameras_carry_iso_times(demo_service) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from api import create_app
    from vsearch.config import ApiKey

    key = "investigator-key-0123456789"
    settings = demo_service.settings.model_copy(update={"api_keys": [ApiKey(name="i", key=key, role="investigator")]})
    with TestClient(create_app(settings, demo_service)) as client:
        r = client.post("/search", files={"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")},
                        data={"cameras": "lobby,cam-99"}, headers={"X-API-Key": key})  # fmt: skip
        assert r.status_code == 404 and "unknown camera 'cam-99'" in r.json()["detail"]
        cams = client.get("/cameras", headers={"X-API-Key": key}).json()
        assert cams[0]["first"].startswith("2026-03-01T14:00:00") and cams[0]["last"] > cams[0]["first"]
