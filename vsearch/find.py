"""Search by description (`find`), and the attribute table's filling for footage stored before it
(`reindex_attributes`).

Search by description: attribute terms -> the sightings inside the time window and cameras ranked by their
joint probability (one statement over the catalog's attribute table) -> clips.

The filters are applied where the ranking is done, so a narrow window returns its best matches, never the
remains of a top-k taken over the whole collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsearch.attributes import AttributeModel
from vsearch.catalog import Catalog
from vsearch.config import Settings
from vsearch.describe import Description
from vsearch.errors import IndexStateError
from vsearch.search import SearchFilters, clip_to_dict, group_clips
from vsearch.types import Clip, SearchHit


@dataclass
class FindResult:
    description: Description
    clips: list[Clip]
    candidates: int  # sightings with attributes inside the filters
    without_attributes: int  # sightings of the catalog the model has not scored (vsearch reindex-attributes)
    latency_ms: dict[str, float]


def find(description: Description, filters: SearchFilters, catalog: Catalog, model: str, settings: Settings) -> FindResult:
    """The best clips for `description` inside `filters` (time window, cameras, top_k; min_score is a minimum
    joint probability when above 0). IndexStateError when no sighting has attributes from `model`."""
    t = time.perf_counter()
    scored = catalog.count_attributes(model)
    total = catalog.count_sightings()
    if scored == 0:
        raise IndexStateError(
            f"no sighting has attribute probabilities from {model} ({total} sightings): run vsearch reindex-attributes"
            if total else "the catalog holds no footage yet: ingest some before searching"
        )
    k = filters.top_k * settings.crops_per_segment * 4  # several crops per clip, as image search fetches
    found, candidates = catalog.find_by_attributes(
        model, description.terms(), filters.from_ts_s, filters.to_ts_s, filters.cameras or None, k
    )
    lat = {"rank_ms": (time.perf_counter() - t) * 1000}
    t = time.perf_counter()
    floor = max(filters.min_score, 0.0)
    sightings = catalog.sightings([i for i, _ in found])
    hits = [SearchHit(sightings[i], p) for i, p in found if i in sightings and p >= floor]
    clips = group_clips(hits, catalog, settings)[: filters.top_k]
    lat["group_ms"] = (time.perf_counter() - t) * 1000
    return FindResult(description, clips, candidates, total - scored, lat)


def find_result_to_dict(r: FindResult) -> dict[str, Any]:
    """The JSON shape of a description search (CLI --json and the API's body)."""
    return {
        "description": r.description.summary(), "candidates": r.candidates,
        "without_attributes": r.without_attributes, "latency_ms": {k: round(v, 2) for k, v in r.latency_ms.items()},
        "clips": [clip_to_dict(c) for c in r.clips],
    }  # fmt: skip


@dataclass
class ReindexReport:
    scored: int = 0  # sightings given probabilities
    from_vectors: int = 0  # of them, from their stored embeddings (the heads' embedder)
    missing_crops: list[int] = field(default_factory=list)  # sightings whose stored crop is gone (not scored)


def reindex_attributes(
    catalog: Catalog, model: AttributeModel, data_dir: Path, batch: int = 256,
    progress: Callable[[int], None] | None = None,
) -> ReindexReport:  # fmt: skip
    """Give every sighting without probabilities from `model` its probabilities: from its stored embedding when
    that is the embedder the heads read (exactly what ingest would have stored), else from its stored crop through
    the model's own embedder. Resumable: each batch is committed, and a rerun starts after the last one."""
    import cv2
    import numpy as np

    report, last = ReindexReport(), 0
    while rows := catalog.without_attributes(model.name, last, batch):
        last = rows[-1][0]
        own = [r for r in rows if r[3] == model.embedder]
        probs: dict[int, Any] = {}
        if own:
            ids, vecs = catalog.embeddings(np.array([r[0] for r in own], np.int64))
            probs.update(zip(ids.tolist(), model.from_embeddings(vecs, model.embedder)))
            report.from_vectors += len(ids)
        others, crops = [], []
        for r in rows:
            if r[3] == model.embedder:
                continue
            img = cv2.imread(str(data_dir / r[4]))
            if img is None:
                report.missing_crops.append(r[0])
                continue
            others.append(r[0])
            crops.append(np.ascontiguousarray(img[:, :, ::-1], np.uint8))
        probs.update(zip(others, model.from_crops(crops)))
        catalog.put_attributes(model.name, [(r[0], r[1], r[2], probs[r[0]]) for r in rows if r[0] in probs])
        report.scored += len(probs)
        if progress is not None:
            progress(len(rows))
    return report
