"""API response models: built from the library's values whatever their form, and faithful to the audit log."""

from __future__ import annotations

from pathlib import Path

from api.audit import AuditLog
from api.schemas import AuditEntry, CameraOut, camera_out
from vsearch.catalog import SqliteCatalog
from vsearch.catalog.records import CameraStats  # the catalog's own typed camera statistics

LOBBY = {
    "id": "lobby",
    "videos": 2,
    "footage_s": 139.4,
    "first_ts_s": 1.0e9,
    "last_ts_s": 1.0e9 + 139.4,
    "sightings": 45,
}


def test_a_camera_converts_from_a_dict_or_a_typed_value_alike() -> None:
    assert camera_out(LOBBY) == camera_out(CameraStats(**LOBBY)) == CameraOut(**LOBBY)
    empty = camera_out(CameraStats("new", 0, 0.0, None, None, 0))
    assert (empty.first_ts_s, empty.last_ts_s) == (None, None)


def test_audit_entries_show_the_keys_of_their_log_line(tmp_path: Path) -> None:
    log = AuditLog(SqliteCatalog(tmp_path / "c.sqlite"), tmp_path / "audit.jsonl")
    filters = {
        "from": "yesterday",
        "to": None,
        "cameras": [],
        "top_k": 20,
        "min_score": -1.0,
        "box": None,
        "upper": None,
        "lower": None,
    }
    common = {
        "key_name": "ada",
        "role": "admin",
        "client": "127.0.0.1",
        "query_sha256": "ab" * 32,
        "query_bytes": 5,
        "filters": filters,
    }
    log.append({**common, "returned_sighting_ids": [3, 1], "returned_clip_ids": ["1-2-0-5000"]})
    log.append({**common, "error": "expected an ISO 8601 time", "returned_sighting_ids": []})
    refused, answered = (AuditEntry.model_validate(e) for e in log.read())
    assert refused.model_dump(by_alias=True, exclude_unset=True) == log.read()[0]
    assert answered.model_dump(by_alias=True, exclude_unset=True) == log.read()[1]
    assert (
        refused.filters.from_ == "yesterday" and refused.returned_clip_ids is None and answered.error is None
    )


def test_audit_pages_any_offset_without_overflow(tmp_path: Path) -> None:
    """CI's fuzzer found `GET /audit?offset=9223372036854775807` raising OverflowError (a 500): pages are cut by
    counting lines, whatever the offset."""
    log = AuditLog(SqliteCatalog(tmp_path / "c.sqlite"), tmp_path / "audit.jsonl")
    for n in range(5):
        log.append({"n": n})
    assert [e["n"] for e in log.read(limit=2, offset=1)] == [3, 2]
    assert [e["n"] for e in log.read(limit=10, offset=3)] == [1, 0]
    assert log.read(limit=1, offset=2**63 - 1) == [] and log.read(limit=1, offset=5) == []
    assert [e["n"] for e in log.read(limit=2**63 - 1)] == [4, 3, 2, 1, 0]
