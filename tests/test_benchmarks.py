"""Every benchmark runs at its smallest size, so none drifts from the code. No timing assertions here: speed goals
live in the benchmarks themselves; these check that they run, check correctness and write their JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_detector_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_detector

    payload = bench_detector.main(["--size", "S", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bench_detector_S.json").read_text())
    assert {r["backend"] for r in data["rows"]} >= {"torch", "onnx", "openvino"}
    # every backend finds the reference backend's persons
    assert all(r["ref_boxes_found"] >= 0.9 for r in payload["rows"])
    # the machine the figures were measured on is this one
    assert (data["machine"]["cores"], data["machine"]["python"]) == (os.cpu_count(), platform.python_version())


def test_embedder_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_embedder

    payload = bench_embedder.main(["--size", "S", "--out", str(tmp_path)])
    onnx = [r for r in payload["rows"] if r["embedder"] == "mobilenetv2-imagenet" and r["backend"] == "onnxruntime"]
    assert onnx and all(r["min_cosine_vs_ref"] >= 0.999 for r in onnx)
    assert (tmp_path / "bench_embedder_S.json").exists()


def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_ingest

    payload = bench_ingest.main(["--size", "S", "--out", str(tmp_path)])
    from benchmarks.bench_ingest import VARIANTS

    assert len(payload["rows"]) == 1 + len(VARIANTS) and all(r["speed_x_realtime"] > 0 for r in payload["rows"])
    assert "simd" in payload["machine"]
    assert all(c["person_instants_recall"] >= 0.8 for c in payload["recall_checks"])
    assert (tmp_path / "bench_ingest_S.json").exists()


def test_api_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_api

    payload = bench_api.main(["--size", "S", "--queries", "8", "--out", str(tmp_path)])
    assert [r["clients"] for r in payload["rows"]] == [1, 4]
    assert all(r["errors"] == 0 and r["requests"] == 8 for r in payload["rows"])
    assert (tmp_path / "bench_api_S.json").exists()


def test_index_benchmark_smoke(tmp_path: Path) -> None:
    """Runs every index type at the smallest size; the benchmark itself asserts that filtered exact search equals
    brute force on the subset before it reports anything."""
    from benchmarks import bench_index

    payload = bench_index.main(["--size", "S", "--out", str(tmp_path)])
    kinds = {r["index"].split(" ")[0] for r in payload["rows"]}
    assert {"Flat", "HNSW32"} <= kinds and any(k.startswith("IVF") and "PQ" in k for k in kinds)
    assert all(0.0 <= r["recall_at_10"] <= 1.0 for r in payload["rows"])
    assert all(r["recall_at_10"] == 1.0 for r in payload["rows"] if r["index"].startswith("Flat"))
    assert (tmp_path / "bench_index_S.json").exists()


def test_index_stream_benchmark_smoke(tmp_path: Path) -> None:
    """vsearch's compressed index over a streamed timeline at its smallest: every window and client count has a
    row, recall against the exact top-10 kept while streaming, and resident bytes per sighting."""
    from benchmarks import bench_index

    payload = bench_index.main(["--stream", "3000", "--layouts", "pq", "--dir", str(tmp_path), "--out", str(tmp_path)])
    rows = payload["rows"]
    assert {(r["window"], r["clients"]) for r in rows} == {(w, c) for w in ("1h", "1d", "30d") for c in (1, 4, 16)}
    assert all(r["layout"].endswith("+SQ8") and "PQ" in r["layout"] for r in rows)
    assert all(0 <= r["recall_at_10"] <= 1 for r in rows) and rows[0]["loaded_anon_bytes_per_sighting"] > 0
    assert min(r["recall_at_10"] for r in rows if r["window"] != "30d") >= 0.9  # narrow windows probe every list
    assert (tmp_path / "bench_index_stream_3000.json").exists()


def test_cluster_benchmark_smoke(tmp_path: Path) -> None:
    """A local Ray cluster with 1 and 2 workers (models on every core, then bounded to 1 thread each) stores exactly
    what one process stores, then reports throughput."""
    import os

    from benchmarks import bench_cluster

    payload = bench_cluster.main(["--size", "S", "--out", str(tmp_path)])
    cores = os.cpu_count()
    assert [(r["mode"], r["workers"], r["threads_per_worker"]) for r in payload["rows"]] == [
        ("one process", 1, cores), ("ray", 1, cores), ("ray", 2, cores), ("ray", 2, 1)
    ]  # fmt: skip
    assert all(r["files_per_hour"] > 0 for r in payload["rows"])
    assert (tmp_path / "cluster_S.json").exists()


def test_store_benchmark_smoke(tmp_path: Path) -> None:
    """Synthetic sightings through the real commit path; the benchmark checks recall before it times searches."""
    from benchmarks import bench_store

    payload = bench_store.main(["--size", "S", "--out", str(tmp_path)])
    assert [(r["window"], r["cameras"]) for r in payload["rows"]] == [("1%", "all"), ("10%", "all"), ("100%", "all"), ("1%", 1), ("10%", 1), ("100%", 1)]
    assert all(r["recall_at_10"] >= 0.95 and r["write_sightings_per_s"] > 0 for r in payload["rows"])
    assert (tmp_path / "bench_store_S_sqlite.json").exists()


def test_fanout_benchmark_smoke(tmp_path: Path) -> None:
    """4 shard owners on a local Ray cluster against the in-process index (recall checked before any timing), then
    one owner killed mid-load: no errors, no silently partial answer, every flagged answer names the owner's day."""
    from benchmarks import bench_fanout

    payload = bench_fanout.main(["--size", "S", "--out", str(tmp_path)])
    assert all(r["recall_at_10"] == 1.0 for r in payload["rows"])  # exact (Flat) at this size, both ways
    kill = payload["kill_one_owner"]
    assert kill["errors"] == 0 and kill["silently_partial"] == 0 and kill["recovery_s"] is not None
    assert kill["flagged_partial"] == kill["flagged_with_the_right_range"] > 0
    assert (tmp_path / "bench_fanout_S_sqlite.json").exists()


def test_fleet_simulation_smoke(tmp_path: Path, postgres_url: str) -> None:
    """Two cameras for two hours into a real PostgreSQL while a second node follows by the change log: every
    hour the node holds every sighting and its searches match exact search."""
    from benchmarks import fleet_sim

    payload = fleet_sim.main(["--cameras", "2", "--hours", "2", "--rate", "120", "--catalog-url", postgres_url,
                              "--out", str(tmp_path)])  # fmt: skip
    assert [(r["hours"], r["sightings"]) for r in payload["rows"]] == [(1, 240), (2, 480)]
    assert all(r[f"{f} recall@10"] == 1.0 for r in payload["rows"] for f in ("1 h window", "1 camera", "no filter"))
    assert (tmp_path / "fleet_postgresql_2x2.json").exists()


def test_recall_benchmark_smoke(tmp_path: Path) -> None:
    """One MOT17 sequence through the real ingest, SD and full size, scored by height bucket."""
    from benchmarks import bench_recall

    payload = bench_recall.main(["--size", "S", "--variants", "default", "--out", str(tmp_path)])
    assert [r["footage"] for r in payload["rows"]] == ["SD 384 px", "full (1080p)"]
    for r in payload["rows"]:
        assert all(b["instant_recall"] is None or 0.0 <= b["instant_recall"] <= 1.0 for b in r["buckets"].values())
        assert sum(b["instants"] for b in r["buckets"].values()) > 0
        assert 0 <= r["false_boxes_per_frame"] < 5  # track boxes overlapping no annotated object
    assert (tmp_path / "bench_recall_S.json").exists()


def test_tracking_benchmark_smoke(tmp_path: Path) -> None:
    """20 s of PETS and of the sample clip: every margin setting scored against every-frame tracking; on PETS the
    default margin tracks more of the detections than plain IoU (margin 0)."""
    from benchmarks import bench_tracking

    payload = bench_tracking.main(["--size", "S", "--out", str(tmp_path)])
    rows = payload["rows"]
    assert len(rows) == 2 * len(bench_tracking.MARGINS) and sum(r["default"] for r in rows) == 2
    assert all(0 < r["tracked"] <= 1 and 0 < r["purity"] <= 1 and r["start_detections"] > 0 for r in rows)
    pets = {r["margin_per_s"]: r for r in rows if r["footage"].startswith("PETS")}
    assert pets[1.0]["tracked"] > pets[0.0]["tracked"]
    assert (tmp_path / "bench_tracking_S.json").exists()


def test_search_quality_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import eval_search
    from training.datasets import PKU, convert_pku
    from training.datasets import pku_fold as fold_ids
    from vsearch.config import PROJECT_ROOT
    from vsearch.embed import OnnxEmbedder
    from vsearch.evaluate import evaluate_folder

    payload = eval_search.main(["--size", "S", "--out", str(tmp_path)])
    assert (tmp_path / "eval_search_S.json").exists()
    one = next(r for r in payload["fusion"] if r["set"] == "pku-fold1-heldout" and r["images"] == 1)
    # one image per query is the standard protocol: the same figures as vsearch.evaluate on the same set and model
    convert_pku(PKU, tmp_path / "pku1", fold_ids(1))
    onnx = PROJECT_ROOT / "models" / "reid" / "reid-mnv2-fold1.onnx"
    ref = evaluate_folder(tmp_path / "pku1", OnnxEmbedder("reid-mnv2-fold1", 256, lambda: onnx, (128, 256)))
    assert (one["rank_1_pct"], one["mAP_pct"]) == (round(100 * ref["rank_1"], 1), round(100 * ref["mAP"], 1))
    assert {r["rerank"] for r in payload["rerank"]} == {"none", "k-reciprocal", "aqe"}
    assert all(r["rest_mAP_after_pct"] >= 0 for r in payload["feedback"])


def test_search_quality_footage_part_runs(tmp_path: Path) -> None:
    """The footage half of eval_search (size M only: the smoke test above skips it) ingests and searches real
    footage: the sample clip's visits, Market's two cameras, MOT17-mini with each re-ranking."""
    from benchmarks import eval_search

    result = eval_search.run_footage(tmp_path)
    sets = {r["set"] for r in result["footage_rerank"]}
    assert {"sample-clip-6-visits", "market-2-cams-16-stills"} <= sets and any(s.startswith("mot17-mini") for s in sets)
    clip = [r for r in result["footage_rerank"] if r["set"] == "sample-clip-6-visits" and r["rerank"] == "none"]
    assert clip and clip[0]["rank_1_pct"] >= 80  # the visitor is found again on the clip (100 % measured)
    assert len(result["footage_feedback"]) == 2


def test_camera_filter_benchmark_smoke(tmp_path: Path) -> None:
    """Before and after camera slots give the same top-50 (checked inside the benchmark before any timing), for
    each window, and the catalog counts the camera's sightings without listing them."""
    from benchmarks import bench_camera_filter

    payload = bench_camera_filter.main(["--sizes", "20000", "--runs", "2", "--out", str(tmp_path)])
    assert [r["window"] for r in payload["rows"]] == ["1%", "10%", "100%"]
    assert all(r["sightings"] == 20000 and r["camera_sightings"] > 0 for r in payload["rows"])
    assert (tmp_path / "bench_camera_filter.json").exists()


def test_watchlist_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_watchlist

    payload = bench_watchlist.main(["--size", "S", "--out", str(tmp_path)])
    assert [c["threshold"] for c in payload["curve"]] == list(bench_watchlist.SWEEP)
    assert payload["at_default"]["entries"] == 2 and payload["at_default"]["entries_found"] == 2
    assert (tmp_path / "bench_watchlist_S.json").exists()


def test_hd_benchmark_smoke(tmp_path: Path) -> None:
    """4 s of 1080p25 made from the sample clip: every stage measured, planned decoding samples the frames that
    decoding every frame does (the benchmark asserts it)."""
    from benchmarks import bench_hd

    payload = bench_hd.main(["--size", "S", "--out", str(tmp_path)])
    (row,) = payload["rows"]
    assert row["stream"] == "1080p25" and row["frames_sampled"] == 8
    assert all(row[f"{s}_core_s_per_cam_s"] > 0 for s in ("decode_every_frame", "decode", "detect", "ingest"))
    assert payload["machine"]["simd"] and (tmp_path / "bench_hd_S.json").exists()


def test_find_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_find

    payload = bench_find.main(["--size", "S", "--out", str(tmp_path)])  # checks its answers against brute force
    assert [r["filter"] for r in payload["rows"]][0] == "no filter" and payload["rows"][0]["in filter"] == 10_000
    assert (tmp_path / "bench_find_S.json").exists()


def test_tiles_benchmark_smoke(tmp_path: Path) -> None:
    """One MOT17 sequence, today's whole frame against whole + tiles and whole + far band, scored by height band."""
    from benchmarks import bench_tiles

    variants = ["whole frame at 1280 (today)", "whole + 640 px tiles at native scale", "whole + far band 192 px at 1.5x"]
    payload = bench_tiles.main(["--size", "S", "--variants", *variants, "--out", str(tmp_path)])
    assert [r["settings"] for r in payload["rows"]] == variants
    assert all(0 <= (r["recall_100-200px_conf0.1"] or 0) <= 1 for r in payload["rows"])
    assert payload["rows"][0]["cpu_x_first"] == 1 and payload["machine"]["simd"]
    assert (tmp_path / "bench_tiles_S.json").exists()


def test_keyframes_benchmark_smoke(tmp_path: Path) -> None:
    """6 s of PETS as a 1080p25 camera file with 1 s GOPs, ingested at 2 samples a second and at keyframes only."""
    from benchmarks import bench_keyframes

    payload = bench_keyframes.main(["--size", "S", "--out", str(tmp_path)])
    row = payload["rows"][0]
    assert row["frames_keyframes_only"] < row["frames_sampled"] and 0 <= row["tracks_still_found"] <= 1
    assert (tmp_path / "bench_keyframes_S.json").exists()


def test_alert_quality_benchmark_smoke(tmp_path: Path) -> None:
    """12 held-out ids of each CUHK set through a real watchlist and Matcher, and short footage through ingest."""
    from benchmarks import bench_alert_quality

    payload = bench_alert_quality.main(["--size", "S", "--out", str(tmp_path)])
    assert [r["set"] for r in payload["identities"]] == ["cuhk03", "cuhk01"]
    for r in payload["identities"]:
        assert r["identities"] == 12 and [c["threshold"] for c in r["curve"]] == list(bench_alert_quality.SWEEP)
        assert r["curve"][0]["recall"] >= r["curve"][-1]["recall"] and r["curve"][0]["false"] >= r["curve"][-1]["false"]
    foot = payload["footage"]
    assert foot["pets_with_sample_visitors"]["entries"] == 1 and foot["sample_with_pets_people"]["entries"] == 2
    assert foot["pets_with_sample_visitors"]["footage_s"] > 0 and (tmp_path / "bench_alert_quality_S.json").exists()


def test_redact_benchmark_smoke(tmp_path: Path) -> None:
    """MOT17-09: bystanders covered by mode and by height and visibility, the subject's box, export time."""
    from benchmarks import bench_redact

    payload = bench_redact.main(["--size", "S", "--out", str(tmp_path)])
    target = [r for r in payload["bystanders"] if r["bystanders"].startswith("target")]
    assert [r["mode"] for r in target] == ["bystanders", "faces", "bystanders, detections only"]
    assert all(r["n"] > 0 and 0 <= r["fully_covered_%"] <= 100 for r in target)
    assert [r["mode"] for r in payload["subject"]] == ["bystanders", "faces"]
    assert [r["mode"] for r in payload["export"]] == ["none", "bystanders", "faces"]
    assert all(r["deterministic"] for r in payload["export"])
    assert (tmp_path / "bench_redact_S.json").exists()


def test_substream_benchmark_smoke(tmp_path: Path) -> None:
    """8 s of a live 1080p25 camera with a 640x360 substream over RTSP: every run measured, both watches store
    sightings."""
    from benchmarks import bench_substream

    from .conftest import missing
    from .test_live_rtsp import _gst_missing

    if reason := _gst_missing():
        missing(reason)
    payload = bench_substream.main(["--size", "S", "--out", str(tmp_path)])
    rows = {r["run"]: r for r in payload["rows"]}
    assert all(r["core_s_per_cam_s"] > 0 for r in rows.values()) and len(rows) == 6
    main, sub = rows["watch 1080p main alone"], rows["watch 1080p + 640x360 --detect-url"]
    # dropped substream frames are allowed: a loaded machine's main stream falls behind (benchmarks/README.md)
    assert main["sightings"] > 0 and sub["sightings"] > 0 and sub["frames_detected"] > 0
    assert payload["machine"]["simd"] and (tmp_path / "bench_substream_S.json").exists()
