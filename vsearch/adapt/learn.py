"""Fine-tune a re-ID network on a deployment's own unlabelled tracklets (PyTorch; imported only when adapting).

What the ingest knows stands in for labels (intra-camera supervision):
  - one track is one person: each camera gets a classifier over its own tracks (cosine softmax over that camera's
    tracks only, so two tracks of one camera are always told apart: a camera's tracks are of different people
    unless something links them);
  - links across cameras come from clustering the track-level embeddings (the mean of a track's crops, each
    camera's own mean removed first): mutual nearest neighbours between two cameras, above a similarity, joined
    into clusters; two tracks of one camera that overlap in time are never joined (cannot-link), nor are tracks an
    investigator marked as different; tracks an investigator confirmed as the same person are joined first;
  - a batch-hard triplet loss over the clusters pulls a person's tracks on different cameras together (a cosine
    classifier over the clusters is there too, weight 0 by default: see LearnOptions.global_weight).
Rounds re-embed, re-cluster and train again, within a wall-time budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from vsearch.adapt.links import Tracklet, cluster_tracklets, track_features
from vsearch.reidnet import (
    H,
    ReidNet,
    W,
    augment,
    batch_hard_triplet,
    export_onnx,
    load_checkpoint,
    to_tensor,
)


@dataclass(frozen=True)
class LearnOptions:
    """How `fine_tune` learns; the defaults are the measured ones (training/results/adapt/)."""

    budget_s: float = 600.0  # wall time for the whole fine-tuning (embedding rounds included)
    rounds: int = 3
    link_similarity: float = 0.3  # track-level cosine similarity (camera means removed) for a cross-camera link
    p: int = 16  # clusters per batch
    k: int = 4  # crops per cluster
    lr: float = 1e-4
    scale: float = 16.0  # cosine softmax temperature
    # weight of a classifier over the cross-camera clusters beside the per-camera ones: 0, because the clusters'
    # links are mostly wrong early on (36-38 % right from the issue-31 base on CUHK03) and such a classifier treats a
    # person's unlinked track on another camera as a different class: weight 0 gave 41.0 % rank-1 there against
    # 36.9 with weight 1 (training/results/adapt/); the triplet loss still uses the clusters
    global_weight: float = 0.0
    train_from: int = 0  # MobileNetV2 blocks before this one keep the base's weights (0: all the base trained)
    embed_per_track: int = 4  # crops per track embedded for the clustering
    cctv_aug: bool = True
    seed: int = 0
    threads: int | None = None
    max_steps: int | None = None  # stop after this many optimiser steps in all (tests, measurements)


@dataclass
class LearnResult:
    net: ReidNet
    record: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[str], None]


def embed_crops(net: ReidNet, crops: Sequence[NDArray[np.uint8]], threads: int | None = None) -> NDArray[np.float32]:
    """L2-normalised embeddings of RGB crops by the network in eval mode, run by ONNX Runtime (exported to a
    temporary file: on this CPU about ten times faster than PyTorch's forward pass)."""
    import tempfile

    from vsearch.embed import OnnxEmbedder

    with tempfile.TemporaryDirectory(prefix="vsearch-adapt-") as tmp:
        path = Path(tmp) / "round.onnx"
        export_onnx(net, path)
        e = OnnxEmbedder("adapting", int(net.embed.out_features), lambda: path, (W, H), 32, threads)
        return e.embed(crops)


def _cosine_logits(f: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * F.normalize(f, dim=1) @ F.normalize(weight, dim=1).T


def fine_tune(
    base: Path,
    tracklets: Sequence[Tracklet],
    options: LearnOptions = LearnOptions(),
    same: Sequence[tuple[int, int]] = (),
    different: Sequence[tuple[int, int]] = (),
    progress: ProgressFn | None = None,
    truth: Sequence[int] | None = None,
) -> LearnResult:
    """Fine-tune a copy of the checkpoint `base` on `tracklets` (see the module docstring). `same` / `different`:
    pairs of tracklet indices an investigator confirmed or rejected. `truth` (measurement only): each tracklet's
    true identity, to record how right the cross-camera links were in each round."""
    t_start = time.monotonic()
    say = progress or (lambda _m: None)
    if options.threads:
        torch.set_num_threads(options.threads)
    rng = random.Random(options.seed)
    torch.manual_seed(options.seed)
    net = load_checkpoint(base, 1)
    crops: list[NDArray[np.uint8]] = []
    owner: list[int] = []
    for t_i, t in enumerate(tracklets):
        for c in t.crops:
            crops.append(np.ascontiguousarray(c if c.shape[:2] == (H, W) else _resize(c)))
            owner.append(t_i)
    owner_arr = np.array(owner)
    cameras = sorted({t.camera for t in tracklets})
    cam_of_track = np.array([cameras.index(t.camera) for t in tracklets])
    for q in net.features[: options.train_from].parameters():
        q.requires_grad_(False)  # their batch norms still follow the new footage's statistics while training
    head = [p for n, p in net.named_parameters() if not n.startswith("features.") and p.requires_grad]
    backbone = [p for p in net.features.parameters() if p.requires_grad]
    rounds: list[dict[str, Any]] = []
    steps_done = 0
    for r in range(options.rounds):
        t_round = time.monotonic()
        sample = _per_track(owner_arr, options.embed_per_track)
        feats = embed_crops(net, [crops[i] for i in sample], options.threads)
        tf = track_features(feats, owner_arr[sample], len(tracklets))
        labels, stats = cluster_tracklets(tf, tracklets, options.link_similarity, same, different, truth)
        embed_s = time.monotonic() - t_round
        left = options.budget_s - (time.monotonic() - t_start)
        round_s = left / (options.rounds - r)
        say(f"round {r + 1}/{options.rounds}: {stats['clusters']} people from {len(tracklets)} tracks"
            f" ({stats['cross_camera_links']} cross-camera links), training {round_s:.0f} s")  # fmt: skip
        # classifiers: one row per track (softmax within its camera) and one per cluster, started at the centroids
        track_w = torch.nn.Parameter(torch.from_numpy(tf.copy()))
        n_clusters = int(labels.max()) + 1
        cent = np.zeros((n_clusters, tf.shape[1]), np.float32)
        np.add.at(cent, labels, tf)
        cluster_w = torch.nn.Parameter(torch.from_numpy(cent))
        opt = torch.optim.Adam(
            [{"params": backbone + head, "lr": options.lr}, {"params": [track_w, cluster_w], "lr": 10 * options.lr}],
            weight_decay=5e-4,
        )
        same_cam = torch.from_numpy(cam_of_track[:, None] == cam_of_track[None, :])
        crop_label = labels[owner_arr]
        by_cluster: dict[int, list[int]] = {}
        for i, y in enumerate(crop_label.tolist()):
            by_cluster.setdefault(y, []).append(i)
        ids = list(by_cluster)
        losses: list[float] = []
        deadline = time.monotonic() + max(0.0, round_s - embed_s)
        net.train()
        while time.monotonic() < deadline and (options.max_steps is None or steps_done < options.max_steps):
            chosen = rng.sample(ids, min(options.p, len(ids)))
            b = [i for y in chosen for i in _draw(by_cluster[y], options.k, rng)]
            x = to_tensor([augment(crops[i], rng, options.cctv_aug) for i in b])
            f = net.embed(net.pooled(x))
            fb = net.bnneck(f)
            tracks = torch.from_numpy(owner_arr[b])
            y = torch.from_numpy(crop_label[b])
            intra = _cosine_logits(fb, track_w, options.scale).masked_fill(~same_cam[tracks], -1e4)
            loss = F.cross_entropy(intra, tracks) + options.global_weight * F.cross_entropy(
                _cosine_logits(fb, cluster_w, options.scale), y
            ) + batch_hard_triplet(f, y)  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps_done += 1
        rounds.append({
            "round": r + 1, **stats, "steps": len(losses), "loss_first": round(losses[0], 4) if losses else None,
            "loss_last": round(float(np.mean(losses[-10:])), 4) if losses else None,
            "embed_s": round(embed_s, 1), "round_s": round(time.monotonic() - t_round, 1),
        })  # fmt: skip
    net.eval()
    record = {
        "tracklets": len(tracklets), "crops": len(crops), "cameras": len(cameras), "rounds": rounds,
        "steps": steps_done, "train_s": round(time.monotonic() - t_start, 1),
        "options": {k: v for k, v in options.__dict__.items()},
    }  # fmt: skip
    return LearnResult(net, record)


def _per_track(owner: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """Indices of the first `k` crops of each track."""
    rank = np.zeros(len(owner), np.int64)
    seen: dict[int, int] = {}
    for i, t in enumerate(owner.tolist()):
        rank[i] = seen.get(t, 0)
        seen[t] = rank[i] + 1
    return np.flatnonzero(rank < k)


def _resize(crop: NDArray[np.uint8]) -> NDArray[np.uint8]:
    import cv2

    return np.asarray(cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR), np.uint8)


def _draw(idx: list[int], k: int, rng: random.Random) -> list[int]:
    return rng.sample(idx, k) if len(idx) >= k else [rng.choice(idx) for _ in range(k)]
