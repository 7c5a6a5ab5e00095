"""The embedders a catalog may hold: shipped ones by name, and versions made by `vsearch adapt`, whose ONNX files
live under the data dir (shared by every node) and are checked against the sha256 the catalog holds."""

from __future__ import annotations

from pathlib import Path

from vsearch.catalog import Catalog, EmbedderVersion
from vsearch.config import Settings
from vsearch.embed import EMBEDDERS, Embedder, OnnxEmbedder, make_embedder
from vsearch.errors import NotFoundError
from vsearch.weights import WeightFile


def embedders_dir(settings: Settings) -> Path:
    return settings.data_dir / "embedders"


def version_embedder(settings: Settings, v: EmbedderVersion) -> OnnxEmbedder:
    """The ONNX embedder of an adapted version, its file checked against the sha256 the catalog holds."""
    w = WeightFile(name=v.name, sha256=v.sha256, path=settings.data_dir / v.path)
    return OnnxEmbedder(v.name, 256, w.verified_path, (128, 256), settings.embed_batch, settings.inference_threads)


def embedder_named(settings: Settings, catalog: Catalog, name: str) -> Embedder:
    """A shipped embedder by name, or an adapted version the catalog knows."""
    if name in EMBEDDERS:
        return make_embedder(settings.model_copy(update={"embedder": name}))
    v = catalog.embedder_version(name)
    if v is None:
        raise NotFoundError(f"unknown embedder {name!r}: neither shipped ({sorted(EMBEDDERS)}) nor adapted here")
    return version_embedder(settings, v)


def catalog_embedder(settings: Settings, catalog: Catalog) -> Embedder | None:
    """The embedder whose vectors the catalog holds, when that is not the configured one: an adapted version, or
    a shipped embedder (a catalog made before the default model changed keeps its model, from the start, as
    `VSearch.follow_catalog` does later on). None: the settings' embedder (an empty catalog, or the same one)."""
    stored = catalog.embedders()
    if len(stored) != 1 or stored[0] == settings.embedder:
        return None
    if stored[0] in EMBEDDERS:
        return embedder_named(settings, catalog, stored[0])
    v = catalog.embedder_version(stored[0])
    return version_embedder(settings, v) if v is not None else None
