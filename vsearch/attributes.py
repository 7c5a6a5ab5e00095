"""Person attributes (gender, age, hair, clothing, carried bags, upper and lower clothing colour) as calibrated
probabilities, from heads on the re-ID embedding.

The heads (models/attributes/, trained by training/train_attributes.py on Market-1501's identity-level labels)
read the 256-d embedding of one named embedder, bit for bit as ingest stores it. `AttributeModel` checks its
weight file's sha256, records which embedder it reads, and refuses embeddings of any other: a catalog written
with another embedder gets its attributes from the crops, through the model's own copy of its embedder
(`AttributeModel.from_crops`), never from vectors the heads were not trained on.

Probabilities are one flat vector per sighting in `COLUMNS` order: the binary attributes' P(yes), then each
categorical group's class probabilities (they sum to 1 within the group).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from vsearch.config import PROJECT_ROOT, Settings
from vsearch.errors import InputError, ModelError
from vsearch.weights import WeightFile

if TYPE_CHECKING:
    from vsearch.embed import Embedder

# binary attributes: (name, Market column, the column's value meaning "yes")
BINARY: tuple[tuple[str, str, int], ...] = (
    ("female", "gender", 2),
    ("long_hair", "hair", 2),
    ("short_sleeves", "up", 2),
    ("short_lower", "down", 2),
    ("skirt", "clothes", 1),  # Market: dress (skirt) 1 / pants 2
    ("hat", "hat", 2),
    ("backpack", "backpack", 2),
    ("bag", "bag", 2),
    ("handbag", "handbag", 2),
)
AGES = ("young", "teenager", "adult", "old")
UPPER_COLORS = ("black", "blue", "green", "gray", "purple", "red", "white", "yellow")
LOWER_COLORS = ("black", "blue", "brown", "gray", "green", "pink", "purple", "white", "yellow")
# categorical groups: (name, classes)
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (("age", AGES), ("upper", UPPER_COLORS), ("lower", LOWER_COLORS))
COLUMNS: tuple[str, ...] = (
    *(b[0] for b in BINARY),
    *(f"{g}_{c}" for g, classes in GROUPS for c in classes),
)
N_OUT = len(COLUMNS)


def group_slice(group: str) -> slice:
    """The columns of one categorical group in `COLUMNS`."""
    start = len(BINARY)
    for name, classes in GROUPS:
        if name == group:
            return slice(start, start + len(classes))
        start += len(classes)
    raise KeyError(group)


def probabilities(logits: NDArray[np.float32], temperatures: NDArray[np.float32]) -> NDArray[np.float32]:
    """(n, N_OUT) logits -> probabilities in COLUMNS order: sigmoid per binary attribute, softmax per group, each
    after dividing by its temperature (one per binary attribute, then one per group)."""
    out = np.empty_like(logits, dtype=np.float32)
    nb = len(BINARY)
    out[:, :nb] = 1.0 / (1.0 + np.exp(-np.clip(logits[:, :nb] / temperatures[:nb], -60, 60)))
    for j, (name, _) in enumerate(GROUPS):
        s = group_slice(name)
        z = logits[:, s] / temperatures[nb + j]
        z = np.exp(z - z.max(1, keepdims=True))
        out[:, s] = z / z.sum(1, keepdims=True)
    return out


ATTRIBUTES_MNV2_1400 = WeightFile(
    name="attributes-mnv2-1400",
    sha256="3764c4aafd254da59f153458285258af2d497230e4b8c31a35491d01337a9dd3",
    path=PROJECT_ROOT / "models" / "attributes" / "attributes-mnv2-1400.npz",
)


ATTRIBUTES_G_ALL = WeightFile(
    name="attributes-g-all",
    sha256="ad680c98ef92ed317f078ce93dfb49ccd4aa053c5b392eda43278493b9606639",
    path=PROJECT_ROOT / "models" / "attributes" / "attributes-g-all.npz",
)

# the shipped heads by the embedder whose vectors they read
HEADS: dict[str, WeightFile] = {"reid-g-all": ATTRIBUTES_G_ALL, "reid-mnv2-1400": ATTRIBUTES_MNV2_1400}


def heads_for(embedder: str) -> WeightFile:
    """The heads for a catalog of `embedder`: its own, else (an adapted version, an embedder without heads) the
    default model's, which then read the crops through their own copy of that model."""
    return HEADS.get(embedder, HEADS[Settings.model_fields["embedder"].default])


@dataclass(frozen=True)
class Heads:
    """The weights of the attribute heads: standardise, one hidden layer (ReLU), N_OUT logits, temperatures."""

    embedder: str  # the embedder whose vectors the heads read
    embedder_sha256: str  # of that embedder's weight file when the heads were trained
    mean: NDArray[np.float32]
    std: NDArray[np.float32]
    w1: NDArray[np.float32]
    b1: NDArray[np.float32]
    w2: NDArray[np.float32]
    b2: NDArray[np.float32]
    temperatures: NDArray[np.float32]

    def predict(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, d) embeddings -> (n, N_OUT) probabilities."""
        h = (np.asarray(x, np.float32) - self.mean) / self.std
        if self.w1.size:
            h = np.maximum(h @ self.w1 + self.b1, 0.0)
        return probabilities((h @ self.w2 + self.b2).astype(np.float32), self.temperatures)

    def save(self, path: Path) -> None:
        meta = json.dumps({"embedder": self.embedder, "embedder_sha256": self.embedder_sha256, "columns": COLUMNS})
        arrays = {k: getattr(self, k) for k in ("mean", "std", "w1", "b1", "w2", "b2", "temperatures")}
        np.savez(path, meta=np.array(meta), **arrays)

    @classmethod
    def load(cls, path: Path) -> Heads:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k].astype(np.float32) for k in ("mean", "std", "w1", "b1", "w2", "b2", "temperatures")}
        except Exception as e:
            raise ModelError(f"{path}: not an attribute heads file ({e})") from e
        if tuple(meta["columns"]) != COLUMNS:
            raise ModelError(f"{path}: heads predict {meta['columns']}, this vsearch expects {list(COLUMNS)}")
        return cls(meta["embedder"], meta["embedder_sha256"], **arrays)


class AttributeModel:
    """The shipped attribute heads with the embedder they read (those for the embedder named, by default the
    settings'); loaded lazily, once, from a sha256-checked file."""

    def __init__(self, settings: Settings, weights: WeightFile | None = None, embedder: str | None = None) -> None:
        self.settings = settings
        self.weights = weights or heads_for(embedder or settings.embedder)
        self.name = self.weights.name
        self._heads: Heads | None = None
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()

    def load(self) -> Heads:
        with self._lock:
            if self._heads is None:
                self._heads = Heads.load(self.weights.verified_path())
            return self._heads

    @property
    def embedder(self) -> str:
        """The embedder whose vectors the heads read."""
        return self.load().embedder

    def from_embeddings(self, vectors: NDArray[np.float32], embedder: str) -> NDArray[np.float32]:
        """Probabilities (n, N_OUT) from stored embeddings of `embedder`; ModelError if the heads read another's."""
        heads = self.load()
        if embedder != heads.embedder:
            raise ModelError(
                f"attribute model {self.name} reads {heads.embedder!r} embeddings, got {embedder!r} ones; "
                "its attributes come from the crops instead (vsearch reindex-attributes)"
            )
        return heads.predict(vectors)

    def from_crops(self, crops_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Probabilities (n, N_OUT) of RGB crops, embedded by the model's own copy of its embedder."""
        heads = self.load()
        with self._lock:
            if self._embedder is None:
                from vsearch.embed import EMBEDDERS, WEIGHTS

                if heads.embedder not in EMBEDDERS:
                    raise ModelError(f"attribute model {self.name} reads embedder {heads.embedder!r}, unknown here")
                if WEIGHTS[heads.embedder].sha256 != heads.embedder_sha256:
                    raise ModelError(
                        f"attribute model {self.name} was trained on {heads.embedder} with sha256 "
                        f"{heads.embedder_sha256}; this vsearch ships {WEIGHTS[heads.embedder].sha256}"
                    )
                self._embedder = EMBEDDERS[heads.embedder](self.settings)
        if not crops_rgb:
            return np.zeros((0, N_OUT), np.float32)
        assert self._embedder is not None
        return heads.predict(self._embedder.embed(crops_rgb))

    def for_sightings(self, crops_rgb: Sequence[NDArray[np.uint8]], vectors: NDArray[np.float32], embedder: str) -> NDArray[np.float32]:
        """What ingest stores: from the vectors just computed when they are the heads' embedder's (free), else
        from the crops through the model's own embedder."""
        if embedder == self.embedder:
            return self.from_embeddings(vectors, embedder)
        return self.from_crops(crops_rgb)


def check_value(kind: str, value: str, allowed: Sequence[str]) -> str:
    """`value` if it is one of `allowed`, else InputError naming both."""
    if value not in allowed:
        raise InputError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")
    return value
