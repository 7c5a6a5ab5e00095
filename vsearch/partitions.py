"""The vector index partitioned across a Ray cluster: time shards held by shard owners, searched by fan-out.

A time shard is a run of `partition_span_minutes` (a day) of sighting ids (ids are time ordered: vsearch.ids), so a
time window is a run of shards. Shard `key` belongs to owner `key % partition_owners` (the ids from before
time-ordered ids, key -1, to owner 0): consecutive days live on different owners, so a day's window asks one owner
and a month's asks all of them at once. Each owner is a Ray actor (spread over the cluster's nodes) holding one
VectorIndex per shard. Like an API node's store it is built from the catalog (the truth) and follows its change
log, keeping its own shards' entries only; it saves the shards that changed (with the log sequence they reflect,
their sizes and sha256) under the shared data dir, and when Ray restarts it after a crash it loads them and replays
the log since (a file that does not match its metadata is rebuilt from the catalog, never trusted). A search passes
the catalog's log sequence along, so an owner catches up before it answers: what was committed is found.

An owner that does not answer (dead, restarting, or slower than partition_timeout_s) is left out of the answer, and
the answer names the time ranges of the filter that its shards cover (`Matches.unsearched`): never silently
partial. Until it answers a ping it is not asked again (a search does not wait for it); then it is searched again.

Owners are named, detached actors (namespace "vsearch"): every API node of the cluster that has the same settings
uses the same owners, and they outlive the node that started them (they are the serving tier).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog import Catalog
from vsearch.config import Settings
from vsearch.errors import IndexStateError
from vsearch.ids import minute_of, minute_of_ts
from vsearch.index import VectorIndex, factory_for
from vsearch.store import IndexFilter, Matches, Store, apply_changes, open_catalog, write_json_atomic
from vsearch.types import IdSet
from vsearch.weights import sha256_file

OWNER_CPUS = 0.25  # what Ray reserves for an owner: it mostly waits (4 owners fit a 1-CPU node)
OWNER_RESTARTS = 16  # Ray restarts a dead owner this many times (an owner that cannot start at all stops there)
OWNER_THREADS = 4  # searches an owner runs at once (FAISS releases the GIL)
NAMESPACE = "vsearch"
BUILD_BATCH = 20_000  # vectors read from the catalog at a time when a shard is built
MAX_LISTED_SHARDS = 100_000  # past this many shards in a window, an unsearched owner is reported as the window


def shard_keys(ids: NDArray[np.int64], span_minutes: int) -> NDArray[np.int64]:
    """The time shard of each id: its minute // span (-1 for the ids from before time-ordered ids)."""
    minutes = minute_of(np.asarray(ids, np.int64))
    return np.where(minutes >= 0, minutes // span_minutes, -1)


def owner_of(keys: NDArray[np.int64] | int, owners: int) -> NDArray[np.int64]:
    """The owner of each shard key."""
    k = np.asarray(keys, np.int64)
    return np.where(k < 0, 0, k % owners)


def shard_span_ts(key: int, span_minutes: int) -> tuple[float | None, float | None]:
    """[from, to) epoch seconds of a shard's sightings (None, None: the ids from before time-ordered ids, any
    time)."""
    if key < 0:
        return None, None
    return float(key * span_minutes * 60), float((key + 1) * span_minutes * 60)


def key_spans(allowed: IdSet | None, span_minutes: int) -> list[tuple[int, int]]:
    """The inclusive runs of shard keys a filter's ids can lie in (None: every shard)."""
    if allowed is None:
        return [(-1, 1 << 62)]
    out = [(int(shard_keys(np.array([lo]), span_minutes)[0]), int(shard_keys(np.array([hi - 1]), span_minutes)[0]))
           for lo, hi in allowed.ranges if hi > lo]  # fmt: skip
    out += [(int(k), int(k)) for k in np.unique(shard_keys(allowed.ids, span_minutes))]
    return out


def owners_touched(spans: list[tuple[int, int]], owners: int) -> list[int]:
    """The owners holding any shard of these runs of keys."""
    hit: set[int] = set()
    for a, b in spans:
        if b - a + 1 >= owners + 1:
            return list(range(owners))
        hit |= {int(o) for o in owner_of(np.arange(a, b + 1), owners)}
    return sorted(hit)


def _touches(key: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= key <= b for a, b in spans)


def _best(parts: list[tuple[NDArray[np.float32], NDArray[np.int64]]], k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    if not parts:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts])
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]


class ShardOwner:
    """A Ray actor's state: the VectorIndex of each time shard this owner holds, following the catalog's log."""

    def __init__(self, settings_json: str, embedder: str, dim: int, owner: int, owners: int) -> None:
        s = Settings.model_validate_json(settings_json)
        self.catalog: Catalog = open_catalog(s)
        self.embedder, self.dim, self.owner, self.owners = embedder, dim, owner, owners
        self.span = s.partition_span_minutes
        self.flat_max = s.index_flat_max
        self.dir = Path(s.index_dir) / "owners" / f"{embedder}-{owner}-of-{owners}-{self.span}m"
        self.meta_path = self.dir / "shards.json"
        self.shards: dict[int, VectorIndex] = {}
        self.seq = 0  # the catalog log sequence the shards reflect
        self.searches = 0
        self.built = 0  # shards built from the catalog when it started (the others were loaded from their files)
        self._dirty: set[int] = set()  # shards changed since they were saved
        self._saved: dict[str, dict[str, Any]] = {}  # shard key -> its file's bytes and sha256
        self._lock = threading.RLock()
        self._open()

    # -- what it holds ---------------------------------------------------------------------------------------
    def _mine(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        return owner_of(shard_keys(ids, self.span), self.owners) == self.owner

    def state(self) -> dict[str, Any]:
        """Its shard keys, vectors held, log sequence and searches served (also what a ping answers)."""
        with self._lock:
            return {"keys": sorted(self.shards), "ntotal": sum(i.ntotal for i in self.shards.values()),
                    "seq": self.seq, "searches": self.searches, "built": self.built,
                    "kinds": sorted({i.kind for i in self.shards.values()})}  # fmt: skip

    def pid(self) -> int:
        import os

        return os.getpid()

    # -- search ------------------------------------------------------------------------------------------------
    def search(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | None, seq: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64], dict[str, Any]]:
        """Top-k (scores, ids) of its shards the filter touches, after catching up with the log to `seq`; and its
        state()."""
        with self._lock:
            if seq > self.seq:
                self._catch_up()
            spans = key_spans(allowed, self.span)
            touched = [idx for key, idx in self.shards.items() if _touches(key, spans)]
            self.searches += 1
        found = _best([idx.search(query, k, allowed) for idx in touched], k)
        return found[0], found[1], self.state()

    # -- following the catalog -----------------------------------------------------------------------------------
    def catch_up(self) -> int:
        with self._lock:
            return self._catch_up()

    def _catch_up(self) -> int:
        applied = 0
        while self.catalog.last_seq() > self.seq:
            changes = self.catalog.changes_since(self.seq, self.embedder)
            by_key: dict[int, list[tuple[int, NDArray[np.float32] | None]]] = {}
            ids = np.array([sid for sid, _ in changes.ops], np.int64)
            keys, mine = shard_keys(ids, self.span), self._mine(ids)
            for op, key, m in zip(changes.ops, keys.tolist(), mine.tolist()):
                if m:
                    by_key.setdefault(key, []).append(op)
            for key, ops in by_key.items():
                index = self.shards.setdefault(key, VectorIndex(self.dim))  # a new shard starts exact
                apply_changes(index, ops)
                if index.ntotal == 0:
                    del self.shards[key]
                self._dirty.add(key)
                applied += len(ops)
            self.seq = changes.last_seq
        return applied

    def _open(self) -> None:
        """Load the saved shards that their metadata vouches for, build the others from the catalog, replay the
        log since the saved sequence."""
        try:
            meta = json.loads(self.meta_path.read_text())
            ok = (meta["embedder"], meta["dim"]) == (self.embedder, self.dim) and meta["seq"] <= self.catalog.last_seq()
        except (OSError, ValueError, KeyError, TypeError):
            meta, ok = None, False
        if not ok or meta is None:
            self._build(None)
            return
        bad: list[int] = []
        for key_s, f in meta["shards"].items():
            path = self.dir / f"{key_s}.faiss"
            try:
                if path.stat().st_size != f["bytes"] or sha256_file(path) != f["sha256"]:
                    raise IndexStateError(f"{path}: does not match its metadata")
                index = VectorIndex.load(path, self.dim)
                if index.kind != factory_for(index.ntotal, self.flat_max):
                    raise IndexStateError(f"{path}: outgrew its index kind")  # rebuilt in the kind its size calls for
                self.shards[int(key_s)] = index
                self._saved[key_s] = f
            except (OSError, IndexStateError, KeyError, TypeError):
                bad.append(int(key_s))
        self.seq = int(meta["seq"])
        if bad:
            self._build(bad)
        self._catch_up()
        self.save()

    def _build(self, keys: list[int] | None) -> None:
        """Build shards `keys` (None: all of this owner's) from the catalog's vectors, then follow the log."""
        seq = self.catalog.last_seq()  # what is committed after this is replayed: at worst twice, harmless
        ids = self.catalog.sighting_ids(self.embedder)
        ids = ids[self._mine(ids)]
        all_keys = shard_keys(ids, self.span)
        wanted = np.unique(all_keys) if keys is None else np.array(keys, np.int64)
        rng = np.random.default_rng(0)
        for key in wanted.tolist():
            kids = ids[all_keys == key]
            index = VectorIndex(self.dim, factory=factory_for(len(kids), self.flat_max))
            if not index.is_trained:  # k-means wants about 40 training points per list
                sample = rng.choice(kids, min(len(kids), max(100_000, 40 * index.nlist)), replace=False)
                index.train(self.catalog.embeddings(np.sort(sample))[1], kids)
            for a in range(0, len(kids), BUILD_BATCH):
                index.add(*self.catalog.embeddings(kids[a : a + BUILD_BATCH]))
            index.compact()
            self.built += 1
            self.shards.pop(key, None)
            if index.ntotal:
                self.shards[key] = index
            self._dirty.add(key)
        if keys is None:
            self.seq = seq
        else:  # the loaded shards are at the saved sequence: the log from there is replayed into all of them
            self.seq = min(self.seq, seq)
        self._catch_up()
        self.save()

    def save(self) -> None:
        """Write the shards changed since the last save (each atomically), then the metadata naming every shard."""
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            for key in sorted(self._dirty):
                path = self.dir / f"{key}.faiss"
                if key in self.shards:
                    self.shards[key].save(path)
                    self._saved[str(key)] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
                else:
                    self._saved.pop(str(key), None)
            meta = {"embedder": self.embedder, "dim": self.dim, "seq": self.seq, "shards": self._saved}
            write_json_atomic(self.meta_path, meta)
            for key in self._dirty - set(self.shards):
                (self.dir / f"{key}.faiss").unlink(missing_ok=True)
            self._dirty.clear()


class FanOut:
    """One search's view of the owners (what Store's filtered search runs on): asks the owners the filter touches,
    merges their top-k, and remembers which owners did not answer."""

    def __init__(self, owners: Owners, seq: int) -> None:
        self.owners = owners
        self.seq = seq
        self.missing: dict[int, list[tuple[int, int]]] = {}  # owner -> the key runs it was not searched for

    @property
    def ntotal(self) -> int:
        return self.owners.ntotal

    def search(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        spans = key_spans(allowed, self.owners.span)
        parts, missed = self.owners.fan_out(query, k, allowed, self.seq, owners_touched(spans, self.owners.n))
        for o in missed:
            self.missing[o] = spans
        return _best(parts, k)


class Owners:
    """The shard owners of one embedder on the cluster, and which of them are answering."""

    def __init__(self, settings: Settings, embedder: str, dim: int) -> None:
        from vsearch.raycluster import connect

        self.ray = connect()
        self.n = settings.partition_owners
        self.span = settings.partition_span_minutes
        self.timeout_s = settings.partition_timeout_s
        # the same settings on another API node name the same owners
        where = settings.catalog_url or str(settings.catalog_path.resolve())
        tag = hashlib.sha256(f"{where}|{settings.index_dir.resolve()}|{embedder}|{self.n}|{self.span}".encode()).hexdigest()[:12]
        actor = self.ray.remote(ShardOwner)
        settings_json = settings.model_copy(update={"data_dir": settings.data_dir.resolve()}).model_dump_json()
        self.handles: list[Any] = []
        created: list[int] = []
        for i in range(self.n):
            name = f"vsearch-owner-{tag}-{i}"
            try:  # another API node (or an earlier run) started it: join it as it is
                self.handles.append(self.ray.get_actor(name, namespace=NAMESPACE))
            except ValueError:
                self.handles.append(actor.options(
                    name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
                    max_restarts=OWNER_RESTARTS, max_task_retries=0, max_concurrency=OWNER_THREADS,
                    num_cpus=OWNER_CPUS, scheduling_strategy="SPREAD",
                ).remote(settings_json, embedder, dim, i, self.n))  # fmt: skip
                created.append(i)
        self._lock = threading.Lock()
        self._state: dict[int, dict[str, Any]] = {}
        self._pings: dict[int, Any] = {}  # owner -> its pending ping while it is down
        pings = [h.state.remote() for h in self.handles]
        # owners started here are built (or loaded) now, as the in-process index is at first use: wait for them;
        # owners that were running get a search's timeout to answer, else they count as down until they do
        self.ray.wait([pings[i] for i in created], num_returns=len(created), timeout=None)
        ready, _ = self.ray.wait(pings, num_returns=len(pings), timeout=self.timeout_s)
        for i, ref in enumerate(pings):
            self._pings[i] = ref
            if ref in ready:
                self._up(i)

    @property
    def ntotal(self) -> int:
        with self._lock:
            return sum(int(s["ntotal"]) for s in self._state.values())

    def _up(self, i: int) -> bool:
        """Whether owner i is answering: a down owner is up again once its ping came back."""
        with self._lock:
            ping = self._pings.get(i)
            if ping is None:
                return True
            ready, _ = self.ray.wait([ping], timeout=0)
            if not ready:
                return False
            try:
                self._state[i] = self.ray.get(ping)
                del self._pings[i]
                return True
            except Exception:  # still dead: ask again
                self._pings[i] = self.handles[i].state.remote()
                return False

    def _down(self, i: int) -> None:
        with self._lock:
            if i not in self._pings:
                self._pings[i] = self.handles[i].state.remote()

    def fan_out(
        self, query: NDArray[np.float32], k: int, allowed: IdSet | None, seq: int, targets: list[int]
    ) -> tuple[list[tuple[NDArray[np.float32], NDArray[np.int64]]], list[int]]:
        """Each answering target owner's top-k, and the targets that did not answer within the timeout."""
        missed = [i for i in targets if not self._up(i)]
        refs = {self.handles[i].search.remote(query, k, allowed, seq): i for i in targets if i not in missed}
        ready, late = self.ray.wait(list(refs), num_returns=len(refs), timeout=self.timeout_s) if refs else ([], [])
        parts = []
        for ref in ready:
            try:
                scores, ids, state = self.ray.get(ref)
            except Exception:  # the owner died (Ray restarts it): its shards are reported unsearched
                missed.append(refs[ref])
                self._down(refs[ref])
                continue
            with self._lock:
                self._state[refs[ref]] = state
            parts.append((scores, ids))
        for ref in late:
            missed.append(refs[ref])
            self._down(refs[ref])
        return parts, sorted(missed)

    def unsearched(
        self, missing: dict[int, list[tuple[int, int]]], where: IndexFilter | None, catalog: Catalog
    ) -> tuple[tuple[float | None, float | None], ...]:
        """The time ranges [from, to) of the filter that the missing owners' shards cover, merged, in order: the
        shards it last reported holding, and every other shard it owns in the window within the catalog's footage
        (a day stored while it was down); the window itself when they are too many to list."""
        lo_ts = None if where is None else where.from_ts_s
        hi_ts = None if where is None else where.to_ts_s
        ranges: list[tuple[float | None, float | None]] = []
        extent: tuple[int, int] | None = None
        for owner, spans in missing.items():
            keys: set[int] = set()
            for a, b in spans:
                if b - a > MAX_LISTED_SHARDS:  # open-ended: bounded by the catalog's footage
                    extent = extent or self._extent(catalog)
                    a, b = max(a, extent[0]), min(b, extent[1])
                if b - a > MAX_LISTED_SHARDS:
                    return ((lo_ts, hi_ts),)
                keys |= {k for k in range(a, b + 1) if int(owner_of(k, self.n)) == owner}
            with self._lock:
                keys |= {k for k in self._state.get(owner, {}).get("keys", []) if _touches(k, spans)}
            for key in sorted(keys):
                f, t = shard_span_ts(key, self.span)
                if f is None or t is None:
                    ranges.append((None, None))
                    continue
                f = f if lo_ts is None else max(f, lo_ts)
                t = t if hi_ts is None else min(t, hi_ts)
                if f <= t:
                    ranges.append((f, t))
        return _merge(ranges)

    def _extent(self, catalog: Catalog) -> tuple[int, int]:
        """Shard keys from the catalog's first footage to its last (sightings lie in their footage's time)."""
        cams = catalog.cameras()
        now = time.time()
        first = min((c.first_ts_s for c in cams if c.first_ts_s is not None), default=now)
        last = max((c.last_ts_s for c in cams if c.last_ts_s is not None), default=now)
        return minute_of_ts(first) // self.span, minute_of_ts(last) // self.span

    def states(self) -> list[dict[str, Any] | None]:
        """Each owner's state() (None: it did not answer within the timeout)."""
        refs = [h.state.remote() for h in self.handles]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)
        out: list[dict[str, Any] | None] = []
        for ref in refs:
            try:
                out.append(self.ray.get(ref) if ref in ready else None)
            except Exception:
                out.append(None)
        return out

    def save(self) -> None:
        """Every answering owner catches up with the log and saves its changed shards."""
        refs = [h.catch_up.remote() for i, h in enumerate(self.handles) if self._up(i)]
        self.ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)
        refs = [h.save.remote() for i, h in enumerate(self.handles) if self._up(i)]
        self.ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)

    def kill(self) -> None:
        """End the owners for good (their saved shards stay): for tests and for a change of layout."""
        for h in self.handles:
            self.ray.kill(h, no_restart=True)


def _merge(ranges: list[tuple[float | None, float | None]]) -> tuple[tuple[float | None, float | None], ...]:
    if any(f is None and t is None for f, t in ranges):
        return ((None, None),)
    out: list[tuple[float, float]] = []
    for f, t in sorted((float(f), float(t)) for f, t in ranges if f is not None and t is not None):
        if out and f <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], t))
        else:
            out.append((f, t))
    return tuple(out)


class PartitionedStore(Store):
    """A Store whose index is held by shard owners on a Ray cluster (see the module). Writes go to the catalog as
    ever; the owners follow its log. The owners are started (or found) at first use."""

    def __init__(self, settings: Settings, catalog: Catalog, embedder: str, dim: int, follow: bool = True) -> None:
        super().__init__(catalog, settings.index_dir, embedder, dim, settings.index_flat_max, follow)
        self.settings = settings
        self._owners: Owners | None = None

    @property
    def owners(self) -> Owners:
        with self._lock:
            if self._owners is None:
                self._owners = Owners(self.settings, self.embedder, self.dim)
            return self._owners

    @property
    def index(self) -> VectorIndex:
        raise IndexStateError("the index is partitioned across shard owners (partition_owners > 0): search the store")

    @property
    def ntotal(self) -> int:
        owners = self.owners
        owners.fan_out(np.zeros(self.dim, np.float32), 1, IdSet(), self.catalog.last_seq(), list(range(owners.n)))
        return owners.ntotal

    def search(self, query: NDArray[np.float32], k: int, where: IndexFilter | None = None) -> Matches:
        """Top-k over the owners the filter's time window touches; `unsearched` names the time ranges of owners
        that did not answer."""
        fan = FanOut(self.owners, self.catalog.last_seq())
        found = self._search_on(fan, query, k, where)
        if not fan.missing:
            return found
        return Matches(found.scores, found.ids, found.candidates, self.owners.unsearched(fan.missing, where, self.catalog))

    def catch_up(self) -> int:
        """The owners follow the log when they are searched (each search carries the log's sequence)."""
        return 0

    def save(self) -> None:
        if self._owners is not None:
            self._owners.save()

    def close(self) -> None:
        """Owners save their shards and go on serving (other API nodes use them); the catalog is closed."""
        with self._lock:
            self.save()
            self.catalog.close()


def open_store(settings: Settings, catalog: Catalog, embedder: str, dim: int, follow: bool = True) -> Store:
    """The store the settings call for: the in-process index, or (settings.partition_owners > 0) shard owners on
    a Ray cluster (Ray is imported only then). Here, not in store.py, which partitions.py builds on."""
    if settings.partition_owners > 0:
        return PartitionedStore(settings, catalog, embedder, dim, follow)
    return Store(catalog, settings.index_dir, embedder, dim, settings.index_flat_max, follow)
