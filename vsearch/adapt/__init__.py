"""`vsearch adapt`: learn a deployment's own cameras from their own footage, without labels.

    adapt(service, options, by)   fine-tune a copy of the base model on the catalog's tracks (vsearch.adapt.learn),
                                  write it as a new versioned embedder, re-embed every sighting from its stored
                                  crop, and switch the catalog to the new vectors in one transaction
    rollback(service, by)         switch back to the embedder in use before the last switch

While the new vectors are computed they are staged in the catalog (catalog/embedders.py): searches keep answering
from the old vectors and the old index until the switch, which replaces every sighting's vector at once (a catalog
never mixes vectors of two embedders) and keeps the old ones staged for a rollback. The index follows the switch
through the catalog's change log like any other change (store.py); every node notices the new embedder at its next
search (VSearch.follow_catalog) and loads its model from the data dir, checked against the sha256 in the catalog.

PyTorch is imported only inside `adapt` (the search path and `rollback` never need it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.adapt.links import Tracklet
from vsearch.adapt.versions import embedder_named, embedders_dir, version_embedder
from vsearch.catalog import Catalog, EmbedderVersion
from vsearch.config import ADAPT_BUDGET_S, ADAPT_ROUNDS, PROJECT_ROOT, Settings
from vsearch.embed import CHECKPOINTS, Embedder, adapted_name
from vsearch.errors import IndexStateError, InputError, StorageError
from vsearch.weights import sha256_file

if TYPE_CHECKING:
    from vsearch.service import VSearch

BASE_CHECKPOINTS = PROJECT_ROOT / "models" / "reid"  # <embedder>.pt: the checkpoint behind a shipped embedder
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class AdaptOptions:
    """What `adapt` does; validated here, once, so the CLI and the API refuse the same values."""

    budget_s: float = ADAPT_BUDGET_S  # wall seconds of fine-tuning
    rounds: int = ADAPT_ROUNDS  # re-cluster / train rounds within the budget
    base: Path | None = None  # checkpoint (.pt) to start from; default models/reid/<base embedder>.pt
    max_crops_per_track: int = 8
    threads: int | None = None
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (tests)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.budget_s) and 1 <= self.budget_s <= 24 * 3600):
            raise InputError(f"expected a budget of 1 to 86400 seconds, got {self.budget_s}")
        if not 1 <= self.rounds <= 20:
            raise InputError(f"expected 1 to 20 rounds, got {self.rounds}")
        if not 1 <= self.max_crops_per_track <= 1000:
            raise InputError(f"expected 1 to 1000 crops per track, got {self.max_crops_per_track}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"expected at least 1 thread, got {self.threads}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"expected at least 1 step, got {self.max_steps}")


@dataclass(frozen=True)
class SwitchReport:
    """A switch of the catalog's embedder: from, to, sightings re-embedded from their crops, sightings switched."""

    embedder: str
    previous: str
    reembedded: int
    switched: int
    reembed_s: float


@dataclass(frozen=True)
class AdaptReport:
    """What `adapt` made and did."""

    embedder: str
    base: str
    sha256: str
    path: str
    tracks: int
    crops: int
    cameras: int
    same_pairs: int
    different_pairs: int
    train_s: float
    switch: SwitchReport
    record: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what the footage teaches -------------------------------------------------------------------------------------
def _read_crop(settings: Settings, thumb_path: str, sighting_id: int) -> NDArray[np.uint8]:
    img = cv2.imread(str(settings.data_dir / thumb_path))
    if img is None:
        raise StorageError(f"the stored crop of sighting {sighting_id} ({thumb_path}) is missing or unreadable")
    return np.ascontiguousarray(img[:, :, ::-1])


def gather_tracklets(
    settings: Settings, catalog: Catalog, embedder: str, max_crops: int
) -> tuple[list[Tracklet], dict[int, int], dict[tuple[int, int], int]]:
    """The catalog's tracks as tracklets (up to `max_crops` stored crops each, spread over the track), with the
    track index of each sighting and of each (video, track)."""
    rows = catalog.adaptation_sightings(embedder)
    groups: dict[tuple[int, int], list[tuple[int, int, int, str, float, str]]] = {}
    for r in rows:
        groups.setdefault((r[1], r[2]), []).append(r)
    tracklets: list[Tracklet] = []
    of_sighting: dict[int, int] = {}
    of_track: dict[tuple[int, int], int] = {}
    for key, g in groups.items():
        pick = np.unique(np.linspace(0, len(g) - 1, min(max_crops, len(g))).round().astype(int))
        crops = [_read_crop(settings, g[i][5], g[i][0]) for i in pick]
        of_track[key] = len(tracklets)
        for r in g:
            of_sighting[r[0]] = len(tracklets)
        tracklets.append(Tracklet(g[0][3], g[0][4], g[-1][4], crops))
    return tracklets, of_sighting, of_track


def investigator_pairs(
    catalog: Catalog, of_sighting: dict[int, int], of_track: dict[tuple[int, int], int]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(same, different) pairs of track indices from investigators' decisions: the sightings marked "same" for one
    query image are one person and those marked "different" another; the items of one case found with one query
    image are one person."""
    same_of: dict[str, set[int]] = {}
    diff_of: dict[str, set[int]] = {}
    for m in catalog.marks(limit=1_000_000):
        t = of_sighting.get(m.sighting_id)
        if t is not None:
            (same_of if m.mark == "same" else diff_of).setdefault(m.query_sha256, set()).add(t)
    for case in catalog.cases():
        for it in catalog.case_items(case.id):
            t = of_track.get((it.video_id, it.track_id))
            if t is not None and it.query_sha256:
                same_of.setdefault(f"{case.id}:{it.query_sha256}", set()).add(t)
    same: set[tuple[int, int]] = set()
    different: set[tuple[int, int]] = set()
    for q, tracks in same_of.items():
        ts = sorted(tracks)
        same |= {(ts[0], t) for t in ts[1:]}
        different |= {(min(a, b), max(a, b)) for a in ts for b in diff_of.get(q, ()) if a != b}
    return sorted(same), sorted(different - same)


def base_checkpoint(catalog: Catalog, current: str, given: Path | None) -> tuple[Path, str]:
    """(checkpoint, name of the base model): the given file, else the shipped embedder's (an adapted embedder is
    adapted again from its own base, never from itself: no drift from round to round of adaptation)."""
    if given is not None:  # the model is named after its checkpoint file (training writes <name>.pt)
        return _existing(Path(given), Path(given).stem)
    v = catalog.embedder_version(current)
    base = v.base if v is not None else current
    if base in CHECKPOINTS:  # a shipped checkpoint, checked against its sha256
        return CHECKPOINTS[base].verified_path(), base
    return _existing(BASE_CHECKPOINTS / f"{base}.pt", base)


def _existing(path: Path, base: str) -> tuple[Path, str]:
    if not Path(path).is_file():
        raise InputError(
            f"no checkpoint to adapt from: expected {path} (the .pt training wrote beside {base}.onnx); give --base"
        )
    return Path(path), base


# -- the entry points ---------------------------------------------------------------------------------------------
def check(svc: VSearch, options: AdaptOptions | None) -> None:
    """Refuse (InputError) what `adapt(svc, options)` or, with None, `rollback(svc)` would refuse, before any work:
    an empty catalog, no checkpoint to start from, nothing to roll back."""
    svc.follow_catalog()
    current = svc.embedder.name
    if options is None:
        if _adopted(svc.catalog, current) is None:
            raise InputError(f"nothing to roll back: the catalog's embedder {current!r} was not switched to by adapt")
        return
    if svc.catalog.count_sightings(current) == 0:
        raise InputError("no sightings to learn from: ingest footage first")
    base_checkpoint(svc.catalog, current, options.base or svc.settings.adapt_base)


def adapt(svc: VSearch, options: AdaptOptions = AdaptOptions(), by: str = "library",
          progress: ProgressFn | None = None) -> AdaptReport:  # fmt: skip
    """Fine-tune, write a new embedder version, re-embed every sighting from its crop, switch (see the module)."""
    say = progress or (lambda _m: None)
    check(svc, options)
    catalog, settings = svc.catalog, svc.settings
    current = svc.embedder.name
    ckpt, base = base_checkpoint(catalog, current, options.base or settings.adapt_base)
    tracklets, of_sighting, of_track = gather_tracklets(settings, catalog, current, options.max_crops_per_track)
    same, different = investigator_pairs(catalog, of_sighting, of_track)
    cameras = len({t.camera for t in tracklets})
    say(f"learning from {len(tracklets)} tracks on {cameras} cameras ({len(same)} confirmed and {len(different)}"
        f" rejected pairs), {options.budget_s:.0f} s")  # fmt: skip

    from vsearch.adapt.learn import LearnOptions, fine_tune
    from vsearch.reidnet import export_onnx, save_checkpoint

    learn = LearnOptions(budget_s=options.budget_s, rounds=options.rounds, seed=options.seed,
                         threads=options.threads or settings.inference_threads, max_steps=options.max_steps)  # fmt: skip
    result = fine_tune(ckpt, tracklets, learn, same, different, say)
    name = adapted_name(base, len(catalog.embedder_version_names()) + 1)
    folder = embedders_dir(settings) / name
    folder.mkdir(parents=True, exist_ok=False)
    onnx = folder / "model.onnx"
    export_onnx(result.net, onnx)
    footage = {
        "cameras": sorted({t.camera for t in tracklets}), "tracks": len(tracklets),
        "sightings": len(of_sighting), "from_ts_s": min(t.t0_s for t in tracklets),
        "to_ts_s": max(t.t1_s for t in tracklets),
    }  # fmt: skip
    record = {"base": base, "base_checkpoint": str(ckpt), "base_checkpoint_sha256": sha256_file(ckpt),
              "adapted_from_vectors_of": current, "footage": footage, "investigator_pairs":
              {"same": len(same), "different": len(different)}, "training": result.record,
              "by": by, "created_at": time.time()}  # fmt: skip
    save_checkpoint(result.net, folder / "model.pt", {"name": name, "base": base})
    (folder / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    sha = sha256_file(onnx)
    version = EmbedderVersion(name, base, sha, str(onnx.relative_to(settings.data_dir)), record, by, time.time())
    catalog.add_embedder_version(version)
    say(f"wrote embedder {name} (sha256 {sha[:12]}...); re-embedding the sightings")
    switch = switch_to(svc, version_embedder(settings, version), "adapt", by, say)
    report = AdaptReport(name, base, sha, version.path, len(tracklets), result.record["crops"], cameras, len(same),
                         len(different), result.record["train_s"], switch, record)  # fmt: skip
    svc.audit.append({"action": "adapt", "key_name": by, "embedder": name, "previous": switch.previous,
                      "sha256": sha, "base": base, "tracks": len(tracklets), "cameras": cameras,
                      "sightings_switched": switch.switched})  # fmt: skip
    return report


def rollback(svc: VSearch, by: str = "library", progress: ProgressFn | None = None) -> SwitchReport:
    """Switch back to the embedder in use before the last switch (its vectors were kept; sightings ingested since
    are embedded from their crops)."""
    check(svc, None)
    current = svc.embedder.name
    previous = _adopted(svc.catalog, current)
    assert previous is not None
    report = switch_to(svc, embedder_named(svc.settings, svc.catalog, previous), "rollback", by, progress)
    svc.audit.append({"action": "adapt-rollback", "key_name": by, "embedder": previous, "previous": current,
                      "sightings_switched": report.switched})  # fmt: skip
    return report


def _adopted(catalog: Catalog, embedder: str) -> str | None:
    """The embedder in use before `embedder` was last adopted by an adaptation (None: it never was)."""
    return next((s.from_embedder for s in reversed(catalog.switches())
                 if s.to_embedder == embedder and s.reason == "adapt"), None)  # fmt: skip


def switch_to(svc: VSearch, target: Embedder, reason: str, by: str, progress: ProgressFn | None = None,
              batch: int = 256, attempts: int = 3) -> SwitchReport:  # fmt: skip
    """Stage `target`'s vector of every sighting (embedded from its stored crop unless staged already), then
    switch the catalog to them in one transaction; the service follows. Sightings ingested meanwhile are
    embedded too before the switch (up to `attempts` passes)."""
    say = progress or (lambda _m: None)
    catalog, current = svc.catalog, svc.embedder.name
    if target.name == current:
        raise InputError(f"the catalog already holds vectors of {current!r}")
    t, done, n = time.monotonic(), 0, 0
    for attempt in range(attempts):
        while todo := catalog.unstaged_sightings(current, target.name, batch):
            crops = [_read_crop(svc.settings, path, sid) for sid, path in todo]
            catalog.stage_vectors(target.name, [sid for sid, _ in todo], target.embed(crops))
            done += len(todo)
            say(f"re-embedded {done} sightings")
        try:
            n = catalog.switch_embedder(current, target.name, reason, by)
            break
        except IndexStateError as e:
            if "have no" not in str(e) or attempt == attempts - 1:
                raise
    svc.follow_catalog()
    return SwitchReport(target.name, current, done, n, round(time.monotonic() - t, 1))

