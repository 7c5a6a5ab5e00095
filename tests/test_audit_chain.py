"""Access with a reason, and an audit log that shows it was not changed (issue 28, part 3): a search, a clip view
and an export carry a case or a reason (required with VSEARCH_REQUIRE_REASON=1), recorded in their entries; the
log is filtered by user, case, action and time and exported as CSV; each entry is chained to the one before by
its hash, the table refuses UPDATE and DELETE, and `vsearch audit verify` names an entry edited, inserted or
removed, in the table or in its mirror."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from vsearch.audit import AuditLog
from vsearch.catalog import Catalog, SqliteCatalog
from vsearch.catalog.audit import chain_hash
from vsearch.catalog.schema import STEPS
from vsearch.config import ApiKey

from .conftest import cli_here, small_service

ADMIN, IVAN, EVE = "admin-key-0123456789abcdef", "ivan-key-0123456789abcdef", "eve-key-0123456789abcdefgh"
QUERY = Path(__file__).resolve().parents[1] / "sample_videos" / "queries" / "visitor3.jpg"
QUERY_BOX = "0,0,154,385"  # the whole crop: the small service never loads the detector
FORMULA = "=HYPERLINK(\"http://x\")"


def H(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


# -- the chain, on both engines -------------------------------------------------------------------------------


def _unguard(cat: Catalog) -> None:
    """Drop the append-only triggers, as someone with write access to the database could."""
    stmts = (["DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"] if cat.dialect.name == "sqlite"
             else ["DROP TRIGGER audit_append_only ON audit", "DROP TRIGGER audit_no_truncate ON audit"])  # fmt: skip
    with cat.transaction() as db:
        for s in stmts:
            db.execute(s)


def _filled(cat: Catalog, n: int = 5) -> list[str]:
    return [cat.append_audit({"action": "case.show", "key_name": f"user{i}", "case_id": i}) for i in range(1, n + 1)]


def test_the_audit_table_refuses_update_and_delete(cat: Catalog) -> None:
    _filled(cat, 2)
    for stmt in ("UPDATE audit SET line = 'x' WHERE seq = 1", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(Exception, match="append-only"):
            with cat.transaction() as db:
                db.execute(stmt)
    assert cat.audit_verify()[0] == [] and cat.audit_last_seq() == 2


def test_an_intact_chain_verifies_and_its_head_is_the_last_hash(cat: Catalog) -> None:
    lines = _filled(cat)
    problems, last, head = cat.audit_verify()
    expected = ""
    for line in lines:
        expected = chain_hash(expected, line)
    assert (problems, last, head) == ([], 5, expected)


@pytest.mark.parametrize("tamper, seqs, words", [
    ("edit", [3], "hash does not match"),
    ("edit-and-rehash", [4], "hash does not match"),  # the edited entry's own hash recomputed: the next one breaks
    ("remove", [4], "entry 3 removed"),
    ("insert", [4, 5, 6], "line says seq"),  # a line slipped in at 3 (well formed, chained): the renumbered ones break
])  # fmt: skip
def test_a_tampered_line_is_found_and_named(cat: Catalog, tamper: str, seqs: list[int], words: str) -> None:
    lines = _filled(cat)
    _unguard(cat)
    with cat.transaction() as db:
        edited = lines[2].replace('"user3"', '"nobody"')
        if tamper == "edit":
            db.execute("UPDATE audit SET line = ? WHERE seq = 3", (edited,))
        elif tamper == "edit-and-rehash":
            prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
            db.execute("UPDATE audit SET line = ?, hash = ? WHERE seq = 3", (edited, chain_hash(prev, edited)))
        elif tamper == "remove":
            db.execute("DELETE FROM audit WHERE seq = 3")
        else:
            for s in (5, 4, 3):
                db.execute("UPDATE audit SET seq = ? WHERE seq = ?", (s + 1, s))
            prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
            fake = json.dumps({"action": "case.show", "key_name": "planted", "seq": 3, "time": "2026-01-01T00:00:00Z"})
            db.execute("INSERT INTO audit (seq, time, line, hash) VALUES (3, 'x', ?, ?)", (fake, chain_hash(prev, fake)))
    problems, _, _ = cat.audit_verify()
    assert problems and sorted({p.seq for p in problems}) == seqs, problems
    assert any(words in p.problem for p in problems), problems


def test_the_migration_chains_the_entries_written_before_it_once_in_seq_order(reopen: Callable[[], Catalog]) -> None:
    cat = reopen()
    lines = _filled(cat, 4)
    _unguard(cat)  # the table as migration 13 left it: no hashes, no triggers (later migrations cannot be re-run here)
    with cat.transaction() as db:
        db.execute("UPDATE audit SET hash = NULL")
        if cat.dialect.name == "postgresql":
            db.execute("DROP FUNCTION audit_append_only()")
    assert cat.audit_verify()[0]  # unchained: every entry fails
    assert STEPS[14] == "_chain_audit"
    with cat.transaction() as db:  # migration 14's step, as _migrate runs it after the migration's SQL
        getattr(cat, STEPS[14])(db)
    cat.close()
    cat = reopen()
    try:
        problems, last, head = cat.audit_verify()
        expected = ""
        for line in lines:
            expected = chain_hash(expected, line)
        assert (problems, last, head) == ([], 4, expected)
        cat.append_audit({"action": "after"})
        assert cat.audit_verify()[0] == []
        with pytest.raises(Exception, match="append-only"):
            with cat.transaction() as db:
                db.execute("DELETE FROM audit WHERE seq = 1")
    finally:
        cat.close()


# -- the mirror and `vsearch audit verify` ------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    cat = SqliteCatalog(tmp_path / "data" / "catalog.sqlite")
    log = AuditLog(cat, tmp_path / "data" / "audit.jsonl")
    for i in range(1, 6):
        log.append({"action": "case.show", "key_name": f"user{i}", "case_id": i})
    cat.close()
    return tmp_path / "data"


def test_verify_is_intact_on_an_untouched_log(data: Path) -> None:
    r = cli_here("audit", "verify", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert "intact: 5 entries" in r.stdout


def test_verify_names_a_line_edited_or_removed_in_the_mirror(data: Path) -> None:
    path = data / "audit.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], lines[1].replace("user2", "someone"), *lines[3:]]))  # 2 edited, 3 removed
    r = cli_here("audit", "verify", "--data-dir", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "entry 2 differs between audit.jsonl" in r.stdout
    assert "entry 3 is in the catalog but missing from audit.jsonl" in r.stdout


def test_verify_names_an_entry_edited_in_the_table_and_a_cut_end_against_a_kept_head(data: Path) -> None:
    head = json.loads(cli_here("audit", "verify", "--json", "--data-dir", str(data)).stdout)["head_hash"]
    cat = SqliteCatalog(data / "catalog.sqlite")
    _unguard(cat)
    with cat.transaction() as db:
        db.execute("UPDATE audit SET line = replace(line, 'user4', 'someone') WHERE seq = 4")
        db.execute("DELETE FROM audit WHERE seq >= 5")  # entry 5 (the head kept) and the verify's own, cut off the end
    cat.close()
    path = data / "audit.jsonl"  # the mirror cut and edited alike, so that only the chain can tell
    lines = path.read_text().splitlines(keepends=True)[:4]
    path.write_text("".join(lines[:3] + [lines[3].replace("user4", "someone")]))
    r = cli_here("audit", "verify", "--expect", head, "--data-dir", str(data))
    assert r.returncode == 1
    assert "entry 4: its hash does not match" in r.stdout
    assert f"the hash {head} kept from an earlier verify is in no entry" in r.stdout


# -- a reason with each look, the log filtered and exported -------------------------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API over the small service with VSEARCH_REQUIRE_REASON=1."""
    svc = small_service(tmp_path_factory.mktemp("reason") / "data")
    settings = svc.settings.model_copy(update={"require_reason": True, "api_keys": [
        ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=IVAN, role="investigator"),
        ApiKey(name="eve", key=EVE, role="investigator")]})  # fmt: skip
    svc.casework.settings = svc.settings = settings
    with TestClient(create_app(settings, svc)) as c:
        yield c
    svc.close()


def _search(client: TestClient, **data: str):  # type: ignore[no-untyped-def]
    image = ("q.jpg", QUERY.read_bytes(), "image/jpeg")
    return client.post("/search", files={"image": image}, data={"box": QUERY_BOX, "top_k": "2", **data}, headers=H(IVAN))


def _last(client: TestClient, **params: str) -> dict:
    return client.get("/audit", params={"limit": 1, **params}, headers=H(ADMIN)).json()[0]


def test_api_search_and_clip_view_need_a_reason_and_record_it(strict: TestClient) -> None:
    r = _search(strict)
    assert r.status_code == 400 and "a reason is required (VSEARCH_REQUIRE_REASON=1)" in r.json()["detail"]
    refused = _last(strict)
    assert refused["action"] == "search" and refused["status"] == 400 and "reason is required" in refused["error"]
    ok = _search(strict, reason="tip line call 17")
    assert ok.status_code == 200, ok.text
    assert _last(strict)["reason"] == "tip line call 17"
    clip_url = ok.json()["clips"][0]["clip_url"]
    assert strict.get(clip_url, headers=H(IVAN)).status_code == 400
    case_id = strict.post("/cases", json={"name": "bike theft"}, headers=H(IVAN)).json()["id"]
    view = strict.get(clip_url, params={"case_id": case_id}, headers=H(IVAN))
    assert view.status_code == 200 and view.headers["content-type"] == "video/mp4"
    entry = _last(strict, action="clip.view")
    assert (entry["case_id"], entry["key_name"], entry["status"]) == (case_id, "ivan", 200)
    # another investigator's case is no purpose of eve's: it does not exist for her
    assert strict.get(clip_url, params={"case_id": case_id}, headers=H(EVE)).status_code == 404
    assert _search(strict, reason="bad\x1b]0;title\x07").status_code == 400  # control characters refused


def test_api_audit_filters_by_user_case_action_and_time_and_exports_csv(strict: TestClient) -> None:
    assert _search(strict, reason=FORMULA).status_code == 200
    case_id = strict.post("/cases", json={"name": "filtered"}, headers=H(IVAN)).json()["id"]
    by_case = strict.get("/audit", params={"case_id": case_id}, headers=H(ADMIN)).json()
    assert by_case and all(e["case_id"] == case_id for e in by_case)
    searches = strict.get("/audit", params={"user": "ivan", "action": "search"}, headers=H(ADMIN)).json()
    assert searches and all(e["key_name"] == "ivan" and e["action"] == "search" for e in searches)
    assert [e["seq"] for e in searches] == sorted((e["seq"] for e in searches), reverse=True)
    assert strict.get("/audit", params={"from": "2999-01-01"}, headers=H(ADMIN)).json() == []
    assert strict.get("/audit", params={"to": "2000-01-01"}, headers=H(ADMIN)).json() == []
    assert strict.get("/audit", params={"from": "2000-01-01", "user": "ivan"}, headers=H(ADMIN)).json()
    assert strict.get("/audit", params={"from": "tomorrow"}, headers=H(ADMIN)).status_code == 400
    assert strict.get("/audit", params={"user": "ivan"}, headers=H(IVAN)).status_code == 403
    r = strict.get("/audit", params={"user": "ivan", "action": "search", "format": "csv"}, headers=H(ADMIN))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["reason"] == "'" + FORMULA and rows[0]["entry"].startswith("{")
    assert not any(v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())
    check = strict.get("/audit/verify", headers=H(ADMIN)).json()
    assert check["ok"] and check["entries"] >= 5 and len(check["head_hash"]) == 64


def test_cli_clip_needs_a_reason_and_audit_lists_it(tmp_path: Path) -> None:
    from vsearch.search import SearchFilters, parse_box

    svc = small_service(tmp_path / "data")
    ref = svc.search(QUERY.read_bytes(), SearchFilters(top_k=1), parse_box(QUERY_BOX)).clips[0].id
    svc.close()
    data = str(tmp_path / "data")
    env = {"VSEARCH_REQUIRE_REASON": "1", "VSEARCH_EMBEDDER": "hsv-parts"}
    out = str(tmp_path / "clip.mp4")
    r = cli_here("clip", ref, "-o", out, "--data-dir", data, env=env)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: a reason is required"), r.stderr
    assert not Path(out).exists()
    r = cli_here("clip", ref, "-o", out, "--reason", "court order 2026-114", "--data-dir", data, env=env)
    assert r.returncode == 0, r.stderr
    r = cli_here("search", str(QUERY), "--box", QUERY_BOX, "--data-dir", data, env=env)
    assert r.returncode == 2 and "reason is required" in r.stderr
    r = cli_here("search", str(QUERY), "--box", QUERY_BOX, "--case", "1", "--data-dir", data, env=env)
    assert r.returncode == 2 and "no case with id 1" in r.stderr
    r = cli_here("audit", "--action", "clip.view", "--json", "--data-dir", data, env=env)
    views = json.loads(r.stdout)
    assert [(v["reason"] if "reason" in v else None, v["exit_code"]) for v in views] == [("court order 2026-114", 0), (None, 2)]
    csv_path = tmp_path / "audit.csv"
    r = cli_here("audit", "--csv", str(csv_path), "--data-dir", data, env=env)
    assert r.returncode == 0 and csv_path.read_text().startswith("seq,time,action,key_name")
