"""Test-time flip averaging for the learned re-identification model.

A person seen from the left and from the right should embed alike; averaging the embeddings of a crop and of its
mirror image removes the model's left/right bias. On the identity-disjoint PKU-Reid folds this raised rank-1 and
mAP of reid-mnv2 by a few points (models/reid/README.md) at twice the embedding cost. It is registered as its own
embedder, "reid-mnv2-flip", because its vectors differ from plain "reid-mnv2" ones and an index must not mix them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from vsearch.config import Settings
    from vsearch.embed import Embedder


class FlipAveragedEmbedder:
    """Wraps an embedder: the embedding of a crop is the L2-normalised sum of the embeddings of the crop and of its
    horizontal mirror image (one batch for both)."""

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
        summed = both[:n] + both[n:]
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return (summed / np.maximum(norms, 1e-12)).astype(np.float32)


def reid_mnv2_flip(settings: Settings) -> FlipAveragedEmbedder:
    """The learned reid-mnv2 model (models/reid/reid-mnv2.onnx, sha256-verified) with test-time flip averaging:
    256-d, no PyTorch needed."""
    from vsearch.embed import reid_mnv2

    return FlipAveragedEmbedder(reid_mnv2(settings), "reid-mnv2-flip")
