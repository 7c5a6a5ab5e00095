"""Embedder versions behind their own small interface: the adapted models a catalog knows, vectors staged for a
switch of embedder, and the switches made (what `vsearch adapt` and `--rollback` need).

A switch replaces every sighting's vector in ONE transaction, so a catalog never holds vectors of two embedders:
the vectors of the embedder switched to are staged first (`stage_vectors`, while searches go on), and those of
the embedder switched from are kept staged in the same transaction, for a rollback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vsearch.catalog.engine import SqlEngine
from vsearch.errors import IndexStateError


@dataclass(frozen=True)
class EmbedderVersion:
    """An adapted embedder: its model file (relative to the data dir) and sha256, what it was made from."""

    name: str
    base: str  # the embedder it was adapted from
    sha256: str
    path: str
    record: dict[str, Any]  # the footage it learned from, its training record
    created_by: str
    created_at: float


@dataclass(frozen=True)
class Switch:
    ts: float
    from_embedder: str
    to_embedder: str
    reason: str  # adapt, rollback
    by: str


class EmbedderBook(SqlEngine):
    """Embedder versions, staged vectors and switches over the catalog's SQL engine."""

    def add_embedder_version(self, v: EmbedderVersion) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO embedder_versions (name, base, sha256, path, record, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (v.name, v.base, v.sha256, v.path, json.dumps(v.record), v.created_by, v.created_at),
            )

    def embedder_version(self, name: str) -> EmbedderVersion | None:
        rows = self._q(
            "SELECT name, base, sha256, path, record, created_by, created_at FROM embedder_versions WHERE name=?",
            (name,),
        )
        if not rows:
            return None
        name, base, sha, path, record, by, at = rows[0]
        return EmbedderVersion(name, base, sha, path, json.loads(record), by, float(at))

    def embedder_version_names(self) -> list[str]:
        return [r[0] for r in self._q("SELECT name FROM embedder_versions ORDER BY created_at")]

    def adaptation_sightings(self, embedder: str) -> list[tuple[int, int, int, str, float, str]]:
        """(id, video_id, track_id, camera_id, ts, thumb_path) of every sighting of `embedder`, by track then time:
        what adaptation learns from."""
        return [(int(r[0]), int(r[1]), int(r[2]), r[3], float(r[4]), r[5]) for r in self._q(
            "SELECT id, video_id, track_id, camera_id, ts, thumb_path FROM sightings WHERE embedder=?"
            " ORDER BY video_id, track_id, ts", (embedder,),
        )]  # fmt: skip

    def stage_vectors(self, embedder: str, ids: Sequence[int], vectors: NDArray[np.float32]) -> None:
        """Keep `embedder`'s vectors of these sightings for a coming switch (replacing any staged before)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO staged_vectors (embedder, sighting_id, embedding) VALUES (?, ?, ?)"
                " ON CONFLICT (embedder, sighting_id) DO UPDATE SET embedding=excluded.embedding",
                [(embedder, int(i), np.ascontiguousarray(v, np.float32).tobytes()) for i, v in zip(ids, vectors)],
            )

    def unstaged_sightings(self, current: str, target: str, limit: int = 1000) -> list[tuple[int, str]]:
        """(id, thumb_path) of up to `limit` sightings of `current` with no staged vector of `target`, by id."""
        return [(int(r[0]), r[1]) for r in self._q(
            "SELECT s.id, s.thumb_path FROM sightings s WHERE s.embedder=? AND NOT EXISTS (SELECT 1 FROM"
            " staged_vectors t WHERE t.embedder=? AND t.sighting_id=s.id) ORDER BY s.id LIMIT ?",
            (current, target, limit),
        )]  # fmt: skip

    def drop_staged(self, embedder: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM staged_vectors WHERE embedder=?", (embedder,))

    def switch_embedder(self, current: str, target: str, reason: str, by: str, now: float | None = None) -> int:
        """Replace every sighting's `current` vector by its staged `target` one, keep the `current` ones staged,
        log the change for the index followers, in one transaction; returns the sightings switched. Refused
        (IndexStateError, nothing changed) while a sighting lacks a staged vector or an ingest holds a lease."""
        now = time.time() if now is None else now
        with self._tx() as db:
            self._order_log(db)
            live = db.execute(
                "SELECT COUNT(*) FROM videos WHERE status='ingesting' AND lease_owner IS NOT NULL AND lease_until > ?",
                (now,),
            ).fetchone()[0]
            if live:
                raise IndexStateError(f"{live} videos are being ingested: the embedder is switched when no ingest runs")
            missing = db.execute(
                "SELECT COUNT(*) FROM sightings s WHERE s.embedder=? AND NOT EXISTS (SELECT 1 FROM staged_vectors t"
                " WHERE t.embedder=? AND t.sighting_id=s.id)", (current, target),
            ).fetchone()[0]  # fmt: skip
            if missing:
                raise IndexStateError(f"{missing} sightings have no {target} vector yet; nothing was switched")
            others = [r[0] for r in db.execute("SELECT DISTINCT embedder FROM sightings").fetchall() if r[0] != current]
            if others:
                raise IndexStateError(f"the catalog holds vectors of {others} besides {current!r}; nothing was switched")
            db.execute(
                "INSERT INTO staged_vectors (embedder, sighting_id, embedding) SELECT ?, id, embedding FROM sightings"
                " WHERE embedder=? ON CONFLICT (embedder, sighting_id) DO UPDATE SET embedding=excluded.embedding",
                (current, current),
            )
            n = db.execute(
                "UPDATE sightings SET embedder=?, embedding=(SELECT t.embedding FROM staged_vectors t WHERE"
                " t.embedder=? AND t.sighting_id=sightings.id) WHERE embedder=?", (target, target, current),
            ).rowcount  # fmt: skip
            db.execute("UPDATE videos SET embedder=? WHERE embedder=?", (target, current))
            db.execute(
                "INSERT INTO sighting_log (sighting_id, embedder, added) SELECT id, ?, 0 FROM sightings"
                " WHERE embedder=? ORDER BY id", (current, target),
            )  # fmt: skip
            db.execute(
                "INSERT INTO sighting_log (sighting_id, embedder, added) SELECT id, ?, 1 FROM sightings"
                " WHERE embedder=? ORDER BY id", (target, target),
            )  # fmt: skip
            db.execute("DELETE FROM staged_vectors WHERE embedder=?", (target,))
            db.execute(
                "INSERT INTO embedder_switches (ts, from_embedder, to_embedder, reason, switched_by, sightings)"
                " VALUES (?, ?, ?, ?, ?, ?)", (now, current, target, reason, by, n),
            )  # fmt: skip
        return int(n)

    def switches(self) -> list[Switch]:
        """Every switch of embedder, oldest first."""
        rows = self._q("SELECT ts, from_embedder, to_embedder, reason, switched_by FROM embedder_switches ORDER BY id")
        return [Switch(*r) for r in rows]
