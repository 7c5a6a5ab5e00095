"""Cases: create/add/list/show, routes (synthetic catalog and the sample footage), evidence export and verify
(every file of the ZIP, one bit flipped in turn, fails it by name), through the library and the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vsearch.audit import AuditLog
from vsearch.casework import Casework
from vsearch.catalog import Checkpoint, NewSighting, SqliteCatalog
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import InputError, NotFoundError
from vsearch.evidence import MANIFEST, MANIFEST_SHA, verify_zip
from vsearch.search import SearchFilters

from .conftest import SAMPLE_VIDEO

QUERY = SAMPLE_VIDEO.parent / "queries" / "visitor3.jpg"
T0 = 1_772_373_600.0  # 2026-03-01T14:00:00Z


# -- a small synthetic catalog: two cameras, known times ----------------------------------------------------------


def _track(cat: SqliteCatalog, camera: str, video_id: int, track: int, start_ts: float, pts: list[float]) -> None:
    vec = np.ones(4, np.float32) / 2
    rows = [NewSighting(camera, track, start_ts + p, p, (10, 10, 50, 150), 0.9, 0.5, "t.jpg", vec) for p in pts]
    boxes = [(track, p, (10.0, 10.0, 50.0, 150.0), 0.9) for p in pts]
    cat.commit_chunk(video_id, Checkpoint(rows, boxes, max(pts), len(pts), False))


@pytest.fixture
def synthetic(tmp_path: Path) -> Casework:
    """cam-a (video 1) and cam-b (video 2), both starting at T0: track 1 on cam-a at 0-10 s, track 1 on cam-b at
    30-40 s, track 2 on cam-a at 60-65 s and again at 80-82 s."""
    cat = SqliteCatalog(tmp_path / "catalog.sqlite")
    a = cat.begin_video("cam-a", "/a.mp4", "a" * 64, T0, 10, 1000, (640, 480), "e")
    b = cat.begin_video("cam-b", "/b.mp4", "b" * 64, T0, 10, 1000, (640, 480), "e")
    _track(cat, "cam-a", a.id, 1, T0, [0, 2, 4, 6, 8, 10])
    _track(cat, "cam-b", b.id, 1, T0, [30, 32, 35, 38, 40])
    _track(cat, "cam-a", a.id, 2, T0, [60, 62, 65, 80, 82])
    settings = Settings(data_dir=tmp_path)
    return Casework(cat, settings, AuditLog(cat, settings.audit_log_path))


def test_create_add_list_show_and_every_change_is_audited(synthetic: Casework) -> None:
    cw = synthetic
    case = cw.create("  Bike theft  ", "seen near the station", "ivan")
    assert case.name == "Bike theft" and case.items == 0 and case.created_by == "ivan"
    items = cw.add(case.id, ["1-1-0-10000", "2-1-30000-40000"], "ivan", filters={"cameras": ["cam-a"]})
    assert [(i.kind, i.camera_id, i.start_ts_s, i.end_ts_s) for i in items] == [
        ("clip", "cam-a", T0, T0 + 10), ("clip", "cam-b", T0 + 30, T0 + 40)]  # fmt: skip
    third = str(sorted(cw.catalog.sighting_ids("e"))[2])  # cam-a's sighting at 4 s
    again = cw.add(case.id, ["1-1-0-10000", third], "ana")  # a repeat is kept as it was; the sighting is new
    assert [i.added_by for i in again] == ["ivan", "ana"] and again[0].id == items[0].id
    listed = cw.cases()
    assert [(c.id, c.items) for c in listed] == [(case.id, 3)]
    shown, shown_items = cw.case(case.id)
    assert shown.notes == "seen near the station"
    assert [i.start_ts_s for i in shown_items] == sorted(i.start_ts_s for i in shown_items)
    cw.remove(case.id, again[1].id, "ana")
    assert len(cw.case(case.id)[1]) == 2
    actions = [r["action"] for r in reversed(cw.audit.read())]
    assert actions == ["case.create", "case.add", "case.add", "case.remove"]


@pytest.mark.parametrize(
    ("ref", "error", "match"),
    [
        ("9-1-0-1000", NotFoundError, "no video with id 9"),
        ("1-7-0-1000", NotFoundError, "not a clip of any stored sighting"),
        ("1-1-20000-25000", NotFoundError, "not a clip of any stored sighting"),  # a real track, a span it was not seen in
        ("1-1-0-121000", NotFoundError, "not a clip of any stored sighting"),  # seen 0-10 s only: a made-up stay
        ("1-1-4000-8000", NotFoundError, "not a clip of any stored sighting"),  # inside its clip, not a clip
        ("1-2-60000-82000", NotFoundError, "not a clip of any stored sighting"),  # two clips of the track joined
        ("²", InputError, "expected a clip id"),  # a digit to str.isdigit, not to int()
        ("99999999999999999999999", InputError, "expected a clip id"),  # no sighting id is that long
        ("999", NotFoundError, "no sighting with id 999"),
        ("1-1-5000-1000", InputError, "invalid time range"),
        ("'; DROP TABLE cases; --", InputError, "expected a clip id"),
        ("", InputError, "expected a clip id"),
    ],
)
def test_only_items_the_catalog_vouches_for_can_be_added(synthetic: Casework, ref: str, error: type, match: str) -> None:
    case = synthetic.create("c", "", "ivan")
    with pytest.raises(error, match=match):
        synthetic.add(case.id, [ref], "ivan")
    assert synthetic.case(case.id)[1] == []  # nothing half-added


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda cw: cw.create("", "", "x"), "1 to 200 characters"),
        (lambda cw: cw.create("x" * 201, "", "x"), "1 to 200 characters"),
        (lambda cw: cw.add(12345, ["1-1-0-10000"], "x"), "no case with id 12345"),
        (lambda cw: cw.add(1, [], "x"), "at least one"),
        (lambda cw: cw.add(1, ["1-1-0-10000"], "x", query_sha256="abc"), "64 lowercase hex"),
        (lambda cw: cw.add(1, ["1-1-0-10000"], "x", query_image=b"not an image"), "expected a query image"),
        (lambda cw: cw.set_camera("cam-a", None, 91.0, 0.0, "x"), r"latitude must be a number in \[-90, 90\]"),
        (lambda cw: cw.set_camera("cam-a", None, 10.0, None, "x"), "both --lat and --lon"),
        (lambda cw: cw.set_camera("cam-a", None, float("nan"), 1.0, "x"), "latitude"),
        (lambda cw: cw.route(12345), "no case with id 12345"),
        (lambda cw: cw.route(1, [999]), "has no item"),
    ],
)
def test_bad_input_is_refused_with_a_reason(synthetic: Casework, call, match: str) -> None:  # type: ignore[no-untyped-def]
    synthetic.create("first", "", "x")
    with pytest.raises((InputError, NotFoundError), match=match):
        call(synthetic)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda cw: cw.create("evil\x1b]8;;http://x\x07name", "", "x"), "control character U\\+001B"),
        (lambda cw: cw.create("ok", "line one\nline two\x1b[2J", "x"), "control character U\\+001B"),
        (lambda cw: cw.update(1, "tab\tname", None, "x"), "control character U\\+0009"),
        (lambda cw: cw.set_camera("cam-a", "Lobby\x9b31m", None, None, "x"), "control character U\\+009B"),
        (lambda cw: cw.set_camera("cam\x00a", None, None, None, "x"), "control character U\\+0000"),
        (lambda cw: cw.add(1, ["1-1-0-10000"], "x", note="\x1b]0;title\x07"), "control character U\\+001B"),
    ],
)
def test_control_characters_in_names_and_notes_are_refused(synthetic: Casework, call, match: str) -> None:  # type: ignore[no-untyped-def]
    synthetic.create("first", "notes may have\nlines and\ttabs", "x")
    n = len(synthetic.audit.read())
    with pytest.raises(InputError, match=match):
        call(synthetic)
    assert len(synthetic.audit.read()) == n and synthetic.case(1)[0].name == "first"


def test_route_csv_neutralises_formulas_in_text_cells(synthetic: Casework) -> None:
    cw = synthetic
    case = cw.create("csv", "", "x")
    cw.add(case.id, ["1-1-0-10000", "2-1-30000-40000"], "x")
    cw.set_camera("cam-a", '=HYPERLINK("http://evil","x")', -33.9, -151.2, "x")
    cw.set_camera("cam-b", "@SUM(1+1)", None, None, "x")
    rows = list(csv.DictReader(io.StringIO(cw.route(case.id).to_csv())))
    assert [r["camera_name"] for r in rows] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(1+1)"]
    assert (rows[0]["lat"], rows[0]["lon"]) == ("-33.9", "-151.2")  # numbers stay numbers


def test_an_empty_patch_changes_nothing_and_writes_no_audit_line(synthetic: Casework) -> None:
    case = synthetic.create("c", "n", "x")
    n = len(synthetic.audit.read())
    assert synthetic.update(case.id, None, None, "x") == synthetic.case(case.id)[0]
    assert len(synthetic.audit.read()) == n


def test_case_update_audit_keeps_the_old_and_new_name_and_notes(synthetic: Casework) -> None:
    case = synthetic.create("before", "old notes", "x")
    synthetic.update(case.id, "after", "new notes", "x")
    line = synthetic.audit.read(1)[0]
    assert line["action"] == "case.update" and line["old"] == {"name": "before", "notes": "old notes"}
    assert line["new"] == {"name": "after", "notes": "new notes"}


def test_add_and_remove_audit_lines_line_up(synthetic: Casework) -> None:
    cw = synthetic
    case = cw.create("c", "", "x")
    at4 = str(sorted(cw.catalog.sighting_ids("e"))[2])
    refs = ["2-1-30000-40000", at4, "1-1-0-10000", "2-1-30000-40000"]  # not in time order; one repeated
    items = cw.add(case.id, refs, "x")
    line = cw.audit.read(1)[0]
    assert line["refs"] == [i.ref for i in items] == ["2-1-30000-40000", at4, "1-1-0-10000"]
    assert line["item_ids"] == [i.id for i in items] and line["added_item_ids"] == line["item_ids"]
    again = cw.add(case.id, ["1-1-0-10000"], "y")
    line = cw.audit.read(1)[0]
    assert line["added_item_ids"] == [] and line["already_in_case_item_ids"] == [again[0].id] == [items[2].id]
    cw.remove(case.id, items[1].id, "x")
    line = cw.audit.read(1)[0]
    assert line["action"] == "case.remove" and line["item_id"] == items[1].id and line["ref"] == at4
    assert line["kind"] == "sighting"


def test_identical_concurrent_adds_make_one_item_and_say_which_added_it(synthetic: Casework) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cw = synthetic
    case = cw.create("c", "", "x")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: cw.add(case.id, ["1-1-0-10000"], "x"), range(8)))
    assert len(cw.case(case.id)[1]) == 1
    lines = [r for r in cw.audit.read() if r.get("action") == "case.add"]
    assert len(lines) == 8
    assert sorted(len(r["added_item_ids"]) for r in lines) == [0] * 7 + [1]


def test_route_orders_stops_and_measures_stays_gaps_and_transits(synthetic: Casework) -> None:
    cw = synthetic
    case = cw.create("route", "", "ivan")
    # added out of time order, with an overlapping second clip of the first stay and a later stay on cam-a
    at4 = str(sorted(cw.catalog.sighting_ids("e"))[2])  # cam-a's sighting at 4 s
    cw.add(case.id, ["1-2-60000-65000", "2-1-30000-40000", "1-1-0-10000", at4, "1-2-80000-82000"], "ivan")
    route = cw.route(case.id)
    assert [(s.camera_id, s.start_ts_s - T0, s.end_ts_s - T0) for s in route.stops] == [
        ("cam-a", 0, 10), ("cam-b", 30, 40), ("cam-a", 60, 65), ("cam-a", 80, 82)]  # fmt: skip
    assert len(route.stops[0].items) == 2  # the overlapping clips are one stay
    assert [(m.kind, m.from_camera, m.to_camera, m.duration_s) for m in route.moves] == [
        ("transit", "cam-a", "cam-b", 20), ("transit", "cam-b", "cam-a", 20), ("gap", "cam-a", "cam-a", 15)]  # fmt: skip
    assert route.per_camera_s == {"cam-a": 17, "cam-b": 10}
    merged = cw.route(case.id, merge_gap_s=20)  # stays on one camera at most 20 s apart become one
    assert [(s.camera_id, s.duration_s) for s in merged.stops] == [("cam-a", 10), ("cam-b", 10), ("cam-a", 22)]
    rows = list(csv.DictReader(io.StringIO(route.to_csv())))
    assert [(r["order"], r["camera_id"], r["arrived_by"], r["move_s"]) for r in rows] == [
        ("1", "cam-a", "start", ""), ("2", "cam-b", "transit", "20.000"), ("3", "cam-a", "transit", "20.000"),
        ("4", "cam-a", "gap", "15.000")]  # fmt: skip
    body = route.to_dict()
    assert body["stops"][1]["start"] == "2026-03-01T14:00:30.000+00:00" and body["moves"][0]["duration_s"] == 20


def test_geojson_has_a_point_per_located_camera_and_the_route_line(synthetic: Casework) -> None:
    cw = synthetic
    case = cw.create("map", "", "ivan")
    cw.add(case.id, ["1-1-0-10000", "2-1-30000-40000", "1-2-60000-65000"], "ivan")
    assert cw.route(case.id).to_geojson() == {"type": "FeatureCollection", "features": []}  # no coordinates yet
    cw.set_camera("cam-a", "Station entrance", 52.52, 13.405, "ivan")
    cw.set_camera("cam-b", "Platform 2", 52.521, 13.41, "ivan")
    gj = cw.route(case.id).to_geojson()
    points = [f for f in gj["features"] if f["geometry"]["type"] == "Point"]
    lines = [f for f in gj["features"] if f["geometry"]["type"] == "LineString"]
    assert {p["properties"]["camera_id"]: (p["geometry"]["coordinates"], p["properties"]["visits"]) for p in points} == {
        "cam-a": ([13.405, 52.52], 2), "cam-b": ([13.41, 52.521], 1)}  # fmt: skip
    assert len(lines) == 1 and lines[0]["geometry"]["coordinates"] == [[13.405, 52.52], [13.41, 52.521], [13.405, 52.52]]
    assert cw.camera_info()["cam-a"].name == "Station entrance"


# -- the sample footage: export, verify, the CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def case_service(demo_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A private copy of the session's ingested sample (these tests write cases and an audit log)."""
    from vsearch.service import VSearch

    data = tmp_path_factory.mktemp("cases") / "data"
    shutil.copytree(demo_service.settings.data_dir, data)
    svc = VSearch(demo_service.settings.model_copy(update={"data_dir": data}), demo_service.detector, demo_service.embedder)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def exported(case_service, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A case of the top two clips of a search for visitor 3 (with its query image), exported once."""
    result = case_service.search(QUERY.read_bytes(), SearchFilters(top_k=3))
    cw = case_service.casework
    case = cw.create("visitor 3", "from the sample", "ivan")
    items = cw.add(case.id, [c.id for c in result.clips[:2]], "ivan", QUERY.read_bytes(), filters={"top_k": 3})
    out = tmp_path_factory.mktemp("export") / "case.zip"
    report = cw.export(case.id, out, "ivan", reason="provenance tests", redact="none")  # redaction: test_redact.py
    return case, items, report, result




@pytest.mark.slow
def test_export_holds_every_file_with_its_hash_and_the_clip_provenance(exported, case_service) -> None:  # type: ignore[no-untyped-def]
    case, items, report, result = exported
    assert verify_zip(report.path).ok
    with zipfile.ZipFile(report.path) as z:
        names = sorted(z.namelist())
        manifest = json.loads(z.read(MANIFEST))
        assert z.read(MANIFEST_SHA).decode().split()[0] == hashlib.sha256(z.read(MANIFEST)).hexdigest() == report.manifest_sha256
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
        served = case_service.clip_file(manifest["clips"][0]["clip_id"]).read_bytes()
        assert z.read(manifest["clips"][0]["files"]["clip"]) == served  # the MP4 as the API serves it
    assert names == sorted(names) and sum(n.startswith("clips/") for n in names) == 2
    assert sum(n.startswith("frames/") for n in names) == sum(n.startswith("crops/") for n in names) == 2
    qsha = hashlib.sha256(QUERY.read_bytes()).hexdigest()
    assert f"queries/{qsha}.jpg" in names
    assert {f["path"] for f in manifest["files"]} == set(names) - {MANIFEST, MANIFEST_SHA}
    clip = manifest["clips"][0]
    src_sha = hashlib.sha256(SAMPLE_VIDEO.read_bytes()).hexdigest()
    assert clip["camera_id"] == "lobby" and clip["source_video"]["sha256_at_ingest"] == src_sha
    assert clip["source_video"]["sha256_at_export"] == src_sha and clip["source_video"]["path"] == str(SAMPLE_VIDEO)
    first, last = clip["source_frames"]["first"], clip["source_frames"]["last"]
    assert 0 <= first < last < 1394 and clip["start"] < clip["end"]
    assert {c["clip_id"] for c in manifest["clips"]} == {c.id for c in result.clips[:2]}
    assert manifest["searches"][0]["query_sha256"] == qsha and manifest["searches"][0]["filters"] == [{"top_k": 3}]
    assert manifest["models"]["detector"]["sha256"].startswith("869e83fc")
    assert manifest["models"]["embedders"]["reid-g-all"]["sha256"].startswith("814b6e82")
    assert manifest["software"]["vsearch"] and manifest["software"]["libavcodec"]
    exports = [r for r in case_service.audit.read() if r.get("action") == "case.export"]
    assert exports[0]["manifest_sha256"] == report.manifest_sha256 and exports[0]["case_id"] == case.id


@pytest.mark.slow
def test_clip_rendering_is_deterministic_and_a_second_export_has_the_same_file_hashes(exported, case_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    case, _, report, _ = exported
    assert report.deterministic and not [n for n in report.notes if "render" in n]
    assert [n for n in report.notes if "no search with this image is in the audit log" in n]  # in-process, unaudited
    with zipfile.ZipFile(report.path) as z:
        manifest = json.loads(z.read(MANIFEST))
    assert all(c["rerender_matches"] for c in manifest["clips"])
    shutil.rmtree(case_service.settings.clips_dir)  # rendered again from the source video
    again = case_service.casework.export(case.id, tmp_path / "again.zip", "ana", check_rendering=False, reason="again", redact="none")
    with zipfile.ZipFile(again.path) as z:
        files2 = {f["path"]: f["sha256"] for f in json.loads(z.read(MANIFEST))["files"]}
    assert files2 == {f["path"]: f["sha256"] for f in manifest["files"]}


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> None:
    """Copy a ZIP, replacing (bytes) or dropping (None) some members and adding others."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            data = change.get(info.filename, zi.read(info))
            if data is not None:
                zo.writestr(info, data)
        for name, data in (add or {}).items():
            zo.writestr(name, data)


def _flip(data: bytes, at: float = 0.5) -> bytes:
    i = int(len(data) * at)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.slow
def test_one_bit_changed_in_any_file_fails_verify_naming_it(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = exported
    with zipfile.ZipFile(report.path) as z:
        names = z.namelist()
        blobs = {n: z.read(n) for n in names}
    kinds = {n.split("/")[0] for n in names}
    assert {"clips", "frames", "crops", "queries", MANIFEST, MANIFEST_SHA} <= kinds
    for name in names:
        bad = tmp_path / "bad.zip"
        _rewrite(report.path, bad, {name: _flip(blobs[name])})
        r = verify_zip(bad)
        assert not r.ok, name
        expected = MANIFEST if name == MANIFEST_SHA else name  # a changed hash file means the manifest is unproven
        assert expected in r.changed, (name, r.problems)


@pytest.mark.slow
def test_a_bit_flipped_in_the_zip_bytes_fails_its_crc_and_names_the_file(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = exported
    with zipfile.ZipFile(report.path) as z:
        info = next(i for i in z.infolist() if i.filename.startswith("clips/"))
    raw = bytearray(report.path.read_bytes())
    data_at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[data_at + info.compress_size // 2] ^= 0x10
    bad = tmp_path / "crc.zip"
    bad.write_bytes(bytes(raw))
    r = verify_zip(bad)
    assert not r.ok and r.changed == [info.filename]


@pytest.mark.slow
def test_missing_added_and_rehashed_manifest_fail(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = exported
    with zipfile.ZipFile(report.path) as z:
        crop = next(n for n in z.namelist() if n.startswith("crops/"))
        manifest = json.loads(z.read(MANIFEST))
    _rewrite(report.path, tmp_path / "missing.zip", {crop: None})
    r = verify_zip(tmp_path / "missing.zip")
    assert not r.ok and r.missing == [crop] and r.changed == r.added == []
    _rewrite(report.path, tmp_path / "added.zip", {}, {"clips/extra.mp4": b"\x00" * 10})
    r = verify_zip(tmp_path / "added.zip")
    assert not r.ok and r.added == ["clips/extra.mp4"]
    # a forger edits the manifest and its in-ZIP hash together: only the hash recorded at export catches it
    manifest["clips"][0]["camera_id"] = "elsewhere"
    forged = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    sha = hashlib.sha256(forged).hexdigest()
    _rewrite(report.path, tmp_path / "forged.zip", {MANIFEST: forged, MANIFEST_SHA: f"{sha}  {MANIFEST}\n".encode()})
    assert verify_zip(tmp_path / "forged.zip").ok
    r = verify_zip(tmp_path / "forged.zip", expect_manifest_sha256=report.manifest_sha256)
    assert not r.ok and r.changed == [MANIFEST]
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    assert not verify_zip(tmp_path / "junk.zip").ok


@pytest.mark.slow
def test_route_on_the_sample_footage(exported, case_service) -> None:  # type: ignore[no-untyped-def]
    case, items, _, result = exported
    route = case_service.casework.route(case.id)
    clips = sorted(result.clips[:2], key=lambda c: c.start_ts_s)
    assert [s.camera_id for s in route.stops] == ["lobby"] * len(route.stops)
    assert route.stops[0].start_ts_s == pytest.approx(clips[0].start_ts_s, abs=1e-3)
    assert route.stops[-1].end_ts_s == pytest.approx(max(c.end_ts_s for c in clips), abs=1e-3)
    assert route.per_camera_s["lobby"] == pytest.approx(sum(s.duration_s for s in route.stops))
    assert all(m.kind == "gap" and m.duration_s > 0 for m in route.moves)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsearch.cli", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_case_new_add_list_show_export_verify_route(case_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = str(case_service.settings.data_dir)
    clip_ids = [c.id for c in case_service.search(QUERY.read_bytes(), SearchFilters(top_k=2)).clips]
    new = run_cli("case", "new", "CLI case", "--notes", "n", "--data-dir", data)
    assert new.returncode == 0, new.stderr
    case_id = new.stdout.strip().splitlines()[-1]
    assert case_id.isdigit()
    added = run_cli("case", "add", case_id, *clip_ids, "--query", str(QUERY), "--data-dir", data)
    assert added.returncode == 0 and added.stdout.count("item ") == 2, added.stderr
    assert "CLI case" in run_cli("case", "list", "--data-dir", data).stdout
    shown = json.loads(run_cli("case", "show", case_id, "--json", "--data-dir", data).stdout)
    assert {i["ref"] for i in shown["items"]} == set(clip_ids)
    out = tmp_path / "cli.zip"
    refused = run_cli("case", "export", case_id, "-o", str(out), "--redact", "none", "--data-dir", data)
    assert refused.returncode == 2 and "needs a stated reason" in refused.stderr and not out.exists()
    exp = run_cli("case", "export", case_id, "-o", str(out), "--redact", "none", "--reason", "court order", "--data-dir", data)
    assert exp.returncode == 0, exp.stderr
    sha = exp.stdout.strip().splitlines()[-1].split()[-1]
    ok = run_cli("case", "verify", str(out), "--expect", sha)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    with zipfile.ZipFile(out) as z:
        frame = next(n for n in z.namelist() if n.startswith("frames/"))
        blob = z.read(frame)
    _rewrite(out, tmp_path / "bad.zip", {frame: _flip(blob)}, {"notes.txt": b"x"})
    bad = run_cli("case", "verify", str(tmp_path / "bad.zip"))
    assert bad.returncode == 1 and frame in bad.stderr and "notes.txt" in bad.stderr
    route = run_cli("case", "route", case_id, "--format", "csv", "--data-dir", data)
    assert route.returncode == 0 and route.stdout.startswith("order,camera_id")
    assert run_cli("cameras", "set", "lobby", "--name", "Lobby", "--lat", "48.1", "--lon", "11.5", "--data-dir", data).returncode == 0
    gj = json.loads(run_cli("case", "route", case_id, "--format", "geojson", "--data-dir", data).stdout)
    assert gj["features"][0]["geometry"] == {"type": "Point", "coordinates": [11.5, 48.1]}
    missing = run_cli("case", "add", case_id, "999-1-0-1000", "--data-dir", data)
    assert missing.returncode != 0 and "no video with id 999" in missing.stderr
    audited = [json.loads(line) for line in (Path(data) / "audit.jsonl").read_text().splitlines()]
    assert {"case.create", "case.add", "case.export", "camera.set"} <= {r.get("action") for r in audited if r.get("role") == "cli"}


@pytest.mark.slow
def test_a_visitor_alone_in_the_room_has_no_companions(exported, case_service) -> None:  # type: ignore[no-untyped-def]
    case, items, _, _ = exported
    assert case_service.casework.companions(case.id) == []  # the sample's visitors came one at a time
    loose = case_service.casework.companions(case.id, max_dt_s=60, max_dist_h=20)  # "together" stretched: 60 s, 20 heights
    assert loose and all(c.encounters for c in loose)
    with pytest.raises(InputError, match="max_dist_h must be"):
        case_service.casework.companions(case.id, max_dist_h=-1)
