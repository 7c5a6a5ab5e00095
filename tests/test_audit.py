"""The audit log and the change it describes are atomic (issue 26, item 4): the entry is a row of the catalog's
`audit` table written in the change's own transaction, and `audit.jsonl` its mirror, caught up from the table
after a crash. An audit that cannot be written stops the change, with a clear error and no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.audit import AuditLog
from vsearch.catalog import Catalog, SqliteCatalog
from vsearch.config import PROJECT_ROOT, ApiKey, Settings
from vsearch.errors import NotFoundError
from vsearch.service import VSearch

from .conftest import cli_here, missing


def cli(data: Path, *args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI on `data`: in this process (conftest.cli_here), or as a process under `strace` (to kill it)."""
    if strace is None:
        return cli_here(*args, "--data-dir", str(data))
    cmd = [sys.executable, "-m", "vsearch.cli", *args, "--data-dir", str(data)]
    return subprocess.run([*(strace or []), *cmd], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def fresh(data: Path) -> Path:
    """A data dir with an empty catalog (the CLI refuses a data dir without one)."""
    SqliteCatalog(data / "catalog.sqlite").close()
    return data


def mirror(data: Path) -> list[dict]:
    path = data / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def case_names(data: Path) -> list[str]:
    cat = SqliteCatalog(data / "catalog.sqlite")
    try:
        return [c.name for c in cat.cases()]
    finally:
        cat.close()


def table(data: Path) -> list[dict]:
    cat = SqliteCatalog(data / "catalog.sqlite")
    try:
        return AuditLog(cat, data / "audit.jsonl").read(limit=10_000)[::-1]
    finally:
        cat.close()


# -- the catalog's audit table, on both engines ---------------------------------------------------------------


def test_an_audit_row_commits_with_its_change_or_not_at_all(cat: Catalog, tmp_path: Path) -> None:
    log = AuditLog(cat, tmp_path / "audit.jsonl")
    with log.change({"action": "case.create", "key_name": "ivan"}) as entry:
        case = cat.create_case("kept", "", "ivan")  # the catalog's own transaction joins the change's
        entry["case_id"] = case.id
    with pytest.raises(NotFoundError), log.change({"action": "case.update", "key_name": "ivan"}):
        cat.create_case("rolled back", "", "ivan")
        cat.update_case(999, "x", None)  # fails inside the change: neither the new case nor an audit row stays
    assert [c.name for c in cat.cases()] == ["kept"]
    rows = log.read()
    assert [(r["seq"], r["action"], r.get("case_id")) for r in rows] == [(1, "case.create", case.id)]
    assert mirror(tmp_path) == rows  # the mirror holds the table's lines, in order
    log.append({"action": "case.show", "case_id": case.id})
    assert [r["seq"] for r in mirror(tmp_path)] == [1, 2]


def test_an_entry_can_be_dropped_when_nothing_changed(cat: Catalog, tmp_path: Path) -> None:
    log = AuditLog(cat, tmp_path / "audit.jsonl")
    with log.change({"action": "case.share"}) as entry:
        entry.drop()
    assert log.read() == [] and mirror(tmp_path) == []


# -- an audit that cannot be written stops the change ----------------------------------------------------------


def test_the_cli_makes_no_case_when_the_audit_log_cannot_be_written(tmp_path: Path) -> None:
    data = fresh(tmp_path / "data")
    (data / "audit.jsonl").mkdir(parents=True)  # a directory where the log should be: every write to it fails
    r = cli(data, "case", "new", "not audited")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "audit" in r.stderr and "nothing was done" in r.stderr, r.stderr
    assert case_names(data) == [] and table(data) == []


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    keys = [ApiKey(name="ada", key="admin-key-0123456789abcdef", role="admin"),
            ApiKey(name="ivan", key="ivan-key-0123456789abcdef", role="investigator")]  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", api_keys=keys, footage_root=tmp_path)
    svc = VSearch(settings)
    with TestClient(create_app(settings, svc)) as c:
        yield c
    svc.close()


def test_the_api_answers_503_and_makes_no_case_when_the_audit_log_cannot_be_written(api: TestClient) -> None:
    ivan = {"X-API-Key": "ivan-key-0123456789abcdef"}
    assert api.post("/cases", json={"name": "audited"}, headers=ivan).status_code == 201
    path = api.app.state.settings.audit_log_path  # type: ignore[attr-defined]
    path.rename(path.with_name("moved.jsonl"))
    path.mkdir()
    for method, url, kw in [("post", "/cases", {"json": {"name": "not audited"}}), ("get", "/cases", {}),
                            ("patch", "/cases/1", {"json": {"notes": "lost"}})]:  # fmt: skip
        r = getattr(api, method)(url, headers=ivan, **kw)
        assert r.status_code == 503 and "audit log" in r.json()["detail"], r.text
        assert str(path.parent) not in r.json()["detail"]
    path.rmdir()
    path.with_name("moved.jsonl").rename(path)
    cases = api.get("/cases", headers=ivan).json()
    assert [(c["name"], c["notes"]) for c in cases] == [("audited", "")]


# -- a kill between the commit and the mirror ------------------------------------------------------------------


def _opens_of(path: Path, data: Path, *args: str) -> int:
    """How many times a normal run of the CLI opens `path` (strace, one line per openat of it)."""
    trace = data.parent / "trace.txt"
    r = cli(data, *args, strace=["strace", "-f", "-qq", "-o", str(trace), "-P", str(path), "-e", "trace=openat"])
    assert r.returncode == 0, r.stderr
    return sum(1 for line in trace.read_text().splitlines() if "openat(" in line)


@pytest.mark.parametrize("at", ["first", "last"])
def test_a_kill_at_the_audit_write_leaves_catalog_and_log_consistent_after_restart(tmp_path: Path, at: str) -> None:
    """SIGKILL from strace when the CLI opens audit.jsonl, at its first open (before the change) or its last (after
    the commit): the next command finds every case with exactly one case.create line, and nothing else."""
    if shutil.which("strace") is None:
        missing("strace is not installed (.ci/run installs Debian's strace)")
    data = fresh(tmp_path / "data")
    path = data / "audit.jsonl"
    assert cli(data, "case", "new", "first").returncode == 0
    opens = _opens_of(path, data, "case", "new", "second")
    when = 1 if at == "first" else opens
    killed = cli(data, "case", "new", "third",
                 strace=["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(path), "-e", "trace=openat",
                         "-e", f"inject=openat:signal=SIGKILL:when={when}"])  # fmt: skip
    assert killed.returncode in (-9, 137), (killed.returncode, killed.stderr)
    assert cli(data, "case", "list", strace=[]).returncode == 0  # the restart (a process): the mirror catches up from the table
    created = [r for r in mirror(data) if r.get("action") == "case.create"]
    assert sorted(r["name"] for r in created) == sorted(case_names(data))
    assert [r["seq"] for r in mirror(data)] == list(range(1, len(mirror(data)) + 1))
    assert mirror(data) == table(data)
    assert ("third" in case_names(data)) == (at == "last")


def test_a_log_written_before_the_table_is_taken_in_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = [{"time": "2026-03-01T14:00:00Z", "action": "case.create", "case_id": 1}, {"time": "2026-03-01T14:01:00Z", "path": "/search"}]
    (data / "audit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    cat = SqliteCatalog(data / "catalog.sqlite")
    log = AuditLog(cat, data / "audit.jsonl")
    log.append({"action": "case.show", "case_id": 1})
    assert [{k: v for k, v in r.items() if k != "seq"} for r in mirror(data)[:2]] == old
    assert [r["seq"] for r in mirror(data)] == [1, 2, 3] and mirror(data) == log.read()[::-1]
    cat.close()


# -- CLI reads are audited as the API's are --------------------------------------------------------------------


def test_cli_case_reads_are_audited(tmp_path: Path) -> None:
    data = fresh(tmp_path / "data")
    assert cli(data, "case", "new", "read me").returncode == 0
    for args in (["case", "show", "1"], ["case", "list"], ["case", "route", "1"], ["case", "companions", "1"]):
        assert cli(data, *args).returncode == 0
    refused = cli(data, "case", "show", "7")
    assert refused.returncode == 2 and "no case with id 7" in refused.stderr
    reads = [r for r in mirror(data) if r.get("action", "").startswith("case.") and r["action"] != "case.create"]
    assert [(r["action"], r.get("case_id"), r["exit_code"]) for r in reads] == [
        ("case.show", 1, 0), ("case.list", None, 0), ("case.route", 1, 0), ("case.companions", 1, 0), ("case.show", 7, 2)]
    assert all(r["via"] == "cli" and r["role"] == "cli" and r["key_name"].startswith("cli:") for r in reads)
    assert "no case with id 7" in reads[-1]["error"]


def test_cli_verify_is_audited(tmp_path: Path) -> None:
    data = fresh(tmp_path / "data")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    r = cli(data, "case", "verify", str(junk))
    assert r.returncode != 0
    (line,) = [x for x in mirror(data) if x.get("action") == "case.verify"]
    assert line["via"] == "cli" and line["ok"] is False and line["file"] == str(junk) and line["exit_code"] == r.returncode



def test_a_cli_search_and_an_api_search_leave_the_same_audit_line(tmp_path: Path) -> None:
    """One writer of search entries, the service (vsearch.audit.SearchRecord): a search through the CLI and one
    through the API, answered or refused in the library, leave lines of the same keys and values but who asked,
    through what and how the shell numbers the outcome (exit code, HTTP status)."""
    from .conftest import small_service
    from .test_api import INVESTIGATOR, QUERY, QUERY_BOX, H

    svc = small_service(tmp_path / "data")
    data = svc.settings.data_dir
    settings = svc.settings.model_copy(update={"api_keys": [ApiKey(name="ivan", key=INVESTIGATOR, role="investigator")]})
    image = {"image": ("q.jpg", QUERY.read_bytes(), "image/jpeg")}
    with TestClient(create_app(settings, svc)) as c:
        assert c.post("/search", files=image, data={"box": QUERY_BOX, "top_k": "3"}, headers=H()).status_code == 200
        refused = c.post("/search", files=image, data={"box": QUERY_BOX, "top_k": "3", "rejected": "999999"}, headers=H())
        assert refused.status_code == 404
    env = {"VSEARCH_EMBEDDER": "hsv-parts"}
    assert cli_here("search", str(QUERY), "--box", QUERY_BOX, "--top", "3", "--data-dir", str(data), env=env).returncode == 0
    r = cli_here("search", str(QUERY), "--box", QUERY_BOX, "--top", "3", "--reject", "999999", "--data-dir", str(data), env=env)
    assert r.returncode == 2 and "999999" in r.stderr
    lines = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 4  # one each: the service wrote them, neither shell nor the middleware a second
    api_ok, api_no, cli_ok, cli_no = lines
    shell = {"seq", "time", "via", "key_name", "role", "client", "status", "exit_code"}
    for api, cli, outcome in ((api_ok, cli_ok, "answered"), (api_no, cli_no, "refused")):
        assert set(api) - {"status"} == set(cli) - {"exit_code"}, (api, cli)
        assert {k: v for k, v in api.items() if k not in shell} == {k: v for k, v in cli.items() if k not in shell}
        assert api["action"] == cli["action"] == "search" and api["outcome"] == cli["outcome"] == outcome
        assert (api["via"], api["key_name"], api["role"], cli["via"], cli["role"]) == ("api", "ivan", "investigator", "cli", "cli")
    assert (api_ok["status"], cli_ok["exit_code"], api_no["status"], cli_no["exit_code"]) == (200, 0, 404, 2)
    assert api_ok["returned_sighting_ids"] and "999999" in api_no["error"] and api_no["rejected"] == [999999]
    svc.close()
