"""Companions and auto-grouping: real MOT17 ground-truth geometry and crops, CUHK03 crops, the sample footage."""

from __future__ import annotations

import configparser
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsearch.companions import Encounter, Presence, encounters_at, group_and_rank
from vsearch.config import Settings
from vsearch.embed import l2_normalize, make_embedder, thresholds
from vsearch.identities import (
    bcubed_scores,
    cannot_link,
    cluster,
    clustering_quality,
    pairwise_scores,
)  # fmt: skip

from .conftest import DEMO_START, dataset, visits

T0 = 1_772_373_600.0


def mot_tracks(seq: Path) -> tuple[float, dict[int, list[tuple[int, np.ndarray]]]]:
    """fps and pedestrian gt per track: [(frame, xyxy)]."""
    ini = configparser.ConfigParser()
    ini.read(seq / "seqinfo.ini")
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
    for r in gt[np.argsort(gt[:, 0])]:
        tracks.setdefault(int(r[1]), []).append((int(r[0]), np.array([r[2], r[3], r[2] + r[4], r[3] + r[5]], np.float32)))
    return float(ini["Sequence"]["frameRate"]), tracks


def presence(video: int, tid: int, rows: list[tuple[int, np.ndarray]], fps: float, first_frame: int = 1) -> Presence:
    return Presence(video, tid, "cam", np.array([(f - first_frame) / fps for f, _ in rows]), np.stack([b for _, b in rows]))


def brute_force(target: list, other: list, fps: float, max_dt_s: float, max_dist_h: float) -> tuple[int, float]:
    """Target frames with the other close (any box within max_dt_s, feet within max_dist_h mean heights)."""
    n, best = 0, np.inf
    for f, a in target:
        ds = []
        for g, b in other:
            if abs(f - g) / fps <= max_dt_s:
                feet = np.hypot((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2, a[3] - b[3])
                ds.append(feet / (((a[3] - a[1]) + (b[3] - b[1])) / 2))
        if ds and min(ds) <= max_dist_h:
            n += 1
            best = min(best, min(ds))
    return n, best


@pytest.mark.parametrize("seq_name", ["MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-09-FRCNN"])
@pytest.mark.parametrize(("max_dt_s", "max_dist_h"), [(0.0, 1.5), (2.0, 1.5), (0.05, 0.8)])
def test_encounters_on_mot17_ground_truth_match_a_brute_force_count(seq_name: str, max_dt_s: float, max_dist_h: float) -> None:
    fps, tracks = mot_tracks(dataset("mot17-mini") / "train" / seq_name)
    tids = sorted(tracks)
    checked = 0
    for target_tid in tids[:8]:
        others = [presence(1, t, tracks[t], fps) for t in tids if t != target_tid]
        got = {e.track_id: e for e in encounters_at(presence(1, target_tid, tracks[target_tid], fps), others, 0, max_dt_s, max_dist_h)}
        for t in tids:
            if t == target_tid:
                continue
            n, best = brute_force(tracks[target_tid], tracks[t], fps, max_dt_s, max_dist_h)
            assert (t in got) == (n > 0), (target_tid, t)
            if n:
                assert got[t].samples == n and got[t].min_distance_h == pytest.approx(best, rel=1e-5)
                checked += 1
    assert checked > 0  # real crowds: somebody stands close to somebody


def test_same_person_met_in_two_stays_is_one_row_on_real_mot17_crops() -> None:
    """MOT17-04 split in two "stays" (frames 1-4 and 5-8, tracks renumbered as if re-tracked on another camera):
    grouping by appearance must put each person's two encounters in one row, and nobody else's.
    (MOT17-mini tracks were in reid-mnv2's training data: this checks the plumbing on real crops, not accuracy.)"""
    seq = dataset("mot17-mini") / "train" / "MOT17-04-FRCNN"
    fps, tracks = mot_tracks(seq)
    embedder = make_embedder(Settings())
    frames = {f: cv2.imread(str(seq / "img1" / f"{f:06d}.jpg")) for f in range(1, 9)}
    halves = [(1, range(1, 5)), (2, range(5, 9))]
    full = [t for t in tracks if len(tracks[t]) == 8]  # present in every frame; the one with most people close
    target = max(full, key=lambda t: sum(brute_force(tracks[t], tracks[o], fps, 0, 1.5)[0] > 0 for o in tracks if o != t))
    encounters: list[Encounter] = []
    appearance = {}
    truth = {}
    for video, fr in halves:
        part = {t: [(f, b) for f, b in rows if f in fr] for t, rows in tracks.items()}
        part = {t: rows for t, rows in part.items() if rows}
        for t, rows in part.items():
            crops = [np.ascontiguousarray(frames[f][max(0, int(b[1])) : int(b[3]), max(0, int(b[0])) : int(b[2]), ::-1]) for f, b in rows]
            crops = [c for c in crops if c.shape[0] >= 16 and c.shape[1] >= 8]
            if crops:
                appearance[(video, t + 1000 * video)] = l2_normalize(embedder.embed(crops).mean(0, keepdims=True))[0]
            truth[(video, t + 1000 * video)] = t
        others = [presence(video, t + 1000 * video, rows, fps) for t, rows in part.items() if t != target]
        encounters += encounters_at(presence(video, target + 1000 * video, part[target], fps), others, video - 1)
    rows = group_and_rank(encounters, appearance, None, 0.7)
    met = {truth[(e.video_id, e.track_id)] for e in encounters}
    assert len(met) >= 2
    for r in rows:
        people = {truth[(e.video_id, e.track_id)] for e in r.encounters}
        assert len(people) == 1, f"row {r.rank} mixes people {people}"
    twice = [r for r in rows if r.visits == 2]
    assert twice and rows[0].visits == 2  # seen in both stays ranks above those seen once
    assert len(rows) == len(met)  # each person met is exactly one row


def test_grouping_ranks_by_stays_then_cameras_then_time_together() -> None:
    v = {k: np.eye(4, dtype=np.float32)[i] for i, k in enumerate([(1, 1), (2, 5), (1, 2), (3, 9)])}
    e = [
        Encounter(0, 1, 1, "a", 0, 1, 5, 0.5), Encounter(1, 2, 5, "b", 100, 101, 1, 1.0),  # one person (same look)
        Encounter(0, 1, 2, "a", 0, 9, 20, 0.2),  # more time together, but one stay
        Encounter(1, 3, 9, "b", 100, 102, 3, 0.9),
    ]
    v[(2, 5)] = v[(1, 1)]
    rows = group_and_rank(e, v, None, 0.7)
    assert [(r.visits, r.cameras, r.samples) for r in rows] == [(2, ("a", "b"), 6), (1, ("a",), 20), (1, ("b",), 3)]
    # two people on one camera at one time never merge, however alike
    same = group_and_rank([Encounter(0, 1, 1, "a", 0, 5, 3, 0.5), Encounter(0, 1, 2, "a", 2, 6, 3, 0.5)], {(1, 1): v[(1, 1)], (1, 2): v[(1, 1)]}, None, 0.7)
    assert len(same) == 2


# -- clustering ---------------------------------------------------------------------------------------------


def test_cannot_link_keeps_simultaneous_tracks_of_one_camera_apart() -> None:
    x = l2_normalize(np.array([[1, 0], [1, 0.01], [1, 0.02], [0, 1]], np.float32))
    cl = cannot_link(["a", "a", "b", "a"], [0, 5, 0, 0], [10, 15, 10, 10])
    assert cl[0, 1] and not cl[0, 2] and cl[0, 3]
    labels = cluster(x, 0.5, cl)
    assert labels[0] != labels[1] and labels[2] in (labels[0], labels[1]) and len(set(labels)) == 3
    assert len(set(cluster(x, 0.5))) == 2  # without the rule, the three alike tracks are one


@pytest.mark.parametrize(
    ("truth", "pred", "pairwise", "bcubed"),
    [
        ([1, 1, 2, 2], [0, 0, 1, 1], (1.0, 1.0), (1.0, 1.0)),
        ([1, 1, 2, 2], [0, 0, 0, 0], (2 / 6, 1.0), (0.5, 1.0)),
        ([1, 1, 2, 2], [0, 1, 2, 3], (1.0, 0.0), (1.0, 0.5)),
        ([1, 1, 1, 2], [0, 0, 1, 1], (0.5, 1 / 3), ((1 + 1 + 0.5 + 0.5) / 4, (2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)),
    ],
)
def test_pairwise_and_bcubed_scores(truth: list, pred: list, pairwise: tuple, bcubed: tuple) -> None:
    pw, bc = pairwise_scores(truth, pred), bcubed_scores(truth, pred)
    assert (pw["precision"], pw["recall"]) == pytest.approx(pairwise)
    assert (bc["precision"], bc["recall"]) == pytest.approx(bcubed)


@pytest.mark.slow
def test_clustering_quality_on_unseen_cuhk03_people_is_above_its_measured_floor() -> None:
    """40 of the CUHK03 identities held out of the default embedder's training (`training.datasets.cuhk_split`),
    2 crops per track, up to 2 tracks per camera (160 tracks). Measured on this draw at the default threshold
    (0.70, reid-mnv2-1400): BCubed P 0.896 / R 0.878 / F1 0.887, pairwise P 0.770 / R 0.838 (all 100 held-out ids,
    benchmarks/eval_identities.py: BCubed F1 0.837). Leaving every track alone scores BCubed F1 0.40, so the
    floors ask for real merges, most of them right."""
    from benchmarks.eval_identities import crop_tracks
    from training.datasets import cuhk_split

    folder = dataset("cuhk03-labeled-pair1")
    ids = cuhk_split(folder)[1][:40]
    emb, truth, _ = crop_tracks(folder, ids, make_embedder(Settings()))
    q = clustering_quality(truth, cluster(emb, thresholds(Settings().embedder).group))
    alone = clustering_quality(truth, np.arange(len(truth)))
    assert q["bcubed_f1"] >= 0.8 and q["bcubed_f1"] >= alone["bcubed_f1"] + 0.3, (q, alone)
    assert q["bcubed_precision"] >= 0.8 and q["pairwise_precision"] >= 0.6, q


@pytest.mark.slow
def test_people_seen_in_the_sample_window(demo_service) -> None:  # type: ignore[no-untyped-def]
    """The six visitors of the sample clip (one at a time): grouping its tracks against the hand-read visit table."""
    from vsearch.types import parse_time

    people = demo_service.casework.identities(parse_time(DEMO_START), parse_time(DEMO_START) + 200)
    tracks = [(t, p.id) for p in people for t in p.tracks]
    v = visits()

    def visit_of(t) -> int:  # type: ignore[no-untyped-def]
        mid = (t.start_ts_s + t.end_ts_s) / 2 - T0
        return min(v, key=lambda r: max(r[1] - mid, mid - r[2], 0))[0]

    q = clustering_quality([visit_of(t) for t, _ in tracks], [pid for _, pid in tracks])
    assert q["items"] >= 6 and q["true_identities"] == 6
    # measured 0.81 / 1.0 (7 tracks, one wrong merge) at threshold 0.70 with reid-mnv2-1400
    assert q["bcubed_precision"] >= 0.5 and q["bcubed_recall"] >= 0.7, q
    assert sum(p.sightings for p in people) == demo_service.catalog.count_sightings()
    with pytest.raises(Exception, match="end after it starts"):
        demo_service.casework.identities(parse_time(DEMO_START), parse_time(DEMO_START))
